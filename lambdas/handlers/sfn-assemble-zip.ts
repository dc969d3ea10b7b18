import { AssembleDeps, AssembleInput, assembleBatch } from '../core/bulk/assemble';
import { awsBatchDeps, defaultClients } from '../adapters/aws/bulk-deps';
import { lambdaBundle } from './bundle';
import { BulkEnv } from './env';

export const createHandler = (deps: AssembleDeps) => (input: AssembleInput) => assembleBatch(deps, input);

export const handler = lambdaBundle(BulkEnv, (env) => createHandler(awsBatchDeps(env, defaultClients())));
