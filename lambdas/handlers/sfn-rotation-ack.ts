import { acknowledgeRotation, type RotationDeps } from '../core/rotation/service';
import { lambdaBundle, logger } from './bundle';
import { RotationEnv } from './env';

/** AcknowledgeRotation (rotation-ack): retire the previous certificate(s), leave the group, Certificate Rotated. */
export const createHandler = (deps: RotationDeps) => async (input: unknown) => {
  const result = await acknowledgeRotation(deps, input);
  logger.appendKeys({ thingName: result.deviceId });
  return result;
};

export const handler = lambdaBundle(RotationEnv, async (env) => {
  const [{ awsRotationDeps }, { defaultClients }] = await Promise.all([
    import('../adapters/aws/rotation-deps'),
    import('../adapters/aws/bulk-deps'),
  ]);
  return createHandler(awsRotationDeps(env, defaultClients()));
});
