import { BatchDeps, recordBatchFailure } from '../core/bulk/service';
import { awsBatchDeps, defaultClients } from '../adapters/aws/bulk-deps';
import { lambdaBundle } from './bundle';
import { BulkEnv } from './env';

export const createHandler =
  (deps: Pick<BatchDeps, 'tasks' | 'objects' | 'events' | 'clock'>) => (input: { taskId: string; error?: unknown }) =>
    recordBatchFailure(deps, input);

export const handler = lambdaBundle(BulkEnv, (env) => createHandler(awsBatchDeps(env, defaultClients())));
