import { z } from 'zod';
import { fromZodError } from '../core/bulk/request';
import { BatchDeps, deleteChunkFiles } from '../core/bulk/service';
import { lambdaBundle, logger } from './bundle';
import { BulkEnv } from './env';

/** What DeleteChunkFiles receives: the task and its chunk count, from AssembleZip's result (no table read). */
export const DeleteChunkFilesInput = z.object({
  taskId: z.string().min(1),
  chunksTotal: z.number().int().min(0),
});

/**
 * DeleteChunkFiles (bulk issuance, after MarkTaskComplete): deletes the chunks' files (chunk zips and progress hold
 * device private keys) once the batch zip is complete. Idempotent: a retry deletes nothing more.
 */
export const createHandler = (deps: Pick<BatchDeps, 'objects'>) => async (input: unknown) => {
  const parsed = DeleteChunkFilesInput.safeParse(input);
  if (!parsed.success) throw fromZodError(parsed.error);
  logger.appendKeys({ taskId: parsed.data.taskId });
  return deleteChunkFiles(deps, parsed.data);
};

export const handler = lambdaBundle(BulkEnv, async (env) => {
  const { awsBatchDeps, defaultClients } = await import('../adapters/aws/bulk-deps');
  return createHandler(awsBatchDeps(env, defaultClients()));
});
