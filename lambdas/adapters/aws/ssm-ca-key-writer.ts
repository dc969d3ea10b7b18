import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import type { IoTClient } from '@aws-sdk/client-iot';
import { PutParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { ConflictError, ValidationError } from '../../core/errors';
import { parseCertificate, type ParsedCertificate, privateKeyToPem, spkiDer } from '../../core/pki';
import type { CaKeyWriter } from '../../core/ports';
import { caCertParameter, caChainParameter, caKeyParameter, getParameter } from './ca-certificates';

export { caCertParameter };
import { isAwsError } from './sdk-errors';

/** Largest value of a Standard parameter; larger values need the Advanced tier (up to 8 KB). */
export const STANDARD_TIER_MAX_BYTES = 4096;
export const ADVANCED_TIER_MAX_BYTES = 8192;

export interface SsmCaKeyWriterOptions {
  /** a customer managed KMS key (id, ARN or alias) for the SecureString; default: the account's aws/ssm key */
  kmsKeyId?: string;
}

type SaveInput = Parameters<CaKeyWriter['save']>[1];

/** Standard tier up to 4 KB, Advanced above (8 KB at most). */
function tierFor(name: string, value: string): 'Standard' | 'Advanced' {
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > ADVANCED_TIER_MAX_BYTES) {
    throw new ValidationError('CA_PARAMETER_TOO_LARGE', `${name} would hold ${bytes} bytes (SSM allows 8192)`, {
      details: { parameter: name, bytes },
    });
  }
  return bytes > STANDARD_TIER_MAX_BYTES ? 'Advanced' : 'Standard';
}

/**
 * CaKeyWriter on SSM Parameter Store, in CDF's names: the PKCS#8 PEM key in the SecureString `cdf-ca-key-{caId}`
 * (encrypted with `kmsKeyId` when given), the chain above the CA (PEM bundle) in the String `cdf-ca-chain-{caId}`
 * when given, and the CA certificate in the String `cdf-ca-cert-{caId}`.
 *
 * The certificate and the chain are written first (overwriting: for a given caId — the SHA-256 of the certificate —
 * they are always the same), the key last and never overwritten, so that a CA is only loadable once complete. A
 * retried save finds its key there and succeeds; a different key under the same name is a ConflictError. The key is
 * never logged nor put in an error.
 *
 * The CA is not registered with AWS IoT: `iot` is accepted for wiring symmetry with SsmCaKeyStore and unused.
 */
export class SsmCaKeyWriter implements CaKeyWriter {
  constructor(
    private readonly ssm: SSMClient,
    readonly iot?: IoTClient,
    private readonly options: SsmCaKeyWriterOptions = {},
  ) {}

  async save(caId: string, ca: SaveInput): Promise<void> {
    const certificate = checkCa(caId, ca.certificatePem, ca.privateKey);
    const certName = caCertParameter(caId);
    await Promise.all([
      this.put(certName, ca.certificatePem, 'String', true),
      ...(ca.chainPem !== undefined && ca.chainPem.trim() !== ''
        ? [this.put(caChainParameter(caId), ca.chainPem, 'String', true)]
        : []),
    ]);
    const keyName = caKeyParameter(caId);
    try {
      await this.put(keyName, privateKeyToPem(ca.privateKey), 'SecureString', false);
    } catch (error) {
      if (!isAwsError(error, 'ParameterAlreadyExists')) throw error;
      if (!(await this.storedKeyMatches(keyName, certificate))) {
        throw new ConflictError('CA_KEY_EXISTS', `${keyName} already holds another key`, { details: { caId } });
      }
    }
  }

  private async put(name: string, value: string, type: 'String' | 'SecureString', overwrite: boolean): Promise<void> {
    const tier = tierFor(name, value);
    await this.ssm.send(
      new PutParameterCommand({
        Name: name,
        Value: value,
        Type: type,
        Overwrite: overwrite,
        Tier: tier,
        ...(type === 'SecureString' && this.options.kmsKeyId !== undefined ? { KeyId: this.options.kmsKeyId } : {}),
      }),
    );
  }

  /** Does the existing key parameter hold this CA's key (a retried save)? Nothing about the key leaves here. */
  private async storedKeyMatches(name: string, certificate: ParsedCertificate): Promise<boolean> {
    const stored = await getParameter(this.ssm, name, true);
    if (stored === undefined) return false;
    try {
      return spkiDer(createPublicKey(createPrivateKey(stored))).equals(certificate.spki);
    } catch {
      return false;
    }
  }
}

/** The certificate must be the CA's (its id is caId) and the key its key. */
function checkCa(caId: string, certificatePem: string, privateKey: KeyObject): ParsedCertificate {
  const certificate = parseCertificate(certificatePem);
  if (certificate.id !== caId) {
    throw new ValidationError('CA_ID_MISMATCH', `the certificate given for CA ${caId} has id ${certificate.id}`, {
      details: { caId, certificateId: certificate.id },
    });
  }
  if (privateKey.type !== 'private' || !spkiDer(createPublicKey(privateKey)).equals(certificate.spki)) {
    throw new ValidationError(
      'CA_KEY_MISMATCH',
      `the private key given for CA ${caId} does not match its certificate`,
      {
        details: { caId },
      },
    );
  }
  return certificate;
}
