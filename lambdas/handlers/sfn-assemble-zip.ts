import { AssembleDeps, AssembleInput, assembleBatch } from '../core/bulk/assemble';
import { lambdaBundle } from './bundle';
import { BulkEnv } from './env';

export const createHandler = (deps: AssembleDeps) => (input: AssembleInput) => assembleBatch(deps, input);

export const handler = lambdaBundle(BulkEnv, async (env) => {
  const { awsBatchDeps, defaultClients } = await import('../adapters/aws/bulk-deps');
  return createHandler(awsBatchDeps(env, defaultClients()));
});
