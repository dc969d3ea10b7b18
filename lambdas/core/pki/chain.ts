import { createPublicKey, X509Certificate } from 'node:crypto';
import { ValidationError } from '../errors';
import { ParsedCertificate } from './certificate';

/** Did `parent` sign `child`? (issuer name, key identifiers and the signature itself) */
export function isIssuedBy(child: ParsedCertificate, parent: ParsedCertificate): boolean {
  if (!child.issuerDer.equals(parent.subjectDer)) return false;
  if (child.authorityKeyId && !child.authorityKeyId.equals(parent.subjectKeyId)) return false;
  try {
    return new X509Certificate(child.der).verify(createPublicKey({ key: parent.spki, format: 'der', type: 'spki' }));
  } catch {
    return false;
  }
}

const isSelfSigned = (c: ParsedCertificate): boolean => c.issuerDer.equals(c.subjectDer) && isIssuedBy(c, c);

/** leaf → intermediates → root, from the certificates in `pool`; stops at a self-signed one or where none fits. */
export function buildChain(leaf: ParsedCertificate, pool: ParsedCertificate[]): ParsedCertificate[] {
  const chain = [leaf];
  for (let current = leaf; !isSelfSigned(current) && chain.length <= 10;) {
    const parent = pool.find((p) => !chain.some((c) => c.id === p.id) && isIssuedBy(current, p));
    if (!parent) break;
    chain.push(parent);
    current = parent;
  }
  return chain;
}

export const pemBundle = (certs: ParsedCertificate[]): string => certs.map((c) => c.pem).join('');

/**
 * Verifies a chain ordered leaf first: each link's signature and names, validity at `at`, CA flags and path
 * lengths, ending in one of `trustAnchors`. Throws CHAIN_INVALID with the reason.
 */
export function verifyChain(chain: ParsedCertificate[], trustAnchors: ParsedCertificate[], at: Date): void {
  const fail = (reason: string): never => {
    throw new ValidationError('CHAIN_INVALID', reason);
  };
  if (chain.length === 0) fail('the chain is empty');
  chain.forEach((cert, i) => {
    if (at < cert.notBefore) fail(`${cert.subject} is not valid before ${cert.notBefore.toISOString()}`);
    if (at > cert.notAfter) fail(`${cert.subject} expired on ${cert.notAfter.toISOString()}`);
    const parent = chain[i + 1];
    if (!parent) return;
    if (!parent.isCa) fail(`${parent.subject} is not a CA`);
    // CAs below this one in the chain, excluding the leaf
    const casBelow = chain.slice(1, i + 1).length;
    if (parent.pathLength !== undefined && casBelow > parent.pathLength) {
      fail(`${parent.subject} allows ${parent.pathLength} CA(s) below it`);
    }
    if (!isIssuedBy(cert, parent)) fail(`${cert.subject} is not signed by ${parent.subject}`);
  });
  const top = chain[chain.length - 1]!;
  const anchored = trustAnchors.some((a) => a.id === top.id || (a.isCa && isIssuedBy(top, a)));
  if (!anchored) fail(`${top.subject} does not lead to a trusted root`);
}
