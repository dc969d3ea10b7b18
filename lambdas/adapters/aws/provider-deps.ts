/** Builds the certificate provider's ports from AWS services, once per Lambda container. */
import { ACMPCAClient } from '@aws-sdk/client-acm-pca';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { IoTClient } from '@aws-sdk/client-iot';
import { KMSClient } from '@aws-sdk/client-kms';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { CertificateProviderDeps } from '../../core/provider/certificate-provider';
import type { Pace } from '../../core/pacing';
import { systemClock } from '../../core/ports';
import type { CertificateProviderEnv } from '../../handlers/env';
import type { AcmPcaOptions } from './acm-pca-authority';
import { awsPace, caKeyStoreFor } from './bulk-deps';
import { csrSignerFor } from './csr-signers';
import { DynamoCaStore } from './dynamo-ca-store';
import { EventBridgePublisher } from './eventbridge-publisher';

export type ProviderClients = {
  ssm: SSMClient;
  iot: IoTClient;
  kms: KMSClient;
  pca: ACMPCAClient;
  eventBridge: EventBridgeClient;
  dynamodb: DynamoDBClient;
};

/**
 * AWS IoT gives CreateCertificateFromCsr 5 seconds. Each SDK call gets at most 1 s (0.5 s to connect) and one retry,
 * so that one stalled connection cannot eat the budget.
 */
const CALL_LIMITS = { maxAttempts: 2, requestHandler: { connectionTimeout: 500, requestTimeout: 1000 } };

export const providerClients = (): ProviderClients => ({
  ssm: new SSMClient(CALL_LIMITS),
  iot: new IoTClient(CALL_LIMITS),
  kms: new KMSClient(CALL_LIMITS),
  pca: new ACMPCAClient(CALL_LIMITS),
  eventBridge: new EventBridgeClient(CALL_LIMITS),
  dynamodb: new DynamoDBClient(CALL_LIMITS),
});

/**
 * GetCertificate waits for ACM PCA: 100 ms, then doubling up to 400 ms, 8 polls at most — 2.7 s of waiting in all,
 * which leaves the rest of the 5 seconds for DescribeCertificateAuthority (first call only), IssueCertificate, the
 * polls themselves and PutEvents. PCA usually signs within the first second.
 */
export const PROVIDER_PCA_WAIT: Required<Pick<AcmPcaOptions, 'maxPolls' | 'initialDelayMs' | 'maxDelayMs'>> = {
  maxPolls: 8,
  initialDelayMs: 100,
  maxDelayMs: 400,
};

/**
 * The provider's pace (issue 7): ACM PCA's IssueCertificate and GetCertificate and KMS Sign take their slot of the
 * deployment-wide schedule (DynamoRateLimiter in the task table, rates from API_RATES), as bulk, rotation and
 * provisioning do, but within AWS IoT's 5 seconds: a slot more than 1 s away fails fast (RateLimitBacklogError, AWS
 * IoT reports the failure to the device, which retries) and throttling is retried twice, 50 ms then up to 100 ms of
 * full jitter (ceiling 400 ms).
 */
export const PROVIDER_PACING = {
  limiter: { maxWaitMs: 1000 },
  retry: { maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 400 },
} as const;

export const providerPace = (
  env: Pick<CertificateProviderEnv, 'API_RATES' | 'RATE_LIMIT_TABLE_NAME'>,
  clients: Pick<ProviderClients, 'dynamodb'>,
): Pace =>
  awsPace({ API_RATES: env.API_RATES, TASK_TABLE_NAME: env.RATE_LIMIT_TABLE_NAME }, clients, {
    limiter: PROVIDER_PACING.limiter,
    retry: PROVIDER_PACING.retry,
  });

export function awsCertificateProviderDeps(
  env: CertificateProviderEnv,
  clients: ProviderClients,
  options: { sleep?: (ms: number) => Promise<void> } = {},
  pace: Pace = providerPace(env, clients),
): CertificateProviderDeps {
  const signer = csrSignerFor(env.SIGNING_CA, {
    caKeys: () => caKeyStoreFor(env.CA_KEY_STORE, clients, pace),
    pca: clients.pca,
    ...(env.CA_TABLE_NAME ? { cas: new DynamoCaStore(clients.dynamodb, env.CA_TABLE_NAME) } : {}),
    pcaOptions: { ...PROVIDER_PCA_WAIT, ...options, pace },
  });
  return {
    signer,
    events: new EventBridgePublisher(clients.eventBridge, env.EVENT_BUS_NAME),
    clock: systemClock,
    validityDays: env.VALIDITY_DAYS,
  };
}
