import { webcrypto } from 'node:crypto';

type CryptoKeyPair = webcrypto.CryptoKeyPair;
import { x509 } from '../../lambdas/core/pki/setup';

type Alg = { name: 'ECDSA'; namedCurve: 'P-256' | 'P-384' } | { name: 'RSASSA-PKCS1-v1_5'; modulusLength: number };

/**
 * A CSR made by @peculiar/x509 (an implementation independent of certflow's encoder), for unit tests that
 * need many CSRs quickly. The oracle tests use `openssl req` instead.
 */
export async function makeCsr(opts: {
  name: string;
  alg?: Alg;
  ca?: boolean;
}): Promise<{ pem: string; der: Buffer; keys: CryptoKeyPair }> {
  const alg = opts.alg ?? { name: 'ECDSA', namedCurve: 'P-256' };
  const params =
    alg.name === 'ECDSA'
      ? { ...alg, hash: 'SHA-256' }
      : { ...alg, hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]) };
  const keys = (await webcrypto.subtle.generateKey(params, true, ['sign', 'verify'])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: opts.name,
    keys,
    signingAlgorithm: params,
    extensions: opts.ca ? [new x509.BasicConstraintsExtension(true, undefined, true)] : [],
  });
  return { pem: csr.toString('pem'), der: Buffer.from(csr.rawData), keys };
}
