import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoRateLimiter } from '../adapters/aws/dynamo-rate-limiter';
import { isThrottlingError } from '../adapters/aws/sdk-errors';
import { revokeInRegistry, type RegistryRevocationDeps } from '../core/ca/registry-revocation';
import { createPace, resolveApiRates } from '../core/pacing';
import { lambdaBundle, logger } from './bundle';
import { RegistryRevocationEnv } from './env';

/** The registry-revocation workflow's one Task: `Certificate Revoked` → the certificate REVOKED in the registry. */
export const createHandler = (deps: RegistryRevocationDeps) => (input: unknown) => revokeInRegistry(deps, input);

export const handler = lambdaBundle(RegistryRevocationEnv, async (env) => {
  const [{ IoTClient }, { IotDeviceRegistry }] = await Promise.all([
    import('@aws-sdk/client-iot'),
    import('../adapters/aws/iot-device-registry'),
  ]);
  return createHandler({
    registry: new IotDeviceRegistry(new IoTClient({})),
    pace: createPace({
      limiter: new DynamoRateLimiter(new DynamoDBClient({}), resolveApiRates(env.API_RATES), env.RATE_TABLE_NAME),
      isThrottling: isThrottlingError,
    }),
    log: (message, extra) => logger.info(message, extra),
  });
});
