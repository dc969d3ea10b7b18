import { createHash, KeyObject, randomBytes, X509Certificate } from 'node:crypto';
import { ConflictError, ValidationError } from '../errors';
import * as der from './der';
import * as ext from './extensions';
import {
  describePublicKey,
  KeyType,
  keyIdentifier,
  CertificateSigner,
  spkiDer,
  generateKeyPairAsync,
  KeyObjectSigner,
} from './keys';
import { encodeName, SubjectFields } from './name';
import { OID } from './oids';
import { toDer, toPem } from './pem';

export type Profile = 'root' | 'intermediate' | 'device' | 'server';

/** Validity in whole days from now, or explicit bounds. */
export interface Validity {
  days?: number;
  notBefore?: Date;
  notAfter?: Date;
}

/** Certificates start this long before "now" so that devices with a slightly slow clock accept them. */
export const BACKDATE_MS = 60_000;
const DAY_MS = 86_400_000;

/** A certificate as certflow reads it. */
export interface ParsedCertificate {
  der: Buffer;
  pem: string;
  /** AWS IoT certificate id: lower-case hex SHA-256 of the DER */
  id: string;
  /** lower-case hex, no leading zeros beyond DER's */
  serialNumber: string;
  tbs: Buffer;
  signatureAlgorithmOid: string;
  signature: Buffer;
  issuerDer: Buffer;
  subjectDer: Buffer;
  spki: Buffer;
  /** e.g. "C=DE, O=Acme, CN=device-1" */
  subject: string;
  issuer: string;
  commonName?: string;
  notBefore: Date;
  notAfter: Date;
  isCa: boolean;
  pathLength?: number;
  subjectKeyId: Buffer;
  authorityKeyId?: Buffer;
  keyType: KeyType;
}

export const certificateId = (certDer: Buffer): string => createHash('sha256').update(certDer).digest('hex');

/** 16 random bytes, positive, with a non-zero first byte so the DER INTEGER is always 16 bytes long. */
export function randomSerial(): Buffer {
  return positiveSerial(randomBytes(16));
}

/** `count` serial numbers as randomSerial makes them, from one call to the random generator. */
export function randomSerials(count: number): Buffer[] {
  const bytes = randomBytes(16 * count);
  return Array.from({ length: count }, (_, n) => positiveSerial(bytes.subarray(16 * n, 16 * n + 16)));
}

/** 16 random bytes as a positive serial with its top byte set, so its DER is always 16 bytes long. */
function positiveSerial(serial: Buffer): Buffer {
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  return serial;
}

function nameToString(x509Name: string): string {
  return x509Name.split('\n').filter(Boolean).join(', ');
}

/** Parses a certificate (PEM or DER). Throws INVALID_CERTIFICATE on anything that is not one. */
export function parseCertificate(input: string | Buffer): ParsedCertificate {
  const certDer = toDer(input, 'CERTIFICATE');
  try {
    const node = new X509Certificate(certDer);
    const top = der.readElement(certDer);
    const [tbsEl, sigAlgEl, sigEl] = der.children(top);
    const tbsParts = der.children(tbsEl!);
    const offset = tbsParts[0]!.tag === 0xa0 ? 1 : 0;
    const [serialEl, , issuerEl, , subjectEl, spkiEl] = tbsParts.slice(offset);
    let isCa = false;
    let pathLength: number | undefined;
    let subjectKeyId: Buffer | undefined;
    let authorityKeyId: Buffer | undefined;
    const extsEl = tbsParts.find((p) => p.tag === 0xa3);
    if (extsEl) {
      for (const e of der.children(der.children(extsEl)[0]!)) {
        const parts = der.children(e);
        const id = der.readOid(parts[0]) ?? '';
        const value = der.readElement(parts[parts.length - 1]!.content);
        if (id === OID.basicConstraints) {
          for (const c of der.children(value)) {
            if (c.tag === der.Tag.Boolean) isCa = c.content[0] !== 0;
            if (c.tag === der.Tag.Integer) pathLength = c.content.readUIntBE(0, c.content.length);
          }
        } else if (id === OID.subjectKeyIdentifier) {
          subjectKeyId = Buffer.from(value.content);
        } else if (id === OID.authorityKeyIdentifier) {
          const keyId = der.children(value).find((c) => c.tag === 0x80);
          if (keyId) authorityKeyId = Buffer.from(keyId.content);
        }
      }
    }
    const spki = Buffer.from(spkiEl!.bytes);
    const subject = nameToString(node.subject);
    const cn = node.subject.split('\n').find((l) => l.startsWith('CN='));
    return {
      der: certDer,
      pem: toPem('CERTIFICATE', certDer),
      id: certificateId(certDer),
      serialNumber: serialEl!.content.toString('hex').replace(/^00(?=[89a-f])/, ''),
      tbs: Buffer.from(tbsEl!.bytes),
      signatureAlgorithmOid: der.readOid(der.children(sigAlgEl!)[0]) ?? '',
      signature: Buffer.from(sigEl!.content.subarray(1)),
      issuerDer: Buffer.from(issuerEl!.bytes),
      subjectDer: Buffer.from(subjectEl!.bytes),
      spki,
      subject,
      issuer: nameToString(node.issuer),
      ...(cn ? { commonName: cn.slice(3) } : {}),
      notBefore: new Date(node.validFrom),
      notAfter: new Date(node.validTo),
      isCa,
      ...(pathLength !== undefined ? { pathLength } : {}),
      subjectKeyId: subjectKeyId ?? keyIdentifier(spki),
      ...(authorityKeyId ? { authorityKeyId } : {}),
      keyType: describePublicKey(spki).keyType,
    };
  } catch (cause) {
    if (cause instanceof ValidationError && cause.code !== 'INVALID_PUBLIC_KEY') throw cause;
    throw new ValidationError('INVALID_CERTIFICATE', 'the input is not a valid X.509 certificate', { cause });
  }
}

/** A CA that can sign: its certificate and a signer for its key. */
export interface Issuer {
  certificate: ParsedCertificate;
  signer: CertificateSigner;
}

/**
 * The validity of a certificate whose request named none: `days` from now, but never beyond its issuer's end, as a
 * PKI does for a default (a sub-CA or leaf under a CA nearer its end than the default still issues, and ends with
 * its CA). An explicit validity is not shortened: beyond the issuer it stays VALIDITY_EXCEEDS_ISSUER.
 */
export function defaultValidity(days: number, issuer: ParsedCertificate, now: Date): Validity {
  const notAfter = Math.min(now.getTime() + days * DAY_MS, issuer.notAfter.getTime());
  return { notAfter: new Date(Math.floor(notAfter / 1000) * 1000) };
}

export function resolveValidity(validity: Validity, now: Date): { notBefore: Date; notAfter: Date } {
  const start = new Date(Math.floor((now.getTime() - BACKDATE_MS) / 1000) * 1000);
  if (validity.notBefore !== undefined || validity.notAfter !== undefined) {
    const notBefore = validity.notBefore ?? start;
    const notAfter = validity.notAfter;
    if (!notAfter || Number.isNaN(notAfter.getTime()) || Number.isNaN(notBefore.getTime())) {
      throw new ValidationError('INVALID_VALIDITY', 'notAfter must be a valid date', {
        details: { field: 'notAfter' },
      });
    }
    if (notAfter.getTime() <= notBefore.getTime()) {
      throw new ValidationError('INVALID_VALIDITY', 'notAfter must be after notBefore', {
        details: { field: 'notAfter' },
      });
    }
    return { notBefore, notAfter };
  }
  const days = validity.days;
  if (typeof days !== 'number' || !Number.isInteger(days) || days < 1) {
    throw new ValidationError('INVALID_VALIDITY', 'validity must be a whole number of days, at least 1', {
      details: { field: 'daysExpiry' },
    });
  }
  const notAfter = new Date(Math.floor((now.getTime() + days * DAY_MS) / 1000) * 1000);
  return { notBefore: start, notAfter };
}

export interface IssueOptions {
  profile: Profile;
  /** structured fields, or the DER Name copied from a CSR */
  subject: SubjectFields | { der: Buffer };
  publicKey: KeyObject | Buffer;
  validity: Validity;
  now: Date;
  /** for CAs: the pathLenConstraint; intermediates default to 0 */
  pathLength?: number;
  /** server certificates: DNS names and IPs (the common name is added when it is a DNS name) */
  sans?: ext.SubjectAltNames;
  crlDistributionPointUri?: string;
  serial?: Buffer;
}

function leafKeyUsage(keyType: KeyType): ext.KeyUsageName[] {
  return keyType.startsWith('rsa') ? ['digitalSignature', 'keyEncipherment'] : ['digitalSignature'];
}

/** Checks that `issuer` may sign a certificate of this profile for that period. */
export function checkIssuer(
  issuer: ParsedCertificate,
  profile: Profile,
  period: { notBefore: Date; notAfter: Date },
  now: Date,
  pathLength?: number,
): void {
  if (!issuer.isCa) throw new ValidationError('ISSUER_NOT_CA', 'the issuer certificate is not a CA');
  if (now.getTime() > issuer.notAfter.getTime()) {
    throw new ConflictError('ISSUER_EXPIRED', `the issuing CA expired on ${issuer.notAfter.toISOString()}`);
  }
  if (period.notAfter.getTime() > issuer.notAfter.getTime()) {
    throw new ValidationError(
      'VALIDITY_EXCEEDS_ISSUER',
      `the certificate would outlive its issuing CA (CA valid until ${issuer.notAfter.toISOString()})`,
      { details: { field: 'validity' } },
    );
  }
  if (profile === 'intermediate' && issuer.pathLength !== undefined) {
    if (issuer.pathLength < 1) {
      throw new ValidationError('PATH_LENGTH_EXCEEDED', 'the issuing CA may not sign further CAs (pathLen 0)');
    }
    if (pathLength !== undefined && pathLength >= issuer.pathLength) {
      throw new ValidationError('PATH_LENGTH_EXCEEDED', `pathLength must be below the issuer's ${issuer.pathLength}`);
    }
  }
}

/**
 * Builds and signs a certificate. `issuer` absent means self-signed with `selfSigner` (roots only).
 */
export async function issueCertificate(
  opts: IssueOptions,
  issuer: Issuer | { selfSigner: CertificateSigner },
): Promise<ParsedCertificate> {
  const spki = opts.publicKey instanceof KeyObject ? spkiDer(opts.publicKey) : Buffer.from(opts.publicKey);
  const keyType = describePublicKey(spki).keyType;
  const period = resolveValidity(opts.validity, opts.now);
  const isCa = opts.profile === 'root' || opts.profile === 'intermediate';
  if (
    opts.pathLength !== undefined &&
    (!Number.isInteger(opts.pathLength) || opts.pathLength < 0 || opts.pathLength > 16)
  ) {
    throw new ValidationError('INVALID_PATH_LENGTH', 'pathLength must be a whole number from 0 to 16', {
      details: { field: 'pathLength' },
    });
  }
  const subjectDer = 'der' in opts.subject ? Buffer.from(opts.subject.der) : encodeName(opts.subject as SubjectFields);
  const ownKeyId = keyIdentifier(spki);

  let issuerDer: Buffer;
  let authorityKeyId: Buffer;
  let signer: CertificateSigner;
  if ('selfSigner' in issuer) {
    if (opts.profile !== 'root')
      throw new ValidationError('ISSUER_REQUIRED', `a ${opts.profile} certificate needs an issuer`);
    issuerDer = subjectDer;
    authorityKeyId = ownKeyId;
    signer = issuer.selfSigner;
  } else {
    if (opts.profile === 'root') throw new ValidationError('ROOT_IS_SELF_SIGNED', 'a root certificate is self-signed');
    checkIssuer(issuer.certificate, opts.profile, period, opts.now, opts.pathLength);
    issuerDer = issuer.certificate.subjectDer;
    authorityKeyId = issuer.certificate.subjectKeyId;
    signer = issuer.signer;
  }

  const extensions: Buffer[] = [];
  if (isCa) {
    const pathLength = opts.pathLength ?? (opts.profile === 'intermediate' ? 0 : undefined);
    extensions.push(ext.basicConstraints(true, pathLength), ext.keyUsage(['keyCertSign', 'cRLSign']));
  } else {
    extensions.push(ext.basicConstraints(false), ext.keyUsage(leafKeyUsage(keyType)));
    extensions.push(ext.extKeyUsage([opts.profile === 'server' ? OID.serverAuth : OID.clientAuth]));
  }
  extensions.push(ext.subjectKeyIdentifier(ownKeyId), ext.authorityKeyIdentifier(authorityKeyId));
  if (opts.profile === 'server') {
    const cn = 'der' in opts.subject ? undefined : (opts.subject as SubjectFields).commonName;
    const dns = [...(opts.sans?.dns ?? [])];
    if (cn && ext.isDnsName(cn) && !dns.some((d) => d.toLowerCase() === cn.toLowerCase())) dns.unshift(cn);
    const san = ext.subjectAltName({ ...opts.sans, dns });
    if (!san) {
      throw new ValidationError('INVALID_SAN', 'a server certificate needs a DNS name or IP address', {
        details: { field: 'sans' },
      });
    }
    extensions.push(san);
  } else if (opts.sans) {
    const san = ext.subjectAltName(opts.sans);
    if (san) extensions.push(san);
  }
  if (opts.crlDistributionPointUri) extensions.push(ext.crlDistributionPoint(opts.crlDistributionPointUri));

  const tbs = der.sequence(
    der.explicit(0, der.integer(2)),
    der.integerFromUnsigned(opts.serial ?? randomSerial()),
    signer.algorithm.identifier,
    issuerDer,
    der.sequence(der.time(period.notBefore), der.time(period.notAfter)),
    subjectDer,
    spki,
    der.explicit(3, der.sequence(...extensions)),
  );
  const signature = await signer.sign(tbs);
  return parseCertificate(der.sequence(tbs, signer.algorithm.identifier, der.bitString(signature)));
}

export interface CreatedCa {
  certificate: ParsedCertificate;
  privateKey: KeyObject;
  issuer: Issuer;
}

export interface CaOptions {
  subject: SubjectFields;
  keyType?: KeyType;
  validity: Validity;
  now: Date;
  pathLength?: number;
}

/** A self-signed root CA with a fresh key. */
export async function createRootCa(opts: CaOptions): Promise<CreatedCa> {
  const keys = await generateKeyPairAsync(opts.keyType ?? 'ec-p256');
  const signer = new KeyObjectSigner(keys.privateKey);
  const certificate = await issueCertificate(
    { ...opts, profile: 'root', publicKey: keys.publicKey },
    { selfSigner: signer },
  );
  return { certificate, privateKey: keys.privateKey, issuer: { certificate, signer } };
}

/** An intermediate CA with a fresh key, signed by `parent` (pathLength defaults to 0: it signs leaves only). */
export async function createIntermediateCa(parent: Issuer, opts: CaOptions): Promise<CreatedCa> {
  const keys = await generateKeyPairAsync(opts.keyType ?? 'ec-p256');
  const certificate = await issueCertificate({ ...opts, profile: 'intermediate', publicKey: keys.publicKey }, parent);
  return {
    certificate,
    privateKey: keys.privateKey,
    issuer: { certificate, signer: new KeyObjectSigner(keys.privateKey) },
  };
}

export interface LeafOptions {
  profile: 'device' | 'server';
  subject: SubjectFields;
  keyType?: KeyType;
  validity: Validity;
  now: Date;
  sans?: ext.SubjectAltNames;
  crlDistributionPointUri?: string;
}

/** A device or server certificate with a fresh key pair; the caller keeps the private key. */
export async function issueLeaf(
  issuer: Issuer,
  opts: LeafOptions,
): Promise<{ certificate: ParsedCertificate; privateKey: KeyObject; publicKey: KeyObject }> {
  const keys = await generateKeyPairAsync(opts.keyType ?? 'ec-p256');
  const certificate = await issueCertificate({ ...opts, publicKey: keys.publicKey }, issuer);
  return { certificate, ...keys };
}

export interface CsrIssueOptions {
  profile: 'device' | 'server';
  validity: Validity;
  now: Date;
  sans?: ext.SubjectAltNames;
  crlDistributionPointUri?: string;
}

/** A certificate for an already verified CSR: its subject and public key, our extensions. */
export function issueFromCsr(
  issuer: Issuer,
  csr: { subjectDer: Buffer; spki: Buffer },
  opts: CsrIssueOptions,
): Promise<ParsedCertificate> {
  return issueCertificate({ ...opts, subject: { der: csr.subjectDer }, publicKey: csr.spki }, issuer);
}
