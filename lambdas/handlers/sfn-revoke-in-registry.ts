import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTClient } from '@aws-sdk/client-iot';
import { DynamoRateLimiter } from '../adapters/aws/dynamo-rate-limiter';
import { IotDeviceRegistry } from '../adapters/aws/iot-device-registry';
import { isThrottlingError } from '../adapters/aws/sdk-errors';
import { revokeInRegistry, type RegistryRevocationDeps } from '../core/ca/registry-revocation';
import { createPace, resolveApiRates } from '../core/pacing';
import { lambdaBundle, logger } from './bundle';
import { RegistryRevocationEnv } from './env';

/** The registry-revocation workflow's one Task: `Certificate Revoked` → the certificate REVOKED in the registry. */
export const createHandler = (deps: RegistryRevocationDeps) => (input: unknown) => revokeInRegistry(deps, input);

export const handler = lambdaBundle(RegistryRevocationEnv, (env) =>
  createHandler({
    registry: new IotDeviceRegistry(new IoTClient({})),
    pace: createPace({
      limiter: new DynamoRateLimiter(new DynamoDBClient({}), resolveApiRates(env.API_RATES), env.RATE_TABLE_NAME),
      isThrottling: isThrottlingError,
    }),
    log: (message, extra) => logger.info(message, extra),
  }),
);
