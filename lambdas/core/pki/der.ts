/**
 * A minimal DER encoder. Certificates, CRLs and keys are assembled from these pieces so that the parts that do
 * not change within a batch are encoded once and reused (generic ASN.1 object builders cost 1.3–2.7 ms per
 * certificate; concatenating pre-encoded buffers costs microseconds).
 */

export const enum Tag {
  Boolean = 0x01,
  Integer = 0x02,
  BitString = 0x03,
  OctetString = 0x04,
  Null = 0x05,
  Oid = 0x06,
  Enumerated = 0x0a,
  Utf8String = 0x0c,
  PrintableString = 0x13,
  Ia5String = 0x16,
  UtcTime = 0x17,
  GeneralizedTime = 0x18,
  Sequence = 0x30,
  Set = 0x31,
}

/**
 * Tag-length-value with a raw tag byte (universal, context-specific or constructed). One buffer, written in place:
 * a certificate is a few dozen of these, on the hot path of bulk issuance.
 */
export function tlv(tag: number, ...content: Buffer[]): Buffer {
  let length = 0;
  for (const c of content) length += c.length;
  if (length > 0xffffffff) throw new RangeError('DER element longer than 2^32 - 1 bytes');
  const lengthOfLength = length < 0x80 ? 0 : length < 0x100 ? 1 : length < 0x10000 ? 2 : length < 0x1000000 ? 3 : 4;
  const out = Buffer.allocUnsafe(2 + lengthOfLength + length);
  out[0] = tag;
  if (lengthOfLength === 0) out[1] = length;
  else {
    out[1] = 0x80 | lengthOfLength;
    for (let i = lengthOfLength, n = length; i >= 1; i--, n = Math.floor(n / 256)) out[1 + i] = n & 0xff;
  }
  let at = 2 + lengthOfLength;
  for (const c of content) at += c.copy(out, at);
  return out;
}

export const sequence = (...items: Buffer[]): Buffer => tlv(Tag.Sequence, ...items);

/** SET OF, with its elements sorted as DER requires. */
export const setOf = (...items: Buffer[]): Buffer => tlv(Tag.Set, ...[...items].sort(Buffer.compare));

/** [n] EXPLICIT (constructed context-specific). */
export const explicit = (n: number, content: Buffer): Buffer => tlv(0xa0 | n, content);

/** [n] IMPLICIT of a primitive type: the bytes of the value with a context-specific tag. */
export const implicitPrimitive = (n: number, value: Buffer): Buffer => tlv(0x80 | n, value);

export const nullValue = (): Buffer => Buffer.from([Tag.Null, 0x00]);

export const boolean = (value: boolean): Buffer => Buffer.from([Tag.Boolean, 0x01, value ? 0xff : 0x00]);

/** INTEGER from unsigned big-endian magnitude bytes: minimal, with a leading 0x00 when the top bit is set. */
export function integerFromUnsigned(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  let value = bytes.subarray(start);
  if (value.length === 0) value = Buffer.from([0]);
  if (value[0]! & 0x80) value = Buffer.concat([Buffer.from([0]), value]);
  return tlv(Tag.Integer, value);
}

export function integer(n: number | bigint): Buffer {
  let v = BigInt(n);
  if (v < 0n) throw new RangeError('negative integers are not used by certflow');
  const bytes: number[] = [];
  do {
    bytes.unshift(Number(v & 0xffn));
    v >>= 8n;
  } while (v > 0n);
  return integerFromUnsigned(Buffer.from(bytes));
}

export const enumerated = (n: number): Buffer => tlv(Tag.Enumerated, Buffer.from([n]));

/** Encoded OIDs by dotted form: a device certificate names the same few on every issue. */
const oidCache = new Map<string, Buffer>();
const OID_CACHE_LIMIT = 256;

/** An OBJECT IDENTIFIER (the result may be shared: never modify it). */
export function oid(dotted: string): Buffer {
  let encoded = oidCache.get(dotted);
  if (!encoded) {
    encoded = encodeOid(dotted);
    if (oidCache.size < OID_CACHE_LIMIT) oidCache.set(dotted, encoded);
  }
  return encoded;
}

function encodeOid(dotted: string): Buffer {
  const parts = dotted.split('.').map((p) => BigInt(p));
  if (parts.length < 2) throw new RangeError(`bad OID ${dotted}`);
  const out: number[] = [Number(parts[0]! * 40n + parts[1]!)];
  for (const part of parts.slice(2)) {
    const groups: number[] = [];
    let v = part;
    do {
      groups.unshift(Number(v & 0x7fn));
      v >>= 7n;
    } while (v > 0n);
    for (let i = 0; i < groups.length - 1; i++) groups[i]! |= 0x80;
    out.push(...groups);
  }
  return tlv(Tag.Oid, Buffer.from(out));
}

export const octetString = (value: Buffer): Buffer => tlv(Tag.OctetString, value);

/** BIT STRING with no unused bits (signatures, public keys). */
export const bitString = (value: Buffer): Buffer => tlv(Tag.BitString, Buffer.from([0]), value);

/** BIT STRING for named bits (keyUsage, reasonFlags): bit 0 is the most significant bit of the first byte. */
export function namedBits(bits: number[]): Buffer {
  if (bits.length === 0) return Buffer.from([Tag.BitString, 0x01, 0x00]);
  const highest = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(highest / 8) + 1);
  for (const bit of bits) bytes[bit >> 3]! |= 0x80 >> (bit & 7);
  const unused = 7 - (highest & 7);
  return tlv(Tag.BitString, Buffer.from([unused]), bytes);
}

export const utf8String = (s: string): Buffer => tlv(Tag.Utf8String, Buffer.from(s, 'utf8'));
export const printableString = (s: string): Buffer => tlv(Tag.PrintableString, Buffer.from(s, 'latin1'));
export const ia5String = (s: string): Buffer => tlv(Tag.Ia5String, Buffer.from(s, 'latin1'));

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; whole seconds, Zulu. */
export function time(date: Date): Buffer {
  const y = date.getUTCFullYear();
  const rest = `${pad(date.getUTCMonth() + 1)}${pad(date.getUTCDate())}${pad(date.getUTCHours())}${pad(
    date.getUTCMinutes(),
  )}${pad(date.getUTCSeconds())}Z`;
  if (y >= 1950 && y < 2050) return tlv(Tag.UtcTime, Buffer.from(`${pad(y % 100)}${rest}`, 'latin1'));
  return tlv(Tag.GeneralizedTime, Buffer.from(`${pad(y, 4)}${rest}`, 'latin1'));
}

/** A decoded TLV: tag, header length and the whole element's bytes. */
export interface Element {
  tag: number;
  header: number;
  length: number;
  /** the whole element, header included */
  bytes: Buffer;
  /** the content only */
  content: Buffer;
}

/** Reads one element at `offset`; throws RangeError on truncated or indefinite-length input. */
export function readElement(buf: Buffer, offset = 0): Element {
  if (offset + 2 > buf.length) throw new RangeError('truncated DER');
  const tag = buf[offset]!;
  let length = buf[offset + 1]!;
  let header = 2;
  if (length & 0x80) {
    const n = length & 0x7f;
    if (n === 0 || n > 4) throw new RangeError('unsupported DER length');
    if (offset + 2 + n > buf.length) throw new RangeError('truncated DER');
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[offset + 2 + i]!;
    header += n;
  }
  const end = offset + header + length;
  if (end > buf.length) throw new RangeError('truncated DER');
  return {
    tag,
    header,
    length,
    bytes: buf.subarray(offset, end),
    content: buf.subarray(offset + header, end),
  };
}

/** The children of a constructed element. */
export function children(el: Element): Element[] {
  const out: Element[] = [];
  for (let off = 0; off < el.content.length;) {
    const child = readElement(el.content, off);
    out.push(child);
    off += child.bytes.length;
  }
  return out;
}

/** The dotted form of an OBJECT IDENTIFIER element; undefined when the element is not one. */
export function readOid(el: Element | undefined): string | undefined {
  if (!el || el.tag !== Tag.Oid || el.content.length === 0) return undefined;
  const bytes = el.content;
  const first = bytes[0]!;
  const parts: number[] = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  let v = 0;
  for (let i = 1; i < bytes.length; i++) {
    v = v * 128 + (bytes[i]! & 0x7f);
    if (!(bytes[i]! & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join('.');
}
