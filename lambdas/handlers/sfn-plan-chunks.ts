import { BatchDeps, planChunks } from '../core/bulk/service';
import { awsBatchDeps, defaultClients } from '../adapters/aws/bulk-deps';
import { lambdaBundle } from './bundle';
import { BulkEnv } from './env';

export const createHandler = (deps: Pick<BatchDeps, 'tasks' | 'config'>) => (input: { taskId: string }) =>
  planChunks(deps, input);

export const handler = lambdaBundle(BulkEnv, (env) => createHandler(awsBatchDeps(env, defaultClients())));
