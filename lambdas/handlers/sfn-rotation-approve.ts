import { approveDevice, type RotationDeps } from '../core/rotation/service';
import { lambdaBundle, logger } from './bundle';
import { RotationEnv } from './env';

/** ApproveDevice (rotation-get and rotation-ack): the thing exists and is in the rotation group, else rejected. */
export const createHandler = (deps: RotationDeps) => async (input: unknown) => {
  const request = await approveDevice(deps, input);
  logger.appendKeys({ thingName: request.deviceId });
  return request;
};

export const handler = lambdaBundle(RotationEnv, async (env) => {
  const [{ awsRotationDeps }, { defaultClients }] = await Promise.all([
    import('../adapters/aws/rotation-deps'),
    import('../adapters/aws/bulk-deps'),
  ]);
  return createHandler(awsRotationDeps(env, defaultClients()));
});
