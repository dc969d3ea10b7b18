/** Builds the certificate provider's ports from AWS services, once per Lambda container. */
import { ACMPCAClient } from '@aws-sdk/client-acm-pca';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { IoTClient } from '@aws-sdk/client-iot';
import { KMSClient } from '@aws-sdk/client-kms';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { CertificateProviderDeps } from '../../core/provider/certificate-provider';
import { systemClock } from '../../core/ports';
import type { CertificateProviderEnv } from '../../handlers/env';
import type { AcmPcaOptions } from './acm-pca-authority';
import { csrSignerFor } from './csr-signers';
import { DynamoCaStore } from './dynamo-ca-store';
import { EventBridgePublisher } from './eventbridge-publisher';
import { KmsCaKeyStore } from './kms-signer';
import { SsmCaKeyStore } from './ssm-ca-key-store';

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

export function awsCertificateProviderDeps(
  env: CertificateProviderEnv,
  clients: ProviderClients,
  options: { sleep?: (ms: number) => Promise<void> } = {},
): CertificateProviderDeps {
  const signer = csrSignerFor(env.SIGNING_CA, {
    caKeys: () =>
      env.CA_KEY_STORE === 'kms'
        ? new KmsCaKeyStore(clients.ssm, clients.iot, clients.kms)
        : new SsmCaKeyStore(clients.ssm, clients.iot),
    pca: clients.pca,
    ...(env.CA_TABLE_NAME ? { cas: new DynamoCaStore(clients.dynamodb, env.CA_TABLE_NAME) } : {}),
    pcaOptions: { ...PROVIDER_PCA_WAIT, ...options },
  });
  return {
    signer,
    events: new EventBridgePublisher(clients.eventBridge, env.EVENT_BUS_NAME),
    clock: systemClock,
    validityDays: env.VALIDITY_DAYS,
  };
}
