/**
 * openssl is the oracle: everything certflow's PKI core produces is checked by the openssl CLI.
 */
import { createPublicKey } from 'node:crypto';
import {
  buildCrl,
  createIntermediateCa,
  createRootCa,
  issueFromCsr,
  issueLeaf,
  KEY_TYPES,
  KeyType,
  parseCsr,
  privateKeyToPem,
} from '../../lambdas/core/pki';
import { CsrRejectedError } from '../../lambdas/core/errors';
import { openssl, scratch } from '../helpers/openssl';

const now = () => new Date();
const files = scratch();
afterAll(() => files.cleanup());

const opensslKeyArgs: Record<KeyType, string[]> = {
  'ec-p256': ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  'ec-p384': ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'],
  'rsa-2048': ['-newkey', 'rsa:2048'],
  'rsa-3072': ['-newkey', 'rsa:3072'],
  'rsa-4096': ['-newkey', 'rsa:4096'],
};

describe.each(KEY_TYPES)('%s hierarchy checked by openssl', (keyType) => {
  let root: Awaited<ReturnType<typeof createRootCa>>;
  let intermediate: Awaited<ReturnType<typeof createRootCa>>;
  let rootFile: string;
  let intFile: string;

  beforeAll(async () => {
    root = await createRootCa({
      subject: { commonName: `Root ${keyType}`, organization: 'certflow tests', country: 'DE' },
      keyType,
      validity: { days: 3650 },
      now: now(),
      pathLength: 1,
    });
    intermediate = await createIntermediateCa(root.issuer, {
      subject: { commonName: `Intermediate ${keyType}`, organization: 'certflow tests' },
      keyType,
      validity: { days: 1000 },
      now: now(),
    });
    rootFile = files.write(`${keyType}-root.pem`, root.certificate.pem);
    intFile = files.write(`${keyType}-int.pem`, intermediate.certificate.pem);
  });

  it('openssl verify accepts a device certificate through the intermediate, and shows subject, extensions and validity', async () => {
    const { certificate, privateKey } = await issueLeaf(intermediate.issuer, {
      profile: 'device',
      subject: {
        commonName: 'thing-0001',
        organization: 'Acme',
        organizationalUnit: 'Fleet',
        locality: 'Berlin',
        stateName: 'BE',
        country: 'DE',
        emailAddress: 'ops@example.com',
        distinguishedNameQualifier: 'lot7',
      },
      keyType,
      validity: { days: 365 },
      now: now(),
    });
    const leaf = files.write(`${keyType}-device.pem`, certificate.pem);
    const verify = await openssl(['verify', '-CAfile', rootFile, '-untrusted', intFile, '-purpose', 'sslclient', leaf]);
    expect(verify.stderr).toBe('');
    expect(verify.stdout.trim()).toBe(`${leaf}: OK`);

    const text = (await openssl(['x509', '-noout', '-text', '-in', leaf])).stdout;
    expect(text).toMatch(/Version: 3 \(0x2\)/);
    expect(text).toMatch(
      /Subject: C = DE, ST = BE, L = Berlin, O = Acme, OU = Fleet, CN = thing-0001, dnQualifier = lot7, emailAddress = ops@example.com/,
    );
    expect(text).toMatch(new RegExp(`Issuer: O = certflow tests, CN = Intermediate ${keyType}`));
    expect(text).toMatch(/X509v3 Basic Constraints: critical\n\s+CA:FALSE/);
    expect(text).toMatch(/X509v3 Extended Key Usage: \n\s+TLS Web Client Authentication/);
    expect(text).toMatch(
      keyType.startsWith('rsa')
        ? /X509v3 Key Usage: critical\n\s+Digital Signature, Key Encipherment/
        : /X509v3 Key Usage: critical\n\s+Digital Signature\n/,
    );
    expect(text).toMatch(/X509v3 Subject Key Identifier/);
    expect(text).toMatch(/X509v3 Authority Key Identifier/);
    const dates = (await openssl(['x509', '-noout', '-startdate', '-enddate', '-serial', '-in', leaf])).stdout;
    const notAfter = new Date(/notAfter=(.*)/.exec(dates)![1]!);
    expect(notAfter.toISOString()).toBe(certificate.notAfter.toISOString());
    expect(/serial=([0-9A-F]+)/.exec(dates)![1]!.toLowerCase()).toBe(certificate.serialNumber);
    expect(certificate.serialNumber).toHaveLength(32);

    // the private key we hand out is PKCS#8 and matches the certificate
    const keyFile = files.write(`${keyType}-device.key`, privateKeyToPem(privateKey));
    const pubFromKey = (await openssl(['pkey', '-in', keyFile, '-pubout'])).stdout;
    const pubFromCert = (await openssl(['x509', '-in', leaf, '-noout', '-pubkey'])).stdout;
    expect(pubFromKey).toBe(pubFromCert);
  });

  it('openssl shows the CA constraints of root and intermediate', async () => {
    const rootText = (await openssl(['x509', '-noout', '-text', '-in', rootFile])).stdout;
    expect(rootText).toMatch(/X509v3 Basic Constraints: critical\n\s+CA:TRUE, pathlen:1/);
    expect(rootText).toMatch(/X509v3 Key Usage: critical\n\s+Certificate Sign, CRL Sign/);
    const intText = (await openssl(['x509', '-noout', '-text', '-in', intFile])).stdout;
    expect(intText).toMatch(/X509v3 Basic Constraints: critical\n\s+CA:TRUE, pathlen:0/);
    expect((await openssl(['verify', '-CAfile', rootFile, intFile])).stdout.trim()).toBe(`${intFile}: OK`);
  });

  it('openssl verify accepts a server certificate for its host name', async () => {
    const { certificate } = await issueLeaf(intermediate.issuer, {
      profile: 'server',
      subject: { commonName: 'broker.example.com' },
      sans: { ip: ['127.0.0.1'] },
      keyType,
      validity: { days: 30 },
      now: now(),
    });
    const leaf = files.write(`${keyType}-server.pem`, certificate.pem);
    const ok = await openssl([
      'verify',
      '-CAfile',
      rootFile,
      '-untrusted',
      intFile,
      '-purpose',
      'sslserver',
      '-verify_hostname',
      'broker.example.com',
      leaf,
    ]);
    expect(ok.stdout.trim()).toBe(`${leaf}: OK`);
    const wrongHost = await openssl([
      'verify',
      '-CAfile',
      rootFile,
      '-untrusted',
      intFile,
      '-verify_hostname',
      'other.example.com',
      leaf,
    ]);
    expect(wrongHost.code).not.toBe(0);
  });

  it('issues from an openssl CSR with its public key and subject; a tampered CSR is rejected', async () => {
    const keyFile = `${files.dir}/${keyType}-csr.key`;
    const csrFile = `${files.dir}/${keyType}.csr`;
    const req = await openssl([
      'req',
      '-new',
      ...opensslKeyArgs[keyType],
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      csrFile,
      '-subj',
      '/C=US/O=Acme Devices/CN=thing-from-csr',
    ]);
    expect(req.code).toBe(0);
    const { readFileSync } = await import('node:fs');
    const csrPem = readFileSync(csrFile, 'utf8');
    const csr = parseCsr(csrPem);
    expect(csr.publicKey.keyType).toBe(keyType);
    const cert = await issueFromCsr(intermediate.issuer, csr, {
      profile: 'device',
      validity: { days: 10 },
      now: now(),
    });
    const certFile = files.write(`${keyType}-fromcsr.pem`, cert.pem);
    expect((await openssl(['verify', '-CAfile', rootFile, '-untrusted', intFile, certFile])).stdout.trim()).toBe(
      `${certFile}: OK`,
    );
    const certPub = (await openssl(['x509', '-in', certFile, '-noout', '-pubkey'])).stdout;
    const csrPub = (await openssl(['req', '-in', csrFile, '-noout', '-pubkey'])).stdout;
    expect(certPub).toBe(csrPub);
    const certSubject = (await openssl(['x509', '-in', certFile, '-noout', '-subject'])).stdout;
    const csrSubject = (await openssl(['req', '-in', csrFile, '-noout', '-subject'])).stdout;
    expect(certSubject).toBe(csrSubject);
    expect(certSubject.trim()).toBe('subject=C = US, O = Acme Devices, CN = thing-from-csr');

    // flip one byte of the subject after signing: openssl itself must reject it, and so must we
    const tampered = Buffer.from(csr.der);
    const at = tampered.indexOf(Buffer.from('thing-from-csr'));
    tampered[at] = 'T'.charCodeAt(0);
    const tamperedFile = files.write(`${keyType}-tampered.der`, tampered);
    const oracle = await openssl(['req', '-verify', '-noout', '-inform', 'DER', '-in', tamperedFile]);
    expect(`${oracle.stdout}${oracle.stderr}`).toMatch(
      /verify failure|Certificate request self-signature verify failure|bad signature/i,
    );
    expect(() => parseCsr(tampered)).toThrow(CsrRejectedError);
    const good = await openssl(['req', '-verify', '-noout', '-in', csrFile]);
    expect(`${good.stdout}${good.stderr}`).toMatch(/verify OK|Certificate request self-signature verify OK/);
    // and the key openssl made is the one in the certificate
    const keyPub = createPublicKey(readFileSync(keyFile)).export({ type: 'spki', format: 'der' });
    expect(keyPub.equals(cert.spki)).toBe(true);
  });

  it('openssl crl -verify accepts our CRL; verify -crl_check rejects the revoked leaf and accepts a healthy one', async () => {
    const revoked = await issueLeaf(intermediate.issuer, {
      profile: 'device',
      subject: { commonName: 'revoked-thing' },
      keyType: 'ec-p256',
      validity: { days: 30 },
      now: now(),
    });
    const healthy = await issueLeaf(intermediate.issuer, {
      profile: 'device',
      subject: { commonName: 'healthy-thing' },
      keyType: 'ec-p256',
      validity: { days: 30 },
      now: now(),
    });
    const t = now();
    const crl = await buildCrl(intermediate.issuer, {
      entries: [{ serialNumber: revoked.certificate.serialNumber, revokedAt: t, reason: 'keyCompromise' }],
      thisUpdate: new Date(t.getTime() - 60_000),
      nextUpdate: new Date(t.getTime() + 86_400_000),
      crlNumber: 2,
    });
    const crlFile = files.write(`${keyType}.crl.pem`, crl.pem);
    const check = await openssl(['crl', '-in', crlFile, '-CAfile', intFile, '-noout', '-verify', '-text']);
    expect(check.stderr).toMatch(/verify OK/);
    expect(check.stdout).toMatch(new RegExp(`Serial Number: ${revoked.certificate.serialNumber.toUpperCase()}`));
    expect(check.stdout).toMatch(/CRL Reason Code: \n\s+Key Compromise/);
    expect(check.stdout).toMatch(/X509v3 CRL Number: \n\s+2/);

    // a CRL for the root too, so -crl_check_all has one for every CA in the chain
    const rootCrl = await buildCrl(root.issuer, {
      entries: [],
      thisUpdate: new Date(t.getTime() - 60_000),
      nextUpdate: new Date(t.getTime() + 86_400_000),
      crlNumber: 1,
    });
    const bundle = files.write(
      `${keyType}-trust.pem`,
      root.certificate.pem + intermediate.certificate.pem + crl.pem + rootCrl.pem,
    );
    const revokedFile = files.write(`${keyType}-revoked.pem`, revoked.certificate.pem);
    const healthyFile = files.write(`${keyType}-healthy.pem`, healthy.certificate.pem);
    const bad = await openssl(['verify', '-crl_check_all', '-CAfile', bundle, revokedFile]);
    expect(bad.code).not.toBe(0);
    expect(`${bad.stdout}${bad.stderr}`).toMatch(/certificate revoked/);
    const ok = await openssl(['verify', '-crl_check_all', '-CAfile', bundle, healthyFile]);
    expect(ok.stdout.trim()).toBe(`${healthyFile}: OK`);
  });
});

describe('a certificate from another CA', () => {
  it('does not verify against our root', async () => {
    const ours = await createRootCa({ subject: { commonName: 'Ours' }, validity: { days: 10 }, now: now() });
    const theirs = await createRootCa({ subject: { commonName: 'Theirs' }, validity: { days: 10 }, now: now() });
    const leaf = await issueLeaf(theirs.issuer, {
      profile: 'device',
      subject: { commonName: 'x' },
      validity: { days: 1 },
      now: now(),
    });
    const leafFile = files.write('foreign.pem', leaf.certificate.pem);
    const oursFile = files.write('ours.pem', ours.certificate.pem);
    const res = await openssl(['verify', '-CAfile', oursFile, leafFile]);
    expect(res.code).not.toBe(0);
  });
});

describe('buildCsr', () => {
  it.each(['ec-p256', 'ec-p384', 'rsa-2048'] as const)(
    'makes a %s CSR that openssl req -verify accepts, with the subject asked for',
    async (keyType) => {
      const { buildCsr, encodeName, generateDeviceKey, toPem } = await import('../../lambdas/core/pki');
      const key = generateDeviceKey(keyType);
      const csr = toPem(
        'CERTIFICATE REQUEST',
        buildCsr(encodeName({ commonName: 'thing-9', organization: 'Acme' }), key),
      );
      const file = files.write(`built-${keyType}.csr`, csr);
      const res = await openssl(['req', '-verify', '-noout', '-subject', '-in', file]);
      expect(`${res.stdout}${res.stderr}`).toMatch(/verify OK/);
      expect(res.stdout).toMatch(/subject=O = Acme, CN = thing-9/);
      expect(parseCsr(csr).spki.equals(key.spki)).toBe(true);
    },
  );
});
