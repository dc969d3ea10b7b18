/** Builds the rotation workflows' ports from AWS services, once per Lambda container. */
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { DEFAULT_ROTATION_CONFIG, type RotationConfig, type RotationDeps } from '../../core/rotation/service';
import { systemClock } from '../../core/ports';
import type { RotationEnv } from '../../handlers/env';
import type { Pace } from '../../core/pacing';
import { awsPace, caKeyStoreFor, type AwsClients } from './bulk-deps';
import { csrSignerFor } from './csr-signers';
import { EventBridgePublisher } from './eventbridge-publisher';
import { IotDataDeviceMessaging } from './iot-data-device-messaging';
import { IotDeviceRegistry } from './iot-device-registry';
import { S3ObjectStore } from './s3-object-store';

export function rotationConfig(env: RotationEnv): RotationConfig {
  return {
    ...DEFAULT_ROTATION_CONFIG,
    topicPrefix: env.ROTATION_TOPIC_PREFIX,
    thingGroupName: env.ROTATION_THING_GROUP,
    requireRegisteredThing: env.ROTATION_REQUIRE_THING,
    validityDays: env.ROTATION_VALIDITY_DAYS,
    ...(env.ROTATED_CERTIFICATE_POLICY_NAME
      ? { rotatedCertificatePolicyName: env.ROTATED_CERTIFICATE_POLICY_NAME }
      : {}),
    deletePreviousCertificate: env.DELETE_PREVIOUS_CERTIFICATE,
    registerWithCa: env.ROTATION_REGISTER_WITH_CA,
  };
}

/**
 * The rotation's AWS calls are paced as bulk's are (issue 7): AWS IoT registration and attachment, ACM PCA issue and
 * poll take their slot of the deployment-wide schedule (DynamoRateLimiter in the task table, rates from API_RATES)
 * and throttling is retried with full-jitter backoff.
 */
export function awsRotationDeps(
  env: RotationEnv,
  clients: AwsClients,
  iotData: IoTDataPlaneClient = new IoTDataPlaneClient({}),
  pace: Pace = awsPace({ API_RATES: env.API_RATES, TASK_TABLE_NAME: env.RATE_LIMIT_TABLE_NAME }, clients),
): RotationDeps {
  return {
    registry: new IotDeviceRegistry(clients.iot, pace),
    messaging: new IotDataDeviceMessaging(iotData),
    objects: new S3ObjectStore(clients.s3, env.BUCKET_NAME),
    events: new EventBridgePublisher(clients.eventBridge, env.EVENT_BUS_NAME),
    clock: systemClock,
    config: rotationConfig(env),
    ...(env.ROTATION_SIGNING_CA
      ? {
          signer: csrSignerFor(env.ROTATION_SIGNING_CA, {
            caKeys: () => caKeyStoreFor(env.CA_KEY_STORE, clients, pace),
            pca: clients.pca,
            pcaOptions: { pace },
            // rotation issues with PCA's EndEntityCertificate/V1, as before the signer was shared
            pcaSigner: { template: 'pca-default' },
          }),
        }
      : {}),
  };
}
