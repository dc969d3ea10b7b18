import { type ParsedCsr, decodePemBlocks, parseCertificate, toPem } from '../../core/pki';
import {
  csrIdempotencyToken,
  type CsrSigner,
  type CsrSignOptions,
  type SignedCsr,
} from '../../core/signing/csr-signer';
import type { AcmPcaCertificateAuthority } from './acm-pca-authority';

/** PCA's template for client certificates: the CSR's subject and key, KeyUsage digitalSignature, EKU clientAuth. */
export const clientAuthTemplateArn = (caArn: string): string =>
  `arn:${caArn.split(':')[1] ?? 'aws'}:acm-pca:::template/EndEntityClientAuthCertificate/V1`;

export interface AcmPcaCsrSignerOptions {
  /** `client-auth` (default): EndEntityClientAuthCertificate/V1; `pca-default`: no TemplateArn (EndEntityCertificate/V1) */
  template?: 'client-auth' | 'pca-default';
}

/**
 * CsrSigner on ACM Private CA: IssueCertificate with the signing algorithm of the CA's key (DescribeCertificateAuthority,
 * read once per container), the asked validity, the template and an idempotency token (derived from the CSR unless
 * given: provisioning gives the task id and item index); then GetCertificate with the waits (and pace) the authority
 * was built with. A certificate for another key than the CSR's is never answered. The chain's first certificate is
 * the issuing CA's.
 */
export class AcmPcaCsrSigner implements CsrSigner {
  readonly kind = 'acm-pca';
  private readonly template: 'client-auth' | 'pca-default';

  constructor(
    private readonly ca: AcmPcaCertificateAuthority,
    options: AcmPcaCsrSignerOptions = {},
  ) {
    this.template = options.template ?? 'client-auth';
  }

  get issuerId(): string {
    return this.ca.caArn;
  }

  async prepare(): Promise<void> {
    await this.ca.signingAlgorithmForCa();
  }

  async sign(csr: ParsedCsr, options: Pick<CsrSignOptions, 'validityDays' | 'idempotencyToken'>): Promise<SignedCsr> {
    const signingAlgorithm = await this.ca.signingAlgorithmForCa();
    const request = {
      csrPem: toPem('CERTIFICATE REQUEST', csr.der),
      validityDays: options.validityDays,
      signingAlgorithm,
      ...(this.template === 'client-auth' ? { templateArn: clientAuthTemplateArn(this.ca.caArn) } : {}),
    };
    const token = options.idempotencyToken ?? csrIdempotencyToken(csr);
    let issued = await this.ca.issue({ ...request, idempotencyToken: token });
    if (!parseCertificate(issued.certificatePem).spki.equals(csr.spki)) {
      // A token given by the caller (task id + index) was used within ACM PCA's idempotency window for another key
      // (an attempt whose key was lost): that certificate is never handed out; issue under a token of this key's own.
      issued = await this.ca.issue({ ...request, idempotencyToken: `${token}:${csrIdempotencyToken(csr)}` });
      if (!parseCertificate(issued.certificatePem).spki.equals(csr.spki)) {
        throw new Error('ACM PCA returned a certificate for another key');
      }
    }
    const caBlock = issued.chainPem.trim()
      ? decodePemBlocks(issued.chainPem).find((b) => b.label === 'CERTIFICATE')
      : undefined;
    return {
      certificate: parseCertificate(issued.certificatePem),
      ...(caBlock ? { caCertificatePem: toPem('CERTIFICATE', caBlock.der), chainPem: issued.chainPem } : {}),
    };
  }
}
