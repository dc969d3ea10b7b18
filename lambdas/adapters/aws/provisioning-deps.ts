/** Builds the provisioning ports from AWS services, once per Lambda container. */
import { randomUUID } from 'node:crypto';
import type { Pace } from '../../core/pacing';
import type { BulkProvisioningDeps } from '../../core/provisioning/bulk';
import { BULK_PROVISIONING_WORKFLOW, DEFAULT_BULK_PROVISIONING_CONFIG } from '../../core/provisioning/bulk';
import { caAliasesFromEnv } from '../../core/provisioning/cdf';
import { systemClock } from '../../core/ports';
import type { CsrSigner } from '../../core/signing/csr-signer';
import type { ProvisioningApiEnv, ProvisioningEnv } from '../../handlers/env';
import { awsPace, caKeyStoreFor, type AwsClients } from './bulk-deps';
import { csrSignerFor } from './csr-signers';
import { DynamoCaStore } from './dynamo-ca-store';
import { EventBridgePublisher } from './eventbridge-publisher';
import { IotDeviceRegistry } from './iot-device-registry';
import { IotCaCertificates, IotThingRegistrar } from './iot-provisioning';
import { S3ObjectStore } from './s3-object-store';
import { SfnWorkflowStarter } from './sfn-workflow-starter';

/**
 * Provisioning's AWS calls are paced as bulk issuance's and rotation's are (issue 7): AWS IoT registration,
 * CreateThing, AttachThingPrincipal, AttachPolicy and RegisterThing, ACM PCA issue and poll, KMS Sign take their slot
 * of the deployment-wide schedule (DynamoRateLimiter in the task table, rates from API_RATES) and throttling is
 * retried with full-jitter backoff. ACM PCA signs through the shared CsrSigner (one per CA ARN).
 */
export function awsProvisioningDeps(
  env: ProvisioningEnv & Partial<Pick<ProvisioningApiEnv, 'PROVISIONING_STATE_MACHINE_ARN'>>,
  clients: AwsClients,
  rawEnv: Record<string, string | undefined> = process.env,
  pace: Pace = awsPace({ API_RATES: env.API_RATES, TASK_TABLE_NAME: env.RATE_LIMIT_TABLE_NAME }, clients),
): BulkProvisioningDeps {
  const caKeys = caKeyStoreFor(env.CA_KEY_STORE, clients, pace);
  const pcaSigners = new Map<string, CsrSigner>();
  const pca = (caArn: string): CsrSigner => {
    let signer = pcaSigners.get(caArn);
    if (!signer) {
      signer = csrSignerFor(
        { type: 'acm-pca', arn: caArn },
        // provisioning issues with PCA's EndEntityCertificate/V1, as before the signer was shared
        { caKeys: () => caKeys, pca: clients.pca, pcaOptions: { pace }, pcaSigner: { template: 'pca-default' } },
      );
      pcaSigners.set(caArn, signer);
    }
    return signer;
  };
  return {
    objects: new S3ObjectStore(clients.s3, env.BUCKET_NAME),
    registry: new IotDeviceRegistry(clients.iot, pace),
    caKeys,
    cas: new DynamoCaStore(clients.dynamodb, env.CA_TABLE_NAME),
    events: new EventBridgePublisher(clients.eventBridge, env.EVENT_BUS_NAME),
    clock: systemClock,
    aliases: caAliasesFromEnv(rawEnv),
    defaultDaysExpiry: env.DEFAULT_DAYS_EXPIRY,
    pca,
    iotCas: new IotCaCertificates(clients.iot),
    registrar: new IotThingRegistrar(clients.iot, pace),
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
