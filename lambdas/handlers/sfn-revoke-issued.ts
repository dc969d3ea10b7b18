import { z } from 'zod';
import { fromZodError } from '../core/bulk/request';
import { revokeIssuedBy, type CaDeps } from '../core/ca/service';
import { lambdaBundle } from './bundle';
import { CaEnv } from './env';

const RevokeIssuedInput = z.object({
  caId: z.string().regex(/^[0-9a-f]{64}$/),
  revokedAt: z.string(),
  nextToken: z.string().nullish(),
});

export const createHandler = (deps: CaDeps) => async (input: unknown) => {
  const parsed = RevokeIssuedInput.safeParse(input);
  if (!parsed.success) throw fromZodError(parsed.error);
  return revokeIssuedBy(deps, parsed.data);
};

export const handler = lambdaBundle(CaEnv, async (env) => {
  const [{ awsCaDeps }, { defaultClients }] = await Promise.all([
    import('../adapters/aws/ca-deps'),
    import('../adapters/aws/bulk-deps'),
  ]);
  return createHandler(awsCaDeps(env, defaultClients()));
});
