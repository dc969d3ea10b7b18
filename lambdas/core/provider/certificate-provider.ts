/**
 * The AWS IoT certificate provider: fleet provisioning's `CreateCertificateFromCsr` hands the device's CSR to this
 * code, which answers the signed certificate. The certificate's subject and public key are the CSR's, byte for byte;
 * certflow adds the device profile (CA:FALSE, digitalSignature, clientAuth) and the configured validity. The CSR is
 * checked first (proof of possession, key strength, no CA request): a bad one throws ValidationError or
 * CsrRejectedError with its code, and nothing is signed. AWS IoT gives the whole call 5 seconds.
 */
import { z } from 'zod';
import { fromZodError } from '../bulk/request';
import { domainEvent } from '../events';
import type { ParsedCertificate } from '../pki/certificate';
import { parseCsr } from '../pki/csr';
import type { Clock, EventPublisher } from '../ports';
import type { CsrSigner } from '../signing/csr-signer';

/** A PEM CSR is under 2 KB even for RSA-4096; anything much larger is not a CSR worth parsing. */
export const MAX_CSR_LENGTH = 16_384;

/** What AWS IoT sends the certificate provider Lambda. */
export const CertificateProviderRequest = z.object({
  certificateSigningRequest: z.string().min(1).max(MAX_CSR_LENGTH),
  /** the principal (certificate id) of the connection that called CreateCertificateFromCsr */
  principalId: z.string().min(1).max(2048),
  /** the MQTT client id of that connection */
  clientId: z.string().min(1).max(2048),
});
export type CertificateProviderRequest = z.infer<typeof CertificateProviderRequest>;

/** What the Lambda answers AWS IoT. */
export interface CertificateProviderResponse {
  certificatePem: string;
}

/** The signer returned a certificate whose subject or public key is not the CSR's (never handed out). */
export class IssuedCertificateMismatchError extends Error {
  override readonly name = 'IssuedCertificateMismatchError';

  constructor(
    readonly issuerId: string,
    readonly field: 'subject' | 'publicKey',
  ) {
    super(
      `${issuerId} returned a certificate whose ${field === 'subject' ? 'subject' : 'public key'} is not the CSR's`,
    );
  }
}

export interface CertificateProviderDeps {
  signer: CsrSigner;
  events: EventPublisher;
  clock: Clock;
  /** days the certificates are valid for (from configuration) */
  validityDays: number;
}

export interface ProvidedCertificate extends CertificateProviderResponse {
  certificate: ParsedCertificate;
}

/** Parses AWS IoT's request; throws INVALID_REQUEST naming the first faulty field. */
export function parseProviderRequest(input: unknown): CertificateProviderRequest {
  const parsed = CertificateProviderRequest.safeParse(input ?? {});
  if (!parsed.success) throw fromZodError(parsed.error);
  return parsed.data;
}

/**
 * Verifies the CSR, has the configured CA sign it, checks that the certificate carries the CSR's subject and public
 * key, and emits `Certificate Issued` (origin `certificate-provider`).
 */
export async function provideCertificate(deps: CertificateProviderDeps, input: unknown): Promise<ProvidedCertificate> {
  const request = parseProviderRequest(input);
  const csr = parseCsr(request.certificateSigningRequest);
  const { certificate } = await deps.signer.sign(csr, { validityDays: deps.validityDays, now: deps.clock.now() });
  if (!certificate.subjectDer.equals(csr.subjectDer)) {
    throw new IssuedCertificateMismatchError(deps.signer.issuerId, 'subject');
  }
  if (!certificate.spki.equals(csr.spki)) throw new IssuedCertificateMismatchError(deps.signer.issuerId, 'publicKey');
  await deps.events.publish([
    domainEvent('Certificate Issued', {
      issuerId: deps.signer.issuerId,
      kind: 'device',
      origin: 'certificate-provider',
      certificates: [
        {
          certificateId: certificate.id,
          serialNumber: certificate.serialNumber,
          commonName: certificate.commonName ?? certificate.subject,
          notBefore: certificate.notBefore.toISOString(),
          notAfter: certificate.notAfter.toISOString(),
        },
      ],
    }),
  ]);
  return { certificatePem: certificate.pem, certificate };
}
