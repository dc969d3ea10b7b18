/** Builds the rotation workflows' ports from AWS services, once per Lambda container. */
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { DEFAULT_ROTATION_CONFIG, type RotationConfig, type RotationDeps } from '../../core/rotation/service';
import { systemClock } from '../../core/ports';
import type { RotationEnv } from '../../handlers/env';
import { AcmPcaCertificateAuthority } from './acm-pca-authority';
import { caKeyStoreFor, type AwsClients } from './bulk-deps';
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
    ...(env.ROTATION_CA_ID ? { caId: env.ROTATION_CA_ID } : {}),
    validityDays: env.ROTATION_VALIDITY_DAYS,
    ...(env.ROTATED_CERTIFICATE_POLICY_NAME
      ? { rotatedCertificatePolicyName: env.ROTATED_CERTIFICATE_POLICY_NAME }
      : {}),
    deletePreviousCertificate: env.DELETE_PREVIOUS_CERTIFICATE,
    registerWithCa: env.ROTATION_REGISTER_WITH_CA,
  };
}

export function awsRotationDeps(
  env: RotationEnv,
  clients: AwsClients,
  iotData: IoTDataPlaneClient = new IoTDataPlaneClient({}),
): RotationDeps {
  return {
    registry: new IotDeviceRegistry(clients.iot),
    messaging: new IotDataDeviceMessaging(iotData),
    objects: new S3ObjectStore(clients.s3, env.BUCKET_NAME),
    caKeys: caKeyStoreFor(env.CA_KEY_STORE, clients),
    events: new EventBridgePublisher(clients.eventBridge, env.EVENT_BUS_NAME),
    clock: systemClock,
    config: rotationConfig(env),
    ...(env.ROTATION_PCA_ARN ? { pca: new AcmPcaCertificateAuthority(clients.pca, env.ROTATION_PCA_ARN) } : {}),
  };
}
