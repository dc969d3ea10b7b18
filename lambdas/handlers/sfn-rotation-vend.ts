import { vendCertificate, type RotationDeps } from '../core/rotation/service';
import { lambdaBundle, logger } from './bundle';
import { RotationEnv } from './env';

/** SignCertificate / ActivatePackagedCertificate (rotation-get): the new certificate, registered and attached. */
export const createHandler = (deps: RotationDeps) => async (input: unknown) => {
  const vended = await vendCertificate(
    {
      ...deps,
      onUndoFailure:
        deps.onUndoFailure ?? ((step, error) => logger.error('rotation undo step failed', { step, error })),
    },
    input,
  );
  logger.appendKeys({ thingName: vended.deviceId, certificateId: vended.certificateId });
  return vended;
};

export const handler = lambdaBundle(RotationEnv, async (env) => {
  const [{ awsRotationDeps }, { defaultClients }] = await Promise.all([
    import('../adapters/aws/rotation-deps'),
    import('../adapters/aws/bulk-deps'),
  ]);
  return createHandler(awsRotationDeps(env, defaultClients()));
});
