/**
 * Signing a verified CSR: one piece for every flow that does (the rotation over MQTT and the AWS IoT certificate
 * provider). A CsrSigner is a certflow CA (its key from the CA key store) or ACM Private CA (AcmPcaCsrSigner in
 * lambdas/adapters/aws); each flow keeps its own checks around it (rotation: CN = thing name; provider: the
 * certificate's subject and key are the CSR's).
 */
import { createHash } from 'node:crypto';
import { ConflictError } from '../errors';
import { issueFromCsr, type ParsedCertificate } from '../pki/certificate';
import type { ParsedCsr } from '../pki/csr';
import type { CaKeyStore, CaStore } from '../ports';

export interface CsrSignOptions {
  /** days the certificate is valid */
  validityDays: number;
  now: Date;
  /** never beyond the signing CA's own notAfter (a CA nearer its end than `validityDays` still signs) */
  capAtCaEnd?: boolean;
  /** ACM PCA: the same token within 5 minutes returns the same certificate (default: csrIdempotencyToken) */
  idempotencyToken?: string;
}

export interface SignedCsr {
  certificate: ParsedCertificate;
  /** the issuing CA's certificate (PEM) when the signer knows it: what RegisterCertificate registers with */
  caCertificatePem?: string;
  /** the CA's whole chain as the CA answered it (PEM, issuing CA first), when it answers one (ACM PCA) */
  chainPem?: string;
}

/** Signs an already verified CSR: a certflow CA (CaKeyStore) or ACM Private CA. */
export interface CsrSigner {
  /** the issuing CA as the inventory names it: a certflow CA id or an ACM PCA ARN */
  readonly issuerId: string;
  readonly kind: 'certflow' | 'acm-pca';
  /**
   * Reads what signing needs (the CA's key; PCA's signing algorithm) so that a caller can tell a CA it cannot reach
   * from a signature that failed; `sign` reads it as well (both are cached by their stores).
   */
  prepare(): Promise<void>;
  sign(csr: ParsedCsr, options: CsrSignOptions): Promise<SignedCsr>;
}

/**
 * A token that is the same for the same CSR (a device retrying the same request gets the same certificate from
 * ACM PCA) and different for any other: 36 hex characters of the SHA-256 of the CSR's DER (PCA's limit is 36).
 */
export const csrIdempotencyToken = (csr: Pick<ParsedCsr, 'der'>): string =>
  createHash('sha256').update(csr.der).digest('hex').slice(0, 36);

/**
 * A certflow CA signs: its key comes from the CA key store (which caches it for the life of the container). With the
 * CA store, a CA revoked there (compromise response) stops signing at once (ISSUER_REVOKED); a CA the store does not
 * know (one CDF made) signs while its certificate is valid.
 */
export class CaKeyStoreCsrSigner implements CsrSigner {
  readonly kind = 'certflow';

  constructor(
    private readonly caKeys: CaKeyStore,
    readonly issuerId: string,
    private readonly cas?: Pick<CaStore, 'get'>,
  ) {}

  async prepare(): Promise<void> {
    await this.caKeys.load(this.issuerId);
  }

  async sign(csr: ParsedCsr, options: CsrSignOptions): Promise<SignedCsr> {
    const [ca, record] = await Promise.all([this.caKeys.load(this.issuerId), this.cas?.get(this.issuerId)]);
    if (record?.status === 'revoked') {
      throw new ConflictError('ISSUER_REVOKED', `CA ${this.issuerId} is revoked`, { details: { caId: this.issuerId } });
    }
    const { now } = options;
    // capped: never beyond the CA (whole seconds, as X.509 times are)
    const validity = options.capAtCaEnd
      ? {
          notAfter: new Date(
            Math.floor(
              Math.min(now.getTime() + options.validityDays * 86_400_000, ca.issuer.certificate.notAfter.getTime()) /
                1000,
            ) * 1000,
          ),
        }
      : { days: options.validityDays };
    const certificate = await issueFromCsr(ca.issuer, csr, { profile: 'device', validity, now });
    return { certificate, caCertificatePem: ca.issuer.certificate.pem };
  }
}
