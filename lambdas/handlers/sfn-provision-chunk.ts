import { z } from 'zod';
import { fromZodError } from '../core/bulk/request';
import { provisionChunk, type BulkProvisioningDeps } from '../core/provisioning/bulk';
import { lambdaBundle, logger } from './bundle';
import { ProvisioningEnv } from './env';

export const ProvisionChunkInput = z.object({ taskId: z.string().min(1), index: z.number().int().min(0) });

/** One Map iteration of the bulk-provisioning workflow: the chunk's things, each item's failure its own. */
export const createHandler = (deps: BulkProvisioningDeps) => async (input: unknown) => {
  const parsed = ProvisionChunkInput.safeParse(input);
  if (!parsed.success) throw fromZodError(parsed.error);
  logger.appendKeys({ taskId: parsed.data.taskId, chunk: parsed.data.index });
  return provisionChunk(deps, parsed.data);
};

export const handler = lambdaBundle(ProvisioningEnv, async (env) => {
  const [{ awsProvisioningDeps }, { defaultClients }] = await Promise.all([
    import('../adapters/aws/provisioning-deps'),
    import('../adapters/aws/bulk-deps'),
  ]);
  return createHandler(awsProvisioningDeps(env, defaultClients()));
});
