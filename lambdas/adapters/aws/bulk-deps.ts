/** Builds the bulk-issuance ports from AWS services, once per Lambda container. */
import { ACMPCAClient } from '@aws-sdk/client-acm-pca';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { IoTClient } from '@aws-sdk/client-iot';
import { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SSMClient } from '@aws-sdk/client-ssm';
import { randomUUID } from 'node:crypto';
import type { ChunkDeps } from '../../core/bulk/chunk';
import { DEFAULT_BULK_CONFIG, type BulkConfig } from '../../core/bulk/request';
import { BULK_WORKFLOW, type BatchDeps } from '../../core/bulk/service';
import { createPace, type Pace, resolveApiRates, type RetryPolicy } from '../../core/pacing';
import { systemClock, type CaKeyStore } from '../../core/ports';
import type { BulkApiEnv, BulkEnv } from '../../handlers/env';
import { DynamoRateLimiter, type DynamoRateLimiterOptions } from './dynamo-rate-limiter';
import { DynamoTaskStore } from './dynamo-task-store';
import { EnvSupplierDirectory } from './env-supplier-directory';
import { EventBridgePublisher } from './eventbridge-publisher';
import { externalIssuers } from './external-issuers';
import { IotCertificateRegistry } from './iot-certificate-registry';
import { KmsCaKeyStore } from './kms-signer';
import { S3ObjectStore } from './s3-object-store';
import { isThrottlingError } from './sdk-errors';
import { SfnWorkflowStarter } from './sfn-workflow-starter';
import { SsmCaKeyStore } from './ssm-ca-key-store';

export interface AwsClients {
  dynamodb: DynamoDBClient;
  s3: S3Client;
  eventBridge: EventBridgeClient;
  sfn: SFNClient;
  ssm: SSMClient;
  iot: IoTClient;
  kms: KMSClient;
  pca: ACMPCAClient;
}

export const defaultClients = (): AwsClients => ({
  dynamodb: new DynamoDBClient({}),
  s3: new S3Client({}),
  eventBridge: new EventBridgeClient({}),
  sfn: new SFNClient({}),
  ssm: new SSMClient({}),
  iot: new IoTClient({}),
  kms: new KMSClient({}),
  pca: new ACMPCAClient({}),
});

export function bulkConfig(env: BulkEnv): BulkConfig {
  return {
    ...DEFAULT_BULK_CONFIG,
    chunkSize: env.CHUNK_SIZE,
    maxQuantity: env.MAX_QUANTITY,
    maxConcurrency: env.MAX_CONCURRENCY,
    defaultDaysExpiry: env.DEFAULT_DAYS_EXPIRY,
    defaults: { ...DEFAULT_BULK_CONFIG.defaults, ...(JSON.parse(env.DEFAULT_CERT_INFO) as BulkConfig['defaults']) },
    rates: resolveApiRates(env.API_RATES),
    caKeyStore: env.CA_KEY_STORE,
    chunkBudgetSeconds: env.CHUNK_BUDGET_SECONDS,
    pcaCertificatesPerCa: env.PCA_CERTIFICATES_PER_CA,
  };
}

/**
 * The pace of a chunk's AWS calls: the deployment-wide schedule in the task table (DynamoRateLimiter) at the
 * configured rates, throttling answers retried with full-jitter backoff.
 */
export function awsPace(
  env: Pick<BulkEnv, 'API_RATES' | 'TASK_TABLE_NAME'>,
  clients: Pick<AwsClients, 'dynamodb'>,
  options: { retry?: RetryPolicy; limiter?: DynamoRateLimiterOptions } = {},
): Pace {
  return createPace({
    limiter: new DynamoRateLimiter(
      clients.dynamodb,
      resolveApiRates(env.API_RATES),
      env.TASK_TABLE_NAME,
      options.limiter ?? {},
    ),
    isThrottling: isThrottlingError,
    ...(options.retry ? { retry: options.retry } : {}),
  });
}

export function awsBatchDeps(
  env: BulkEnv & Partial<Pick<BulkApiEnv, 'BULK_STATE_MACHINE_ARN'>>,
  clients: AwsClients,
  rawEnv: Record<string, string | undefined> = process.env,
): BatchDeps {
  return {
    tasks: new DynamoTaskStore(clients.dynamodb, env.TASK_TABLE_NAME),
    objects: new S3ObjectStore(clients.s3, env.BUCKET_NAME),
    workflows: new SfnWorkflowStarter(
      clients.sfn,
      env.BULK_STATE_MACHINE_ARN ? { [BULK_WORKFLOW]: env.BULK_STATE_MACHINE_ARN } : {},
    ),
    suppliers: new EnvSupplierDirectory({ ...rawEnv, SUPPLIERS: env.SUPPLIERS }),
    events: new EventBridgePublisher(clients.eventBridge, env.EVENT_BUS_NAME),
    clock: systemClock,
    config: bulkConfig(env),
    newId: randomUUID,
  };
}

/** The CA key store the functions load certflow CAs from: SSM SecureString PEMs, or KMS asymmetric keys (KMS Sign paced). */
export const caKeyStoreFor = (
  store: 'ssm' | 'kms',
  clients: Pick<AwsClients, 'ssm' | 'iot' | 'kms'>,
  pace?: Pace,
): CaKeyStore =>
  store === 'kms'
    ? new KmsCaKeyStore(clients.ssm, clients.iot, clients.kms, pace)
    : new SsmCaKeyStore(clients.ssm, clients.iot);

export function awsChunkDeps(env: BulkEnv, clients: AwsClients, pace: Pace = awsPace(env, clients)): ChunkDeps {
  return {
    objects: new S3ObjectStore(clients.s3, env.BUCKET_NAME),
    tasks: new DynamoTaskStore(clients.dynamodb, env.TASK_TABLE_NAME),
    caKeys: caKeyStoreFor(env.CA_KEY_STORE, clients, pace),
    events: new EventBridgePublisher(clients.eventBridge, env.EVENT_BUS_NAME),
    registry: new IotCertificateRegistry(clients.iot, pace),
    externalIssuer: externalIssuers(clients, pace),
    clock: systemClock,
    zipLevel: env.ZIP_LEVEL,
  };
}
