import { awsRotationDeps } from '../adapters/aws/rotation-deps';
import { defaultClients } from '../adapters/aws/bulk-deps';
import { approveDevice, type RotationDeps } from '../core/rotation/service';
import { lambdaBundle, logger } from './bundle';
import { RotationEnv } from './env';

/** ApproveDevice (rotation-get and rotation-ack): the thing exists and is in the rotation group, else rejected. */
export const createHandler = (deps: RotationDeps) => async (input: unknown) => {
  const request = await approveDevice(deps, input);
  logger.appendKeys({ thingName: request.deviceId });
  return request;
};

export const handler = lambdaBundle(RotationEnv, (env) => createHandler(awsRotationDeps(env, defaultClients())));
