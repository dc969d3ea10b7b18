import { z } from 'zod';
import { ChunkDeps, signChunk } from '../core/bulk/chunk';
import { fromZodError } from '../core/bulk/request';
import { lambdaBundle, logger } from './bundle';
import { BulkEnv } from './env';

export const ChunkInput = z.object({ taskId: z.string().min(1), index: z.number().int().min(0) });

/**
 * On Lambda the chunk is leased to this invocation until its deadline (the context's remaining time): a second
 * delivery of the same chunk at the same time is refused (TransientChunkError, retried by the workflow).
 */
export const createHandler =
  (deps: ChunkDeps) => async (input: unknown, context?: { getRemainingTimeInMillis?: () => number }) => {
    const parsed = ChunkInput.safeParse(input);
    if (!parsed.success) throw fromZodError(parsed.error);
    logger.appendKeys({ taskId: parsed.data.taskId, chunk: parsed.data.index });
    const remaining = context?.getRemainingTimeInMillis?.();
    return signChunk(
      parsed.data,
      deps,
      remaining !== undefined ? { deadlineMs: deps.clock.now().getTime() + remaining } : {},
    );
  };

export const handler = lambdaBundle(BulkEnv, async (env) => {
  const { awsChunkDeps, defaultClients } = await import('../adapters/aws/bulk-deps');
  return createHandler(awsChunkDeps(env, defaultClients()));
});
