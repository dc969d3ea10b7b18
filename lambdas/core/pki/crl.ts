import { ValidationError } from '../errors';
import { Issuer } from './certificate';
import * as der from './der';
import * as ext from './extensions';
import { OID } from './oids';
import { toPem } from './pem';

/** RFC 5280 §5.3.1 CRLReason. */
export const REVOCATION_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  removeFromCRL: 8,
  privilegeWithdrawn: 9,
  aACompromise: 10,
} as const;
export type RevocationReason = keyof typeof REVOCATION_REASONS;

export const isRevocationReason = (v: unknown): v is RevocationReason =>
  typeof v === 'string' && Object.prototype.hasOwnProperty.call(REVOCATION_REASONS, v);

export interface RevokedEntry {
  /** hex, as ParsedCertificate.serialNumber */
  serialNumber: string;
  revokedAt: Date;
  reason?: RevocationReason;
}

export interface CrlOptions {
  entries: RevokedEntry[];
  thisUpdate: Date;
  nextUpdate: Date;
  /** monotonically increasing per CA */
  crlNumber: number | bigint;
}

export interface BuiltCrl {
  der: Buffer;
  pem: string;
}

/** A v2 CRL signed by the issuer, with authorityKeyIdentifier, cRLNumber and per-entry reason codes. */
export async function buildCrl(issuer: Issuer, opts: CrlOptions): Promise<BuiltCrl> {
  if (!(opts.nextUpdate.getTime() > opts.thisUpdate.getTime())) {
    throw new ValidationError('INVALID_VALIDITY', 'nextUpdate must be after thisUpdate');
  }
  const entries = opts.entries.map((e) => {
    if (!/^[0-9a-f]{1,40}$/i.test(e.serialNumber)) {
      throw new ValidationError('INVALID_SERIAL', `${e.serialNumber} is not a hexadecimal serial number`);
    }
    const reason = e.reason ?? 'unspecified';
    if (!isRevocationReason(reason))
      throw new ValidationError('INVALID_REASON', `${String(reason)} is not an RFC 5280 reason`);
    const serialHex = e.serialNumber.length % 2 ? `0${e.serialNumber}` : e.serialNumber;
    const parts = [der.integerFromUnsigned(Buffer.from(serialHex, 'hex')), der.time(e.revokedAt)];
    // RFC 5280 §5.3.1: the reason code unspecified SHOULD be absent
    if (reason !== 'unspecified') {
      parts.push(der.sequence(ext.extension(OID.crlReason, false, der.enumerated(REVOCATION_REASONS[reason]))));
    }
    return der.sequence(...parts);
  });
  const tbs = der.sequence(
    der.integer(1),
    issuer.signer.algorithm.identifier,
    issuer.certificate.subjectDer,
    der.time(opts.thisUpdate),
    der.time(opts.nextUpdate),
    ...(entries.length > 0 ? [der.sequence(...entries)] : []),
    der.explicit(
      0,
      der.sequence(
        ext.authorityKeyIdentifier(issuer.certificate.subjectKeyId),
        ext.extension(OID.crlNumber, false, der.integer(opts.crlNumber)),
      ),
    ),
  );
  const signature = await issuer.signer.sign(tbs);
  const crl = der.sequence(tbs, issuer.signer.algorithm.identifier, der.bitString(signature));
  return { der: crl, pem: toPem('X509 CRL', crl) };
}
