import { BatchDeps, recordBatchFailure } from '../core/bulk/service';
import { lambdaBundle } from './bundle';
import { BulkEnv } from './env';

export const createHandler =
  (deps: Pick<BatchDeps, 'tasks' | 'objects' | 'events' | 'clock'>) => (input: { taskId: string; error?: unknown }) =>
    recordBatchFailure(deps, input);

export const handler = lambdaBundle(BulkEnv, async (env) => {
  const { awsBatchDeps, defaultClients } = await import('../adapters/aws/bulk-deps');
  return createHandler(awsBatchDeps(env, defaultClients()));
});
