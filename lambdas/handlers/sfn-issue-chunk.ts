import { z } from 'zod';
import { ChunkDeps, signChunk } from '../core/bulk/chunk';
import { fromZodError } from '../core/bulk/request';
import { awsChunkDeps, defaultClients } from '../adapters/aws/bulk-deps';
import { lambdaBundle, logger } from './bundle';
import { BulkEnv } from './env';

export const ChunkInput = z.object({ taskId: z.string().min(1), index: z.number().int().min(0) });

export const createHandler = (deps: ChunkDeps) => async (input: unknown) => {
  const parsed = ChunkInput.safeParse(input);
  if (!parsed.success) throw fromZodError(parsed.error);
  logger.appendKeys({ taskId: parsed.data.taskId, chunk: parsed.data.index });
  return signChunk(parsed.data, deps);
};

export const handler = lambdaBundle(BulkEnv, (env) => createHandler(awsChunkDeps(env, defaultClients())));
