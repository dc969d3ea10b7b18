import { type ParsedCertificate, parseCertificate, type ParsedCsr, toPem } from '../../core/pki';
import { csrIdempotencyToken, type CsrSigner } from '../../core/provider/certificate-provider';
import type { AcmPcaCertificateAuthority } from './acm-pca-authority';

/** PCA's template for client certificates: the CSR's subject and key, KeyUsage digitalSignature, EKU clientAuth. */
export const clientAuthTemplateArn = (caArn: string): string =>
  `arn:${caArn.split(':')[1] ?? 'aws'}:acm-pca:::template/EndEntityClientAuthCertificate/V1`;

/**
 * CsrSigner on ACM Private CA: IssueCertificate with the signing algorithm of the CA's key (DescribeCertificateAuthority,
 * read once per container), the configured validity, the client-auth template and an idempotency token derived from
 * the CSR; then GetCertificate with the waits the authority was built with.
 */
export class AcmPcaCsrSigner implements CsrSigner {
  constructor(private readonly ca: AcmPcaCertificateAuthority) {}

  get issuerId(): string {
    return this.ca.caArn;
  }

  async sign(csr: ParsedCsr, options: { validityDays: number }): Promise<ParsedCertificate> {
    const signingAlgorithm = await this.ca.signingAlgorithmForCa();
    const issued = await this.ca.issue({
      csrPem: toPem('CERTIFICATE REQUEST', csr.der),
      validityDays: options.validityDays,
      signingAlgorithm,
      idempotencyToken: csrIdempotencyToken(csr),
      templateArn: clientAuthTemplateArn(this.ca.caArn),
    });
    return parseCertificate(issued.certificatePem);
  }
}
