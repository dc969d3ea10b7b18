import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { CertflowError, ConflictError, CsrRejectedError, ValidationError } from '../../lambdas/core/errors';
import {
  buildChain,
  buildCrl,
  certificateId,
  createIntermediateCa,
  createRootCa,
  decodePem,
  describePublicKey,
  encodeName,
  generateKeyPair,
  issueCertificate,
  issueFromCsr,
  issueLeaf,
  KEY_TYPES,
  KeyObjectSigner,
  parseCertificate,
  parseCsr,
  parseKeyType,
  pemBundle,
  privateKeyToPem,
  verifyChain,
} from '../../lambdas/core/pki';
import { x509 } from '../../lambdas/core/pki/setup';
import { makeCsr } from '../helpers/csr';

const NOW = new Date('2026-03-01T12:00:00.000Z');
const DAY = 86_400_000;

/** Expects `fn` to throw a CertflowError of this class and code. */
async function expectError(fn: () => unknown, type: new (...a: never[]) => CertflowError, code: string): Promise<void> {
  let caught: unknown;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(type);
  expect((caught as CertflowError).code).toBe(code);
}

async function hierarchy() {
  const root = await createRootCa({
    subject: { commonName: 'Test Root', organization: 'Acme' },
    validity: { days: 3650 },
    now: NOW,
    pathLength: 1,
  });
  const intermediate = await createIntermediateCa(root.issuer, {
    subject: { commonName: 'Test Intermediate', organization: 'Acme' },
    validity: { days: 1825 },
    now: NOW,
  });
  return { root, intermediate };
}

describe('keys', () => {
  it.each(KEY_TYPES.filter((t) => t !== 'rsa-4096'))('generates %s and exports PKCS#8 PEM', (type) => {
    const keys = generateKeyPair(type);
    const pem = privateKeyToPem(keys.privateKey);
    expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(describePublicKey(keys.publicKey).keyType).toBe(type);
  });

  it('defaults to ec-p256 and rejects an unknown key type with a code', async () => {
    expect(parseKeyType(undefined)).toBe('ec-p256');
    await expectError(() => parseKeyType('dsa-1024'), ValidationError, 'UNSUPPORTED_KEY_TYPE');
  });

  it('refuses RSA below 2048 bits and curves other than P-256/P-384', async () => {
    await expectError(
      () => describePublicKey(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey),
      ValidationError,
      'WEAK_KEY',
    );
    await expectError(
      () => describePublicKey(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey),
      ValidationError,
      'UNSUPPORTED_KEY',
    );
    await expectError(
      () => describePublicKey(generateKeyPairSync('ed25519').publicKey),
      ValidationError,
      'UNSUPPORTED_KEY',
    );
  });
});

describe('encodeName', () => {
  it.each([
    ['error/country of three letters', { commonName: 'a', country: 'DEU' }],
    ['error/lower-case country', { commonName: 'a', country: 'de' }],
    ['error/common name over 64 characters', { commonName: 'x'.repeat(65) }],
    ['error/empty common name', { commonName: '' }],
    ['error/control character', { commonName: 'a\u0000b' }],
    ['error/empty subject', {}],
    ['error/bad email', { commonName: 'a', emailAddress: 'nobody' }],
  ])('%s → INVALID_SUBJECT', async (_name, subject) => {
    await expectError(() => encodeName(subject), ValidationError, 'INVALID_SUBJECT');
  });

  it('ok/all CDF certInfo fields in openssl order', () => {
    const name = new x509.Name(
      new Uint8Array(
        encodeName({
          commonName: 'dev-1',
          organization: 'Acme',
          organizationalUnit: 'Fleet',
          locality: 'Seattle',
          stateName: 'WA',
          country: 'US',
          emailAddress: 'iot@example.com',
          distinguishedNameQualifier: 'q1',
        }),
      ).buffer,
    );
    expect(name.toString()).toBe('C=US, ST=WA, L=Seattle, O=Acme, OU=Fleet, CN=dev-1, 2.5.4.46=q1, E=iot@example.com');
  });
});

describe('CA hierarchy', () => {
  it('makes a self-signed root and an intermediate with CA constraints, SKI and AKI', async () => {
    const { root, intermediate } = await hierarchy();
    expect(root.certificate.isCa).toBe(true);
    expect(root.certificate.pathLength).toBe(1);
    expect(root.certificate.issuerDer.equals(root.certificate.subjectDer)).toBe(true);
    expect(root.certificate.authorityKeyId).toEqual(root.certificate.subjectKeyId);
    expect(intermediate.certificate.isCa).toBe(true);
    expect(intermediate.certificate.pathLength).toBe(0);
    expect(intermediate.certificate.authorityKeyId).toEqual(root.certificate.subjectKeyId);
    expect(intermediate.certificate.issuer).toBe('O=Acme, CN=Test Root');
    const node = new X509Certificate(intermediate.certificate.der);
    expect(node.ca).toBe(true);
    expect(node.checkIssued(new X509Certificate(root.certificate.der))).toBe(true);
    expect(node.verify(new X509Certificate(root.certificate.der).publicKey)).toBe(true);
  });

  it('refuses a CA below an intermediate with pathLen 0', async () => {
    const { intermediate } = await hierarchy();
    await expectError(
      () =>
        createIntermediateCa(intermediate.issuer, {
          subject: { commonName: 'too deep' },
          validity: { days: 10 },
          now: NOW,
        }),
      ValidationError,
      'PATH_LENGTH_EXCEEDED',
    );
  });

  it('refuses a certificate that would outlive its issuer, and issuing from an expired CA', async () => {
    const { intermediate } = await hierarchy();
    await expectError(
      () =>
        issueLeaf(intermediate.issuer, {
          profile: 'device',
          subject: { commonName: 'd' },
          validity: { days: 5000 },
          now: NOW,
        }),
      ValidationError,
      'VALIDITY_EXCEEDS_ISSUER',
    );
    const later = new Date(NOW.getTime() + 2000 * DAY);
    await expectError(
      () =>
        issueLeaf(intermediate.issuer, {
          profile: 'device',
          subject: { commonName: 'd' },
          validity: { days: 1 },
          now: later,
        }),
      ConflictError,
      'ISSUER_EXPIRED',
    );
  });
});

describe('issueLeaf', () => {
  it('sets validity from days with a 60 s backdate (fixed clock)', async () => {
    const { intermediate } = await hierarchy();
    const { certificate } = await issueLeaf(intermediate.issuer, {
      profile: 'device',
      subject: { commonName: 'd1' },
      validity: { days: 365 },
      now: NOW,
    });
    expect(certificate.notBefore.toISOString()).toBe('2026-03-01T11:59:00.000Z');
    expect(certificate.notAfter.toISOString()).toBe('2027-03-01T12:00:00.000Z');
  });

  it('accepts explicit notBefore/notAfter', async () => {
    const { intermediate } = await hierarchy();
    const notBefore = new Date('2026-04-01T00:00:00Z');
    const notAfter = new Date('2026-05-01T00:00:00Z');
    const { certificate } = await issueLeaf(intermediate.issuer, {
      profile: 'device',
      subject: { commonName: 'd1' },
      validity: { notBefore, notAfter },
      now: NOW,
    });
    expect(certificate.notBefore).toEqual(notBefore);
    expect(certificate.notAfter).toEqual(notAfter);
  });

  it.each([
    ['error/0 days', { days: 0 }],
    ['error/negative days', { days: -5 }],
    ['error/fractional days', { days: 1.5 }],
    ['error/notAfter before notBefore', { notBefore: new Date('2026-05-01Z'), notAfter: new Date('2026-04-01Z') }],
  ])('%s → INVALID_VALIDITY', async (_n, validity) => {
    const { intermediate } = await hierarchy();
    await expectError(
      () => issueLeaf(intermediate.issuer, { profile: 'device', subject: { commonName: 'd' }, validity, now: NOW }),
      ValidationError,
      'INVALID_VALIDITY',
    );
  });

  it('gives positive, 16-byte, unique serial numbers', async () => {
    const { intermediate } = await hierarchy();
    const keys = generateKeyPair('ec-p256');
    const serials = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const c = await issueCertificate(
        {
          profile: 'device',
          subject: { commonName: `d${i}` },
          publicKey: keys.publicKey,
          validity: { days: 1 },
          now: NOW,
        },
        intermediate.issuer,
      );
      expect(c.serialNumber).toMatch(/^[4-7][0-9a-f]{31}$/);
      serials.add(c.serialNumber);
    }
    expect(serials.size).toBe(200);
  });

  it('computes the certificate id as the lower-case SHA-256 of the DER', async () => {
    const { root } = await hierarchy();
    const fingerprint = new X509Certificate(root.certificate.der).fingerprint256.replace(/:/g, '').toLowerCase();
    expect(root.certificate.id).toBe(fingerprint);
    expect(certificateId(root.certificate.der)).toBe(fingerprint);
  });

  it('puts the common name and SANs into a server certificate', async () => {
    const { intermediate } = await hierarchy();
    const { certificate } = await issueLeaf(intermediate.issuer, {
      profile: 'server',
      subject: { commonName: 'mqtt.example.com' },
      sans: { dns: ['alt.example.com'], ip: ['127.0.0.1', '::1'] },
      validity: { days: 90 },
      now: NOW,
    });
    expect(new X509Certificate(certificate.der).subjectAltName).toBe(
      'DNS:mqtt.example.com, DNS:alt.example.com, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1',
    );
  });

  it('refuses a server certificate with no DNS name or IP', async () => {
    const { intermediate } = await hierarchy();
    await expectError(
      () =>
        issueLeaf(intermediate.issuer, {
          profile: 'server',
          subject: { commonName: 'not a host name' },
          validity: { days: 1 },
          now: NOW,
        }),
      ValidationError,
      'INVALID_SAN',
    );
  });

  it('is signed with the algorithm matching the CA key', async () => {
    const root = await createRootCa({
      subject: { commonName: 'P384 root' },
      keyType: 'ec-p384',
      validity: { days: 30 },
      now: NOW,
    });
    expect(root.certificate.signatureAlgorithmOid).toBe('1.2.840.10045.4.3.3');
    const rsa = await createRootCa({
      subject: { commonName: 'RSA root' },
      keyType: 'rsa-2048',
      validity: { days: 30 },
      now: NOW,
    });
    expect(rsa.certificate.signatureAlgorithmOid).toBe('1.2.840.113549.1.1.11');
  });
});

describe('parseCertificate and PEM', () => {
  it.each([
    ['error/truncated PEM', (pem: string) => pem.slice(0, pem.length / 2), 'INVALID_PEM'],
    ['error/wrong PEM label', (pem: string) => pem.replace(/CERTIFICATE/g, 'PUBLIC KEY'), 'WRONG_PEM_LABEL'],
    ['error/garbage body', (pem: string) => pem.replace(/\n[A-Za-z0-9+/]{10}/, '\n@@@@@@@@@@'), 'INVALID_PEM'],
    [
      'error/not a certificate inside',
      () => '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
      'INVALID_CERTIFICATE',
    ],
  ])('%s', async (_n, mangle, code) => {
    const { root } = await hierarchy();
    await expectError(() => parseCertificate(mangle(root.certificate.pem)), ValidationError, code);
  });

  it('round-trips PEM and DER', async () => {
    const { root } = await hierarchy();
    expect(decodePem(root.certificate.pem, 'CERTIFICATE')).toEqual(root.certificate.der);
    expect(parseCertificate(root.certificate.der).id).toBe(root.certificate.id);
  });
});

describe('parseCsr', () => {
  it('reports subject and public key of a valid CSR and issues with them', async () => {
    const { intermediate } = await hierarchy();
    const csr = await makeCsr({ name: 'CN=thing-42, O=Acme' });
    const parsed = parseCsr(csr.pem);
    expect(parsed.commonName).toBe('thing-42');
    expect(parsed.subject).toBe('CN=thing-42, O=Acme');
    expect(parsed.publicKey.keyType).toBe('ec-p256');
    const cert = await issueFromCsr(intermediate.issuer, parsed, {
      profile: 'device',
      validity: { days: 30 },
      now: NOW,
    });
    expect(cert.subjectDer).toEqual(parsed.subjectDer);
    expect(cert.spki).toEqual(parsed.spki);
  });

  it('rejects a CSR whose signature does not verify', async () => {
    const csr = await makeCsr({ name: 'CN=thing-42' });
    const tampered = Buffer.from(csr.der);
    const at = tampered.indexOf(Buffer.from('thing-42'));
    tampered[at] = 'T'.charCodeAt(0);
    await expectError(() => parseCsr(tampered), CsrRejectedError, 'CSR_SIGNATURE_INVALID');
  });

  it('rejects an RSA-1024 CSR as WEAK_KEY', async () => {
    const csr = await makeCsr({ name: 'CN=weak', alg: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 1024 } });
    await expectError(() => parseCsr(csr.pem), CsrRejectedError, 'WEAK_KEY');
  });

  it('rejects a CSR that asks for CA:true', async () => {
    const csr = await makeCsr({ name: 'CN=sneaky', ca: true });
    await expectError(() => parseCsr(csr.pem), CsrRejectedError, 'CSR_REQUESTS_CA');
  });

  it.each([
    ['error/garbage DER', Buffer.from('not a csr at all'), 'INVALID_CSR'],
    ['error/empty string', '', 'INVALID_PEM'],
    ['error/certificate instead of CSR', 'CERT', 'WRONG_PEM_LABEL'],
    ['error/truncated DER', 'TRUNC', 'INVALID_CSR'],
  ])('%s', async (_n, input, code) => {
    let value: string | Buffer = input;
    if (input === 'CERT') value = (await hierarchy()).root.certificate.pem;
    if (input === 'TRUNC') value = (await makeCsr({ name: 'CN=x' })).der.subarray(0, 50);
    await expectError(() => parseCsr(value), ValidationError, code);
  });
});

describe('chains', () => {
  it('builds leaf → intermediate → root and verifies it', async () => {
    const { root, intermediate } = await hierarchy();
    const { certificate } = await issueLeaf(intermediate.issuer, {
      profile: 'device',
      subject: { commonName: 'd' },
      validity: { days: 10 },
      now: NOW,
    });
    const chain = buildChain(certificate, [root.certificate, intermediate.certificate]);
    expect(chain.map((c) => c.commonName)).toEqual(['d', 'Test Intermediate', 'Test Root']);
    expect(() => verifyChain(chain, [root.certificate], NOW)).not.toThrow();
    expect(pemBundle(chain).match(/BEGIN CERTIFICATE/g)).toHaveLength(3);
  });

  it('rejects a chain to another root, and an expired leaf', async () => {
    const { root, intermediate } = await hierarchy();
    const other = await hierarchy();
    const { certificate } = await issueLeaf(intermediate.issuer, {
      profile: 'device',
      subject: { commonName: 'd' },
      validity: { days: 10 },
      now: NOW,
    });
    const chain = buildChain(certificate, [root.certificate, intermediate.certificate]);
    await expectError(() => verifyChain(chain, [other.root.certificate], NOW), ValidationError, 'CHAIN_INVALID');
    await expectError(
      () => verifyChain(chain, [root.certificate], new Date(NOW.getTime() + 11 * DAY)),
      ValidationError,
      'CHAIN_INVALID',
    );
    // a leaf paired with the wrong intermediate
    await expectError(
      () =>
        verifyChain(
          [certificate, other.intermediate.certificate, other.root.certificate],
          [other.root.certificate],
          NOW,
        ),
      ValidationError,
      'CHAIN_INVALID',
    );
  });
});

describe('buildCrl', () => {
  it('lists revoked serials with reasons and is signed by the CA', async () => {
    const { intermediate } = await hierarchy();
    const crl = await buildCrl(intermediate.issuer, {
      entries: [
        { serialNumber: '4a0b', revokedAt: NOW, reason: 'keyCompromise' },
        { serialNumber: 'ff01', revokedAt: NOW },
      ],
      thisUpdate: NOW,
      nextUpdate: new Date(NOW.getTime() + DAY),
      crlNumber: 7,
    });
    const parsed = new x509.X509Crl(crl.pem);
    expect(parsed.entries.map((e) => e.serialNumber.toLowerCase())).toEqual(['4a0b', 'ff01']);
    expect(parsed.entries[0]!.reason).toBe(x509.X509CrlReason.keyCompromise);
    expect(
      await parsed.verify({
        publicKey: await new x509.X509Certificate(intermediate.certificate.der).publicKey.export(),
      }),
    ).toBe(true);
  });

  it('refuses nextUpdate not after thisUpdate and a non-hex serial', async () => {
    const { intermediate } = await hierarchy();
    await expectError(
      () => buildCrl(intermediate.issuer, { entries: [], thisUpdate: NOW, nextUpdate: NOW, crlNumber: 1 }),
      ValidationError,
      'INVALID_VALIDITY',
    );
    await expectError(
      () =>
        buildCrl(intermediate.issuer, {
          entries: [{ serialNumber: 'xyz', revokedAt: NOW }],
          thisUpdate: NOW,
          nextUpdate: new Date(NOW.getTime() + 1),
          crlNumber: 1,
        }),
      ValidationError,
      'INVALID_SERIAL',
    );
  });
});

describe('KeyObjectSigner', () => {
  it('refuses a public key', async () => {
    await expectError(() => new KeyObjectSigner(generateKeyPair().publicKey), ValidationError, 'INVALID_PRIVATE_KEY');
  });
});

describe('subject alternative names', () => {
  it.each([
    ['ok/IPv4', '10.1.2.3', 'IP Address:10.1.2.3'],
    ['ok/IPv6 compressed', 'fe80::1', 'IP Address:FE80:0:0:0:0:0:0:1'],
    ['ok/IPv6 with embedded IPv4', '::ffff:1.2.3.4', 'IP Address:0:0:0:0:0:FFFF:102:304'],
  ])('%s', async (_n, ip, expected) => {
    const root = await createRootCa({ subject: { commonName: 'r' }, validity: { days: 2 }, now: NOW });
    const { certificate } = await issueLeaf(root.issuer, {
      profile: 'server',
      subject: { commonName: 'h.example' },
      sans: { ip: [ip] },
      validity: { days: 1 },
      now: NOW,
    });
    expect(new X509Certificate(certificate.der).subjectAltName).toContain(expected);
  });

  it.each(['999.1.1.1', 'fe80:::1', 'example.com'])('error/%s is not an IP address', async (ip) => {
    const root = await createRootCa({ subject: { commonName: 'r' }, validity: { days: 2 }, now: NOW });
    await expectError(
      () =>
        issueLeaf(root.issuer, {
          profile: 'server',
          subject: { commonName: 'h.example' },
          sans: { ip: [ip] },
          validity: { days: 1 },
          now: NOW,
        }),
      ValidationError,
      'INVALID_SAN',
    );
  });
});
