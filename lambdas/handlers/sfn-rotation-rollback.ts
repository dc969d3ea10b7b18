import { rollBackCertificate, type RotationDeps } from '../core/rotation/service';
import { lambdaBundle } from './bundle';
import { RotationEnv } from './env';

/** RollBackCertificate (rotation-get): the reply could not be sent, so the vended certificate is undone. */
export const createHandler = (deps: RotationDeps) => (input: unknown) => rollBackCertificate(deps, input);

export const handler = lambdaBundle(RotationEnv, async (env) => {
  const [{ awsRotationDeps }, { defaultClients }] = await Promise.all([
    import('../adapters/aws/rotation-deps'),
    import('../adapters/aws/bulk-deps'),
  ]);
  return createHandler(awsRotationDeps(env, defaultClients()));
});
