import {
  createHash,
  createPublicKey,
  generateKeyPair as generateKeyPairCb,
  generateKeyPairSync,
  KeyObject,
  sign as cryptoSign,
} from 'node:crypto';
import { promisify } from 'node:util';
import { ValidationError } from '../errors';
import * as der from './der';
import { OID } from './oids';

export const KEY_TYPES = ['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096'] as const;
export type KeyType = (typeof KEY_TYPES)[number];
export const DEFAULT_KEY_TYPE: KeyType = 'ec-p256';

export const isKeyType = (value: unknown): value is KeyType =>
  typeof value === 'string' && (KEY_TYPES as readonly string[]).includes(value);

export function parseKeyType(value: unknown): KeyType {
  if (value === undefined) return DEFAULT_KEY_TYPE;
  if (!isKeyType(value)) {
    throw new ValidationError('UNSUPPORTED_KEY_TYPE', `keyType must be one of ${KEY_TYPES.join(', ')}`, {
      details: { field: 'keyType' },
    });
  }
  return value;
}

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

const curveOf = { 'ec-p256': 'P-256', 'ec-p384': 'P-384' } as const;

function keyGenArgs(type: KeyType): ['ec', { namedCurve: string }] | ['rsa', { modulusLength: number }] {
  if (type === 'ec-p256' || type === 'ec-p384') return ['ec', { namedCurve: curveOf[type] }];
  return ['rsa', { modulusLength: Number(type.slice(4)) }];
}

/** A fresh key pair; synchronous (RSA-4096 takes seconds: prefer generateKeyPairAsync off the hot path). */
export function generateKeyPair(type: KeyType = DEFAULT_KEY_TYPE): KeyPair {
  const [alg, opts] = keyGenArgs(type);
  return alg === 'ec' ? generateKeyPairSync('ec', opts) : generateKeyPairSync('rsa', opts);
}

const generateAsync = promisify(generateKeyPairCb);

/** A fresh key pair generated on libuv's thread pool (does not block the event loop). */
export async function generateKeyPairAsync(type: KeyType = DEFAULT_KEY_TYPE): Promise<KeyPair> {
  const [alg, opts] = keyGenArgs(type);
  return alg === 'ec' ? generateAsync('ec', opts) : generateAsync('rsa', opts);
}

export const privateKeyToPem = (key: KeyObject): string => key.export({ type: 'pkcs8', format: 'pem' }) as string;
export const publicKeyToPem = (key: KeyObject): string => key.export({ type: 'spki', format: 'pem' }) as string;
export const spkiDer = (key: KeyObject): Buffer => key.export({ type: 'spki', format: 'der' });

export interface PublicKeyInfo {
  keyType: KeyType;
  algorithm: 'EC' | 'RSA';
  /** curve name or modulus length, for display */
  size: string;
}

/**
 * Describes a public key and enforces certflow's policy: EC P-256/P-384, RSA 2048–4096 (other RSA sizes of at
 * least 2048 bits are mapped to the nearest lower supported type for display). Anything else is refused.
 */
export function describePublicKey(key: KeyObject | Buffer): PublicKeyInfo {
  let k: KeyObject;
  try {
    k = key instanceof KeyObject ? key : createPublicKey({ key, format: 'der', type: 'spki' });
  } catch (cause) {
    throw new ValidationError('INVALID_PUBLIC_KEY', 'the public key cannot be parsed', { cause });
  }
  const details = k.asymmetricKeyDetails ?? {};
  if (k.asymmetricKeyType === 'ec') {
    if (details.namedCurve === 'prime256v1') return { keyType: 'ec-p256', algorithm: 'EC', size: 'P-256' };
    if (details.namedCurve === 'secp384r1') return { keyType: 'ec-p384', algorithm: 'EC', size: 'P-384' };
    throw new ValidationError('UNSUPPORTED_KEY', `EC curve ${details.namedCurve ?? 'unknown'} is not supported`);
  }
  if (k.asymmetricKeyType === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < 2048) throw new ValidationError('WEAK_KEY', `RSA keys need at least 2048 bits (got ${bits})`);
    if (bits > 8192) throw new ValidationError('UNSUPPORTED_KEY', `RSA keys above 8192 bits are not supported`);
    const keyType: KeyType = bits >= 4096 ? 'rsa-4096' : bits >= 3072 ? 'rsa-3072' : 'rsa-2048';
    return { keyType, algorithm: 'RSA', size: String(bits) };
  }
  throw new ValidationError('UNSUPPORTED_KEY', `${k.asymmetricKeyType ?? 'unknown'} keys are not supported`);
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's value. */
export function keyIdentifier(spki: Buffer): Buffer {
  const [, bits] = der.children(der.readElement(spki));
  if (!bits || bits.tag !== der.Tag.BitString) throw new ValidationError('INVALID_PUBLIC_KEY', 'malformed SPKI');
  return createHash('sha1').update(bits.content.subarray(1)).digest();
}

export interface SignatureAlgorithm {
  name: 'ecdsa-with-SHA256' | 'ecdsa-with-SHA384' | 'sha256WithRSAEncryption';
  hash: 'sha256' | 'sha384';
  /** the AlgorithmIdentifier, DER */
  identifier: Buffer;
}

const SIGNATURE_ALGORITHMS: Record<SignatureAlgorithm['name'], SignatureAlgorithm> = {
  'ecdsa-with-SHA256': {
    name: 'ecdsa-with-SHA256',
    hash: 'sha256',
    identifier: der.sequence(der.oid(OID.ecdsaWithSha256)),
  },
  'ecdsa-with-SHA384': {
    name: 'ecdsa-with-SHA384',
    hash: 'sha384',
    identifier: der.sequence(der.oid(OID.ecdsaWithSha384)),
  },
  sha256WithRSAEncryption: {
    name: 'sha256WithRSAEncryption',
    hash: 'sha256',
    identifier: der.sequence(der.oid(OID.sha256WithRsa), der.nullValue()),
  },
};

/** The signature algorithm a CA key of this type signs with. */
export function signatureAlgorithmFor(keyType: KeyType): SignatureAlgorithm {
  if (keyType === 'ec-p256') return SIGNATURE_ALGORITHMS['ecdsa-with-SHA256'];
  if (keyType === 'ec-p384') return SIGNATURE_ALGORITHMS['ecdsa-with-SHA384'];
  return SIGNATURE_ALGORITHMS.sha256WithRSAEncryption;
}

/**
 * Signs TBS bytes for a certificate or CRL. The software CA holds a KeyObject; a KMS key or any remote signer
 * implements the same interface. ECDSA signatures are DER (the X.509 form), RSA ones PKCS#1 v1.5.
 */
export interface CertificateSigner {
  readonly algorithm: SignatureAlgorithm;
  sign(data: Buffer): Promise<Buffer>;
}

export class KeyObjectSigner implements CertificateSigner {
  readonly algorithm: SignatureAlgorithm;
  readonly keyType: KeyType;

  constructor(private readonly privateKey: KeyObject) {
    if (privateKey.type !== 'private') throw new ValidationError('INVALID_PRIVATE_KEY', 'a private key is needed');
    this.keyType = describePublicKey(createPublicKey(privateKey)).keyType;
    this.algorithm = signatureAlgorithmFor(this.keyType);
  }

  signSync(data: Buffer): Buffer {
    return cryptoSign(this.algorithm.hash, data, this.privateKey);
  }

  sign(data: Buffer): Promise<Buffer> {
    return Promise.resolve(this.signSync(data));
  }
}
