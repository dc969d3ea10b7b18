/** Builds the provisioning ports from AWS services, once per Lambda container. */
import { randomUUID } from 'node:crypto';
import type { BulkProvisioningDeps } from '../../core/provisioning/bulk';
import { BULK_PROVISIONING_WORKFLOW, DEFAULT_BULK_PROVISIONING_CONFIG } from '../../core/provisioning/bulk';
import { caAliasesFromEnv } from '../../core/provisioning/cdf';
import { systemClock } from '../../core/ports';
import type { ProvisioningApiEnv, ProvisioningEnv } from '../../handlers/env';
import { caKeyStoreFor, type AwsClients } from './bulk-deps';
import { DynamoCaStore } from './dynamo-ca-store';
import { EventBridgePublisher } from './eventbridge-publisher';
import { IotDeviceRegistry } from './iot-device-registry';
import { AcmPcaCsrSigner, IotCaCertificates, IotThingRegistrar } from './iot-provisioning';
import { S3ObjectStore } from './s3-object-store';
import { SfnWorkflowStarter } from './sfn-workflow-starter';

export function awsProvisioningDeps(
  env: ProvisioningEnv & Partial<Pick<ProvisioningApiEnv, 'PROVISIONING_STATE_MACHINE_ARN'>>,
  clients: AwsClients,
  rawEnv: Record<string, string | undefined> = process.env,
): BulkProvisioningDeps {
  return {
    objects: new S3ObjectStore(clients.s3, env.BUCKET_NAME),
    registry: new IotDeviceRegistry(clients.iot),
    caKeys: caKeyStoreFor(env.CA_KEY_STORE, clients),
    cas: new DynamoCaStore(clients.dynamodb, env.CA_TABLE_NAME),
    events: new EventBridgePublisher(clients.eventBridge, env.EVENT_BUS_NAME),
    clock: systemClock,
    aliases: caAliasesFromEnv(rawEnv),
    defaultDaysExpiry: env.DEFAULT_DAYS_EXPIRY,
    pca: new AcmPcaCsrSigner(clients.pca),
    iotCas: new IotCaCertificates(clients.iot),
    registrar: new IotThingRegistrar(clients.iot),
    ...(env.CSR_CA_ID ? { csrCaId: env.CSR_CA_ID } : {}),
    ...(rawEnv.AWS_REGION ? { region: rawEnv.AWS_REGION } : {}),
    workflows: new SfnWorkflowStarter(
      clients.sfn,
      env.PROVISIONING_STATE_MACHINE_ARN ? { [BULK_PROVISIONING_WORKFLOW]: env.PROVISIONING_STATE_MACHINE_ARN } : {},
    ),
    newId: randomUUID,
    bulk: {
      ...DEFAULT_BULK_PROVISIONING_CONFIG,
      chunkSize: env.PROVISIONING_CHUNK_SIZE,
      maxConcurrency: env.PROVISIONING_MAX_CONCURRENCY,
      maxItems: env.PROVISIONING_MAX_ITEMS,
    },
  };
}
