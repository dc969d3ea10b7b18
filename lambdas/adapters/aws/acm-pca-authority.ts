import { createHash } from 'node:crypto';
import {
  type ACMPCAClient,
  DescribeCertificateAuthorityCommand,
  GetCertificateCommand,
  IssueCertificateCommand,
} from '@aws-sdk/client-acm-pca';
import { ValidationError } from '../../core/errors';
import { type Pace, unpaced } from '../../core/pacing';
import { defaultSleep, isAwsError } from './sdk-errors';

export type PcaSigningAlgorithm = 'SHA256WITHRSA' | 'SHA256WITHECDSA' | 'SHA384WITHECDSA';

export interface PcaIssueInput {
  csrPem: string;
  validityDays: number;
  signingAlgorithm: PcaSigningAlgorithm;
  /** retries with the same token within 5 minutes return the same certificate; longer than 36 → hashed to 36 */
  idempotencyToken?: string;
  /** an ACM PCA certificate template (default: PCA's EndEntityCertificate/V1) */
  templateArn?: string;
}

export interface PcaIssuedCertificate {
  certificatePem: string;
  /** the CA's chain (issuing CA first), PEM; empty for a root CA issuing directly */
  chainPem: string;
  certificateArn: string;
}

/** ACM PCA accepted the request but the certificate was still not ready after every poll. */
export class CertificateNotReadyError extends Error {
  override readonly name = 'CertificateNotReadyError';

  constructor(
    readonly certificateArn: string,
    attempts: number,
    options?: { cause?: unknown },
  ) {
    super(`ACM PCA certificate ${certificateArn} not ready after ${attempts} polls`, options);
  }
}

export interface AcmPcaOptions {
  /** GetCertificate calls at most (default 20) */
  maxPolls?: number;
  /** first wait in ms, doubled per poll up to maxDelayMs (defaults 200 and 2000) */
  initialDelayMs?: number;
  maxDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** IssueCertificate and GetCertificate at the shared rates, throttling retried (default: unpaced) */
  pace?: Pace;
}

const MAX_TOKEN_LENGTH = 36;

/** ACM PCA idempotency tokens are at most 36 characters: longer ones become 36 hex characters of their SHA-256. */
export const pcaIdempotencyToken = (token: string): string =>
  token.length <= MAX_TOKEN_LENGTH
    ? token
    : createHash('sha256').update(token).digest('hex').slice(0, MAX_TOKEN_LENGTH);

/** A certificate authority in AWS Private CA (the CDF `SUPPLIER_CA_…=arn:aws:acm-pca:…` supplier). */
export class AcmPcaCertificateAuthority {
  private readonly maxPolls: number;
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly pace: Pace;
  private signingAlgorithm?: Promise<PcaSigningAlgorithm>;

  constructor(
    private readonly client: ACMPCAClient,
    readonly caArn: string,
    options: AcmPcaOptions = {},
  ) {
    this.maxPolls = options.maxPolls ?? 20;
    this.initialDelayMs = options.initialDelayMs ?? 200;
    this.maxDelayMs = options.maxDelayMs ?? 2000;
    this.sleep = options.sleep ?? defaultSleep;
    this.pace = options.pace ?? unpaced;
  }

  /** IssueCertificate, then GetCertificate until PCA has signed (RequestInProgressException until then). */
  async issue(
    input: PcaIssueInput,
    /** told the certificate's ARN as soon as ACM PCA accepted the request (before it has signed) */
    onAccepted?: (certificateArn: string) => void,
  ): Promise<PcaIssuedCertificate> {
    if (!Number.isInteger(input.validityDays) || input.validityDays < 1) {
      throw new ValidationError('INVALID_VALIDITY', 'validityDays must be a whole number of days, at least 1', {
        details: { field: 'validityDays' },
      });
    }
    const { CertificateArn } = await this.pace('acm-pca:IssueCertificate', () =>
      this.client.send(
        new IssueCertificateCommand({
          CertificateAuthorityArn: this.caArn,
          Csr: Buffer.from(input.csrPem, 'utf8'),
          SigningAlgorithm: input.signingAlgorithm,
          Validity: { Type: 'DAYS', Value: input.validityDays },
          ...(input.idempotencyToken !== undefined
            ? { IdempotencyToken: pcaIdempotencyToken(input.idempotencyToken) }
            : {}),
          ...(input.templateArn !== undefined ? { TemplateArn: input.templateArn } : {}),
        }),
      ),
    );
    if (!CertificateArn) throw new Error('ACM PCA accepted the request without returning a certificate ARN');
    onAccepted?.(CertificateArn);
    return this.waitForCertificate(CertificateArn);
  }

  /** GetCertificate polling for a certificate issued before (a resumed chunk knows its ARN). */
  fetchIssued(certificateArn: string): Promise<PcaIssuedCertificate> {
    return this.waitForCertificate(certificateArn);
  }

  /** The signing algorithm matching the CA's key (DescribeCertificateAuthority, read once). */
  signingAlgorithmForCa(): Promise<PcaSigningAlgorithm> {
    if (!this.signingAlgorithm) {
      const described = this.describeSigningAlgorithm();
      this.signingAlgorithm = described;
      // a failed read is forgotten so that the next call asks again
      void described.catch(() => {
        if (this.signingAlgorithm === described) this.signingAlgorithm = undefined;
      });
    }
    return this.signingAlgorithm;
  }

  private async describeSigningAlgorithm(): Promise<PcaSigningAlgorithm> {
    const { CertificateAuthority } = await this.client.send(
      new DescribeCertificateAuthorityCommand({ CertificateAuthorityArn: this.caArn }),
    );
    const keyAlgorithm: string = CertificateAuthority?.CertificateAuthorityConfiguration?.KeyAlgorithm ?? '';
    if (keyAlgorithm.startsWith('RSA_')) return 'SHA256WITHRSA';
    if (keyAlgorithm === 'EC_prime256v1') return 'SHA256WITHECDSA';
    if (keyAlgorithm === 'EC_secp384r1') return 'SHA384WITHECDSA';
    throw new ValidationError(
      'UNSUPPORTED_CA_KEY_ALGORITHM',
      `ACM PCA ${this.caArn} has key algorithm ${keyAlgorithm || 'unknown'}, which certflow does not sign with`,
    );
  }

  private async waitForCertificate(certificateArn: string): Promise<PcaIssuedCertificate> {
    let delay = this.initialDelayMs;
    let lastError: unknown;
    for (let poll = 1; poll <= this.maxPolls; poll++) {
      await this.sleep(delay);
      try {
        const output = await this.pace('acm-pca:GetCertificate', () =>
          this.client.send(
            new GetCertificateCommand({ CertificateAuthorityArn: this.caArn, CertificateArn: certificateArn }),
          ),
        );
        if (!output.Certificate) throw new Error(`ACM PCA returned no certificate for ${certificateArn}`);
        return { certificatePem: output.Certificate, chainPem: output.CertificateChain ?? '', certificateArn };
      } catch (error) {
        if (!isAwsError(error, 'RequestInProgressException')) throw error;
        lastError = error;
      }
      delay = Math.min(delay * 2, this.maxDelayMs);
    }
    throw new CertificateNotReadyError(certificateArn, this.maxPolls, { cause: lastError });
  }
}
