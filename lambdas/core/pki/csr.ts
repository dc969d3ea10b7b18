import { createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify } from 'node:crypto';
import { CsrRejectedError, ValidationError } from '../errors';
import * as der from './der';
import { describePublicKey, PublicKeyInfo, signatureAlgorithmFor } from './keys';
import { OID } from './oids';
import { toDer } from './pem';
import { x509 } from './setup';

export interface ParsedCsr {
  der: Buffer;
  /** the DER Name, copied as is into the certificate */
  subjectDer: Buffer;
  /** e.g. "CN=device-1, O=Acme" */
  subject: string;
  commonName?: string;
  spki: Buffer;
  publicKey: PublicKeyInfo;
}

const SIGNATURE_HASH: Record<string, string> = {
  [OID.ecdsaWithSha256]: 'sha256',
  [OID.ecdsaWithSha384]: 'sha384',
  [OID.ecdsaWithSha512]: 'sha512',
  [OID.sha256WithRsa]: 'sha256',
  [OID.sha384WithRsa]: 'sha384',
  [OID.sha512WithRsa]: 'sha512',
};

/** Does the CSR's extensionRequest ask for basicConstraints cA=TRUE? */
function asksForCa(attributes: der.Element | undefined): boolean {
  if (!attributes) return false;
  for (const attr of der.children(attributes)) {
    const [type, values] = der.children(attr);
    if (der.readOid(type) !== OID.extensionRequest || !values) continue;
    for (const extensions of der.children(values)) {
      for (const e of der.children(extensions)) {
        const parts = der.children(e);
        if (der.readOid(parts[0]) !== OID.basicConstraints) continue;
        const value = der.readElement(parts[parts.length - 1]!.content);
        if (der.children(value).some((c) => c.tag === der.Tag.Boolean && c.content[0] !== 0)) return true;
      }
    }
  }
  return false;
}

/**
 * Parses a PKCS#10 request (PEM or DER), checks its signature with its own key (proof of possession) and the
 * key against certflow's policy. Every failure is a typed error: INVALID_CSR (not a CSR), CSR_SIGNATURE_INVALID,
 * UNSUPPORTED_SIGNATURE_ALGORITHM, WEAK_KEY, UNSUPPORTED_KEY, CSR_REQUESTS_CA.
 */
export function parseCsr(input: string | Buffer): ParsedCsr {
  const csrDer = toDer(input, 'CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST');
  let info: der.Element, sigAlg: der.Element, sig: der.Element, subjectEl: der.Element, spkiEl: der.Element;
  let attributes: der.Element | undefined;
  try {
    const top = der.readElement(csrDer);
    if (top.tag !== der.Tag.Sequence || top.bytes.length !== csrDer.length) throw new RangeError('trailing bytes');
    [info, sigAlg, sig] = der.children(top) as [der.Element, der.Element, der.Element];
    const parts = der.children(info);
    [, subjectEl, spkiEl] = parts as [der.Element, der.Element, der.Element];
    attributes = parts.find((p) => p.tag === 0xa0);
    if (sig.tag !== der.Tag.BitString || subjectEl.tag !== der.Tag.Sequence || spkiEl.tag !== der.Tag.Sequence) {
      throw new RangeError('unexpected structure');
    }
  } catch (cause) {
    throw new ValidationError('INVALID_CSR', 'the input is not a PKCS#10 certificate request', { cause });
  }
  const spki = Buffer.from(spkiEl.bytes);
  let publicKey: PublicKeyInfo;
  try {
    publicKey = describePublicKey(spki);
  } catch (e) {
    const err = e as ValidationError;
    throw new CsrRejectedError(err.code === 'INVALID_PUBLIC_KEY' ? 'INVALID_CSR' : err.code, err.message, { cause: e });
  }
  const algOid = der.readOid(der.children(sigAlg)[0]);
  const hash = algOid ? SIGNATURE_HASH[algOid] : undefined;
  if (!hash) {
    throw new CsrRejectedError(
      'UNSUPPORTED_SIGNATURE_ALGORITHM',
      `the CSR is signed with an unsupported algorithm (${algOid ?? 'unknown'})`,
    );
  }
  let valid = false;
  try {
    valid = cryptoVerify(
      hash,
      info.bytes,
      createPublicKey({ key: spki, format: 'der', type: 'spki' }),
      sig.content.subarray(1),
    );
  } catch {
    valid = false;
  }
  if (!valid)
    throw new CsrRejectedError('CSR_SIGNATURE_INVALID', 'the CSR signature does not verify with its public key');
  if (asksForCa(attributes))
    throw new CsrRejectedError('CSR_REQUESTS_CA', 'the CSR asks for a CA certificate (cA=TRUE)');

  let subject = '';
  let commonName: string | undefined;
  try {
    const name = new x509.Name(new Uint8Array(subjectEl.bytes).buffer);
    subject = name.toString();
    commonName = name.getField('CN')[0];
  } catch (cause) {
    throw new ValidationError('INVALID_CSR', 'the CSR subject cannot be read', { cause });
  }
  return {
    der: csrDer,
    subjectDer: Buffer.from(subjectEl.bytes),
    subject,
    ...(commonName !== undefined ? { commonName } : {}),
    spki,
    publicKey,
  };
}

/**
 * A PKCS#10 request for `subjectDer` and a device key, signed with that key (used where another CA signs:
 * ACM Private CA takes a CSR).
 */
export function buildCsr(subjectDer: Buffer, key: { spki: Buffer; pkcs8: Buffer }): Buffer {
  const privateKey = createPrivateKey({ key: key.pkcs8, format: 'der', type: 'pkcs8' });
  const { keyType } = describePublicKey(key.spki);
  const algorithm = signatureAlgorithmFor(keyType);
  const info = der.sequence(der.integer(0), subjectDer, key.spki, der.tlv(0xa0));
  return der.sequence(info, algorithm.identifier, der.bitString(cryptoSign(algorithm.hash, info, privateKey)));
}
