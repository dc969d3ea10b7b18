/**
 * Device certificates signed outside certflow, for suppliers mapped to ACM Private CA or to AWS IoT's own CA
 * (CDF's `SUPPLIER_CA_…` = a PCA ARN or `AwsIotDefault`).
 */
import { ACMPCAClient } from '@aws-sdk/client-acm-pca';
import { CreateKeysAndCertificateCommand, IoTClient } from '@aws-sdk/client-iot';
import {
  buildCsr,
  deviceKeyFromPem,
  encodeName,
  generateDeviceKey,
  parseCertificate,
  privateKeyPem,
  publicKeyPem,
  toPem,
} from '../../core/pki';
import type { KeyType, SubjectFields } from '../../core/pki';
import { type Pace, unpaced } from '../../core/pacing';
import type {
  DeviceCertificateIssuer,
  DeviceFiles,
  ExternalIssueInput,
  ExternalIssueProgress,
  SupplierCa,
} from '../../core/ports';
import { AcmPcaCertificateAuthority, type PcaIssuedCertificate } from './acm-pca-authority';

/**
 * certflow makes the key and a CSR; ACM PCA signs it (IssueCertificate with an idempotency token, GetCertificate).
 * The key is made (and saved by the chunk) before anything is billed; once IssueCertificate answered, its ARN is
 * recorded so that a re-run only fetches the certificate.
 */
export class AcmPcaDeviceIssuer implements DeviceCertificateIssuer {
  constructor(private readonly ca: AcmPcaCertificateAuthority) {}

  makeKey(keyType: KeyType): string {
    return privateKeyPem(generateDeviceKey(keyType));
  }

  async issue(
    input: ExternalIssueInput,
    progress: ExternalIssueProgress = {},
    record: (progress: ExternalIssueProgress) => void = () => undefined,
  ): Promise<DeviceFiles> {
    const key = progress.privateKeyPem ? deviceKeyFromPem(progress.privateKeyPem) : generateDeviceKey(input.keyType);
    let issued: PcaIssuedCertificate | undefined;
    if (progress.certificateArn) {
      issued = await this.ca.fetchIssued(progress.certificateArn);
      if (!parseCertificate(issued.certificatePem).spki.equals(key.spki)) issued = undefined;
    }
    if (!issued) {
      const subject = encodeName({ ...(input.subject as SubjectFields), commonName: input.commonName });
      const csrPem = toPem('CERTIFICATE REQUEST', buildCsr(subject, key));
      const signingAlgorithm = await this.ca.signingAlgorithmForCa();
      const request = { csrPem, validityDays: input.validityDays, signingAlgorithm };
      issued = await this.ca.issue({ ...request, idempotencyToken: input.idempotencyToken }, (certificateArn) =>
        record({ certificateArn }),
      );
      if (!parseCertificate(issued.certificatePem).spki.equals(key.spki)) {
        // The token was used within ACM PCA's idempotency window for another key (an attempt whose key was never
        // saved): that certificate is never handed out; issue under a token of this key's own.
        issued = await this.ca.issue(
          { ...request, idempotencyToken: `${input.idempotencyToken}:${key.spki.subarray(-8).toString('hex')}` },
          (certificateArn) => record({ certificateArn }),
        );
        if (!parseCertificate(issued.certificatePem).spki.equals(key.spki)) {
          throw new Error('ACM PCA returned a certificate for another key');
        }
      }
    }
    const cert = parseCertificate(issued.certificatePem);
    return {
      commonName: input.commonName,
      certificateId: cert.id,
      serialNumber: cert.serialNumber,
      certificatePem: cert.pem,
      privateKeyPem: privateKeyPem(key),
      publicKeyPem: publicKeyPem(key),
      ...(input.includeChain && issued.chainPem ? { chainPem: issued.chainPem } : {}),
    };
  }
}

/**
 * AWS IoT makes the key and signs with its own CA (CreateKeysAndCertificate). As in CDF the certificate is left
 * INACTIVE until a device activates it; AWS IoT chooses its subject, so the batch's common name is recorded in
 * the manifest only.
 */
export class IotDefaultDeviceIssuer implements DeviceCertificateIssuer {
  constructor(
    private readonly iot: IoTClient,
    private readonly pace: Pace = unpaced,
  ) {}

  async issue(input: ExternalIssueInput): Promise<DeviceFiles> {
    const out = await this.pace('iot:CreateKeysAndCertificate', () =>
      this.iot.send(new CreateKeysAndCertificateCommand({ setAsActive: false })),
    );
    if (!out.certificatePem || !out.keyPair?.PrivateKey) throw new Error('AWS IoT returned no certificate or key');
    const cert = parseCertificate(out.certificatePem);
    return {
      commonName: input.commonName,
      certificateId: out.certificateId ?? cert.id,
      serialNumber: cert.serialNumber,
      certificatePem: cert.pem,
      privateKeyPem: out.keyPair.PrivateKey,
      ...(out.keyPair.PublicKey ? { publicKeyPem: out.keyPair.PublicKey } : {}),
    };
  }
}

/** Chooses the issuer for a supplier whose CA is outside certflow; PCA issuers are kept per ARN. */
export function externalIssuers(clients: { pca: ACMPCAClient; iot: IoTClient }, pace: Pace = unpaced) {
  const pca = new Map<string, AcmPcaDeviceIssuer>();
  return (ca: Exclude<SupplierCa, { type: 'certflow' }>): DeviceCertificateIssuer => {
    if (ca.type === 'aws-iot') return new IotDefaultDeviceIssuer(clients.iot, pace);
    let issuer = pca.get(ca.arn);
    if (!issuer) {
      issuer = new AcmPcaDeviceIssuer(new AcmPcaCertificateAuthority(clients.pca, ca.arn, { pace }));
      pca.set(ca.arn, issuer);
    }
    return issuer;
  };
}
