import { createHash } from 'node:crypto';
import type { IoTClient } from '@aws-sdk/client-iot';
import {
  GetPublicKeyCommand,
  type KeySpec,
  type KMSClient,
  SignCommand,
  type SigningAlgorithmSpec,
} from '@aws-sdk/client-kms';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { ValidationError } from '../../core/errors';
import { type Pace, unpaced } from '../../core/pacing';
import {
  type CertificateSigner,
  describePublicKey,
  type KeyType,
  type SignatureAlgorithm,
  signatureAlgorithmFor,
} from '../../core/pki';
import type { CaKeyStore, LoadedCa } from '../../core/ports';
import {
  caChainFromBundle,
  caChainParameter,
  caKmsKeyParameter,
  caNotFound,
  describeCaCertificate,
  getParameter,
  LoadCache,
} from './ca-certificates';

/** KMS Sign takes RAW messages up to 4096 bytes; longer ones are hashed here and sent as DIGEST. */
export const KMS_MAX_RAW_MESSAGE = 4096;

/** The KMS key specs certflow signs certificates with, and the KMS algorithm matching X.509's. */
const KMS_KEY_SPECS: Partial<Record<KeySpec, { keyType: KeyType; signingAlgorithm: SigningAlgorithmSpec }>> = {
  ECC_NIST_P256: { keyType: 'ec-p256', signingAlgorithm: 'ECDSA_SHA_256' },
  ECC_NIST_P384: { keyType: 'ec-p384', signingAlgorithm: 'ECDSA_SHA_384' },
  RSA_2048: { keyType: 'rsa-2048', signingAlgorithm: 'RSASSA_PKCS1_V1_5_SHA_256' },
  RSA_3072: { keyType: 'rsa-3072', signingAlgorithm: 'RSASSA_PKCS1_V1_5_SHA_256' },
  RSA_4096: { keyType: 'rsa-4096', signingAlgorithm: 'RSASSA_PKCS1_V1_5_SHA_256' },
};

/**
 * CertificateSigner for a KMS asymmetric key (SIGN_VERIFY): the private key never leaves KMS. KMS returns ECDSA
 * signatures DER-encoded and RSA ones PKCS#1 v1.5, which is what X.509 carries.
 */
export class KmsSigner implements CertificateSigner {
  private constructor(
    private readonly kms: KMSClient,
    readonly keyId: string,
    readonly keyType: KeyType,
    readonly algorithm: SignatureAlgorithm,
    readonly signingAlgorithm: SigningAlgorithmSpec,
    /** the key's SubjectPublicKeyInfo, DER */
    readonly publicKeySpki: Buffer,
    private readonly pace: Pace,
  ) {}

  /** Reads the public key once (GetPublicKey) and checks that certflow can sign certificates with it. */
  static async create(kms: KMSClient, keyId: string, pace: Pace = unpaced): Promise<KmsSigner> {
    const output = await kms.send(new GetPublicKeyCommand({ KeyId: keyId }));
    const spec = output.KeySpec ? KMS_KEY_SPECS[output.KeySpec] : undefined;
    if (!spec || output.KeyUsage !== 'SIGN_VERIFY' || !output.PublicKey) {
      throw new ValidationError(
        'UNSUPPORTED_KMS_KEY',
        `KMS key ${keyId} (${output.KeySpec ?? 'unknown spec'}, ${output.KeyUsage ?? 'unknown usage'}) cannot sign ` +
          'certificates: use a SIGN_VERIFY key of ECC_NIST_P256, ECC_NIST_P384 or RSA_2048/3072/4096',
        { details: { keyId } },
      );
    }
    if (output.SigningAlgorithms && !output.SigningAlgorithms.includes(spec.signingAlgorithm)) {
      throw new ValidationError('UNSUPPORTED_KMS_KEY', `KMS key ${keyId} does not offer ${spec.signingAlgorithm}`, {
        details: { keyId },
      });
    }
    const spki = Buffer.from(output.PublicKey);
    const described = describePublicKey(spki);
    if (described.keyType !== spec.keyType) {
      throw new ValidationError(
        'UNSUPPORTED_KMS_KEY',
        `KMS key ${keyId}: public key does not match ${output.KeySpec}`,
        {
          details: { keyId },
        },
      );
    }
    return new KmsSigner(
      kms,
      output.KeyId ?? keyId,
      spec.keyType,
      signatureAlgorithmFor(spec.keyType),
      spec.signingAlgorithm,
      spki,
      pace,
    );
  }

  async sign(data: Buffer): Promise<Buffer> {
    const raw = data.length <= KMS_MAX_RAW_MESSAGE;
    const message = raw ? data : createHash(this.algorithm.hash).update(data).digest();
    const output = await this.pace('kms:Sign', () =>
      this.kms.send(
        new SignCommand({
          KeyId: this.keyId,
          Message: message,
          MessageType: raw ? 'RAW' : 'DIGEST',
          SigningAlgorithm: this.signingAlgorithm,
        }),
      ),
    );
    if (!output.Signature) throw new Error(`KMS returned no signature for key ${this.keyId}`);
    return Buffer.from(output.Signature);
  }
}

/**
 * CaKeyStore for CAs whose key is a KMS asymmetric key: the certificate comes from AWS IoT
 * (`DescribeCACertificate`), the KMS key id (or ARN or alias) from SSM `cdf-ca-kms-key-{caId}`, the chain above the CA
 * from `cdf-ca-chain-{caId}`. Loaded CAs are cached for the life of the container.
 */
export class KmsCaKeyStore implements CaKeyStore {
  private readonly cache = new LoadCache<LoadedCa>();

  constructor(
    private readonly ssm: SSMClient,
    private readonly iot: IoTClient,
    private readonly kms: KMSClient,
    /** kms:Sign at the shared rate (bulk chunks sign one certificate per call) */
    private readonly pace: Pace = unpaced,
  ) {}

  load(caId: string): Promise<LoadedCa> {
    return this.cache.get(caId, () => this.fetch(caId));
  }

  private async fetch(caId: string): Promise<LoadedCa> {
    const [keyId, certificate, bundle] = await Promise.all([
      getParameter(this.ssm, caKmsKeyParameter(caId), false),
      describeCaCertificate(this.iot, caId),
      getParameter(this.ssm, caChainParameter(caId), false),
    ]);
    if (keyId === undefined || keyId.trim() === '') {
      throw caNotFound(caId, new Error(`SSM parameter ${caKmsKeyParameter(caId)} not found`));
    }
    const signer = await KmsSigner.create(this.kms, keyId.trim(), this.pace);
    if (!signer.publicKeySpki.equals(certificate.spki)) {
      throw new ValidationError('CA_KEY_MISMATCH', `the KMS key of CA ${caId} does not match its certificate`, {
        details: { caId, certificateId: certificate.id, keyId: signer.keyId },
      });
    }
    const chain = caChainFromBundle(caId, certificate, bundle);
    return { caId, issuer: { certificate, signer }, chain };
  }
}
