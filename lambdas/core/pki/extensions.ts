import { ValidationError } from '../errors';
import * as der from './der';
import { OID } from './oids';

export const extension = (id: string, critical: boolean, value: Buffer): Buffer =>
  der.sequence(der.oid(id), ...(critical ? [der.boolean(true)] : []), der.octetString(value));

export function basicConstraints(ca: boolean, pathLength?: number): Buffer {
  const content: Buffer[] = [];
  if (ca) content.push(der.boolean(true));
  if (ca && pathLength !== undefined) content.push(der.integer(pathLength));
  return extension(OID.basicConstraints, true, der.sequence(...content));
}

export const KeyUsageBit = {
  digitalSignature: 0,
  nonRepudiation: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
} as const;
export type KeyUsageName = keyof typeof KeyUsageBit;

export const keyUsage = (usages: KeyUsageName[]): Buffer =>
  extension(OID.keyUsage, true, der.namedBits(usages.map((u) => KeyUsageBit[u])));

export const extKeyUsage = (purposes: string[]): Buffer =>
  extension(OID.extKeyUsage, false, der.sequence(...purposes.map((p) => der.oid(p))));

export const subjectKeyIdentifier = (keyId: Buffer): Buffer =>
  extension(OID.subjectKeyIdentifier, false, der.octetString(keyId));

export const authorityKeyIdentifier = (keyId: Buffer): Buffer =>
  extension(OID.authorityKeyIdentifier, false, der.sequence(der.implicitPrimitive(0, keyId)));

export interface SubjectAltNames {
  dns?: string[];
  ip?: string[];
  email?: string[];
  uri?: string[];
}

const DNS_RE = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

export const isDnsName = (name: string): boolean => name.length <= 253 && DNS_RE.test(name);

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** The 4 or 16 bytes of an IP address; IPv6 is normalised by the WHATWG URL parser first. */
function ipBytes(ip: string): Buffer {
  if (IPV4_RE.test(ip)) return Buffer.from(ip.split('.').map(Number));
  let host: string | undefined;
  try {
    host = ip.includes(':') ? new URL(`http://[${ip}]/`).hostname.slice(1, -1) : undefined;
  } catch {
    host = undefined;
  }
  if (host === undefined) {
    throw new ValidationError('INVALID_SAN', `${ip} is not an IP address`, { details: { field: 'sans' } });
  }
  const [head = '', tail = ''] = host.includes('::') ? host.split('::') : [host, ''];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

export function subjectAltName(sans: SubjectAltNames): Buffer | undefined {
  const names: Buffer[] = [];
  for (const email of sans.email ?? []) names.push(der.implicitPrimitive(1, Buffer.from(email, 'latin1')));
  for (const dns of sans.dns ?? []) {
    if (!isDnsName(dns)) {
      throw new ValidationError('INVALID_SAN', `${dns} is not a DNS name`, { details: { field: 'sans' } });
    }
    names.push(der.implicitPrimitive(2, Buffer.from(dns.toLowerCase(), 'latin1')));
  }
  for (const uri of sans.uri ?? []) names.push(der.implicitPrimitive(6, Buffer.from(uri, 'latin1')));
  for (const ip of sans.ip ?? []) names.push(der.implicitPrimitive(7, ipBytes(ip)));
  if (names.length === 0) return undefined;
  return extension(OID.subjectAltName, false, der.sequence(...names));
}

/** CRL distribution point with one URI (so relying parties find the CRL). */
export const crlDistributionPoint = (uri: string): Buffer =>
  extension(
    OID.crlDistributionPoints,
    false,
    der.sequence(der.sequence(der.explicit(0, der.tlv(0xa0, der.implicitPrimitive(6, Buffer.from(uri, 'latin1')))))),
  );
