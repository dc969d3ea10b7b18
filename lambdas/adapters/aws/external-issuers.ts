/**
 * Device certificates signed outside certflow, for suppliers mapped to ACM Private CA or to AWS IoT's own CA
 * (CDF's `SUPPLIER_CA_…` = a PCA ARN or `AwsIotDefault`).
 */
import { ACMPCAClient } from '@aws-sdk/client-acm-pca';
import { CreateKeysAndCertificateCommand, IoTClient } from '@aws-sdk/client-iot';
import {
  buildCsr,
  encodeName,
  generateDeviceKey,
  parseCertificate,
  privateKeyPem,
  publicKeyPem,
  toPem,
} from '../../core/pki';
import type { SubjectFields } from '../../core/pki';
import type { DeviceCertificateIssuer, DeviceFiles, ExternalIssueInput, SupplierCa } from '../../core/ports';
import { AcmPcaCertificateAuthority } from './acm-pca-authority';

/** certflow makes the key and a CSR; ACM PCA signs it (IssueCertificate with an idempotency token, GetCertificate). */
export class AcmPcaDeviceIssuer implements DeviceCertificateIssuer {
  constructor(private readonly ca: AcmPcaCertificateAuthority) {}

  async issue(input: ExternalIssueInput): Promise<DeviceFiles> {
    const key = generateDeviceKey(input.keyType);
    const subject = encodeName({ ...(input.subject as SubjectFields), commonName: input.commonName });
    const csrPem = toPem('CERTIFICATE REQUEST', buildCsr(subject, key));
    const signingAlgorithm = await this.ca.signingAlgorithmForCa();
    let issued = await this.ca.issue({
      csrPem,
      validityDays: input.validityDays,
      signingAlgorithm,
      idempotencyToken: input.idempotencyToken,
    });
    let cert = parseCertificate(issued.certificatePem);
    if (!cert.spki.equals(key.spki)) {
      // A retried chunk reused the token: ACM PCA returned the certificate of the first attempt's CSR, whose key
      // is lost. Issue again under a token of its own (that first certificate is never handed out).
      issued = await this.ca.issue({
        csrPem,
        validityDays: input.validityDays,
        signingAlgorithm,
        idempotencyToken: `${input.idempotencyToken}:${key.spki.subarray(-8).toString('hex')}`,
      });
      cert = parseCertificate(issued.certificatePem);
      if (!cert.spki.equals(key.spki)) throw new Error('ACM PCA returned a certificate for another key');
    }
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
  constructor(private readonly iot: IoTClient) {}

  async issue(input: ExternalIssueInput): Promise<DeviceFiles> {
    const out = await this.iot.send(new CreateKeysAndCertificateCommand({ setAsActive: false }));
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
export function externalIssuers(clients: { pca: ACMPCAClient; iot: IoTClient }) {
  const pca = new Map<string, AcmPcaDeviceIssuer>();
  return (ca: Exclude<SupplierCa, { type: 'certflow' }>): DeviceCertificateIssuer => {
    if (ca.type === 'aws-iot') return new IotDefaultDeviceIssuer(clients.iot);
    let issuer = pca.get(ca.arn);
    if (!issuer) {
      issuer = new AcmPcaDeviceIssuer(new AcmPcaCertificateAuthority(clients.pca, ca.arn));
      pca.set(ca.arn, issuer);
    }
    return issuer;
  };
}
