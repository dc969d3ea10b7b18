import { DescribeCACertificateCommand, type IoTClient } from '@aws-sdk/client-iot';
import { GetParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { NotFoundError, ValidationError } from '../../core/errors';
import { buildChain, decodePemBlocks, parseCertificate, type ParsedCertificate } from '../../core/pki';
import { isAwsError } from './sdk-errors';

/** SSM parameter names, as CDF names them (plus certflow's chain and KMS key id parameters). */
export const caKeyParameter = (caId: string): string => `cdf-ca-key-${caId}`;
export const caChainParameter = (caId: string): string => `cdf-ca-chain-${caId}`;
export const caKmsKeyParameter = (caId: string): string => `cdf-ca-kms-key-${caId}`;
/** the certificate of a CA created by certflow (not registered with AWS IoT) */
export const caCertParameter = (caId: string): string => `cdf-ca-cert-${caId}`;

export const caNotFound = (caId: string, cause: unknown): NotFoundError =>
  new NotFoundError('CA_NOT_FOUND', `CA ${caId} not found`, { cause, details: { caId } });

/** An SSM parameter's value; undefined when the parameter does not exist. */
export async function getParameter(ssm: SSMClient, name: string, decrypt: boolean): Promise<string | undefined> {
  try {
    const { Parameter } = await ssm.send(
      new GetParameterCommand({ Name: name, ...(decrypt ? { WithDecryption: true } : {}) }),
    );
    return Parameter?.Value;
  } catch (error) {
    if (isAwsError(error, 'ParameterNotFound')) return undefined;
    throw error;
  }
}

/** The CA certificate registered with AWS IoT (`DescribeCACertificate`). */
/** The CA certificate: SSM `cdf-ca-cert-{caId}` for CAs certflow created, else AWS IoT (CDF's CAs). */
export async function caCertificate(ssm: SSMClient, iot: IoTClient, caId: string): Promise<ParsedCertificate> {
  const pem = await getParameter(ssm, caCertParameter(caId), false);
  if (!pem) return describeCaCertificate(iot, caId);
  const certificate = parseCertificate(pem);
  if (certificate.id !== caId) {
    throw new ValidationError('CA_CERT_MISMATCH', `${caCertParameter(caId)} holds another certificate`, {
      details: { caId },
    });
  }
  return certificate;
}

export async function describeCaCertificate(iot: IoTClient, caId: string): Promise<ParsedCertificate> {
  let pem: string | undefined;
  try {
    const output = await iot.send(new DescribeCACertificateCommand({ certificateId: caId }));
    pem = output.certificateDescription?.certificatePem;
  } catch (error) {
    if (isAwsError(error, 'ResourceNotFoundException')) throw caNotFound(caId, error);
    throw error;
  }
  if (!pem) throw new Error(`AWS IoT returned no certificate for CA ${caId}`);
  return parseCertificate(pem);
}

/**
 * The CA certificate followed by the certificates above it, from the PEM bundle of SSM `cdf-ca-chain-{caId}` (any
 * order; absent → the CA alone). Every certificate of the bundle must belong to the CA's chain.
 */
export function caChainFromBundle(
  caId: string,
  caCert: ParsedCertificate,
  bundle: string | undefined,
): ParsedCertificate[] {
  if (bundle === undefined || bundle.trim() === '') return [caCert];
  const pool: ParsedCertificate[] = [];
  for (const block of decodePemBlocks(bundle)) {
    if (block.label !== 'CERTIFICATE') continue;
    const cert = parseCertificate(block.der);
    // the bundle may repeat the CA itself or a certificate twice
    if (cert.id !== caCert.id && !pool.some((c) => c.id === cert.id)) pool.push(cert);
  }
  const chain = buildChain(caCert, pool);
  if (chain.length !== pool.length + 1) {
    throw new ValidationError(
      'CA_CHAIN_INVALID',
      `the chain of CA ${caId} (${caChainParameter(caId)}) holds certificates that do not certify it`,
      { details: { caId } },
    );
  }
  return chain;
}

/** Remembers loads for the life of the container; a failed load is forgotten so that the next call retries. */
export class LoadCache<T> {
  private readonly entries = new Map<string, Promise<T>>();

  get(key: string, load: () => Promise<T>): Promise<T> {
    let entry = this.entries.get(key);
    if (!entry) {
      entry = load();
      this.entries.set(key, entry);
      void entry.catch(() => this.entries.delete(key));
    }
    return entry;
  }

  clear(): void {
    this.entries.clear();
  }
}
