import { publishReply, type RotationDeps } from '../core/rotation/service';
import { lambdaBundle } from './bundle';
import { RotationEnv } from './env';

/** ReplyAccepted / ReplyRejected (both workflows): the answer on `…/accepted` or `{ message: REASON }` on `…/rejected`. */
export const createHandler = (deps: RotationDeps) => (input: unknown) => publishReply(deps, input);

export const handler = lambdaBundle(RotationEnv, async (env) => {
  const [{ awsRotationDeps }, { defaultClients }] = await Promise.all([
    import('../adapters/aws/rotation-deps'),
    import('../adapters/aws/bulk-deps'),
  ]);
  return createHandler(awsRotationDeps(env, defaultClients()));
});
