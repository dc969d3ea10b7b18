import { BatchDeps, planChunks } from '../core/bulk/service';
import { lambdaBundle } from './bundle';
import { BulkEnv } from './env';

export const createHandler = (deps: Pick<BatchDeps, 'tasks' | 'config'>) => (input: { taskId: string }) =>
  planChunks(deps, input);

export const handler = lambdaBundle(BulkEnv, async (env) => {
  const { awsBatchDeps, defaultClients } = await import('../adapters/aws/bulk-deps');
  return createHandler(awsBatchDeps(env, defaultClients()));
});
