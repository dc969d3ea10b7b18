/**
 * openssl judges the certificate provider: CSRs made by `openssl req` go through the Lambda handler; what it answers
 * must verify against the CA chain with `openssl verify`, carry exactly the CSR's subject and public key as openssl
 * prints them, and be a client-auth device certificate. A CSR tampered after signing is refused by openssl and by us.
 */
import { readFileSync } from 'node:fs';
import { CsrRejectedError } from '../../lambdas/core/errors';
import { createIntermediateCa, createRootCa, type CreatedCa, type KeyType, toDer, toPem } from '../../lambdas/core/pki';
import type { DomainEvent, LoadedCa } from '../../lambdas/core/ports';
import { CaKeyStoreCsrSigner } from '../../lambdas/core/signing/csr-signer';
import { createHandler } from '../../lambdas/handlers/iot-certificate-provider';
import { logger } from '../../lambdas/handlers/bundle';
import { openssl, scratch } from '../helpers/openssl';
import { brokerCredentials, handshake } from '../helpers/tls';

const files = scratch();
afterAll(() => files.cleanup());
beforeAll(() => {
  jest.spyOn(logger, 'info').mockImplementation(() => undefined);
  jest.spyOn(logger, 'warn').mockImplementation(() => undefined);
});

const CSR_KEYS: Record<string, string[]> = {
  'ec-p256': ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  'ec-p384': ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'],
  'rsa-2048': ['-newkey', 'rsa:2048'],
};

/** `openssl req -new` with a fresh key; answers the CSR's path and PEM. */
async function opensslCsr(name: string, keyArgs: string[], subject: string): Promise<{ file: string; pem: string }> {
  const file = `${files.dir}/${name}.csr`;
  const req = await openssl([
    'req',
    '-new',
    ...keyArgs,
    '-nodes',
    '-keyout',
    `${files.dir}/${name}.key`,
    '-out',
    file,
    '-subj',
    subject,
    '-utf8',
  ]);
  expect(req.stderr).not.toMatch(/error/i);
  expect(req.code).toBe(0);
  return { file, pem: readFileSync(file, 'utf8') };
}

describe.each<[string, KeyType]>([
  ['EC P-256 CA', 'ec-p256'],
  ['RSA-2048 CA', 'rsa-2048'],
])('certificate provider with a certflow %s, checked by openssl', (_, caKeyType) => {
  let root: CreatedCa;
  let issuing: CreatedCa;
  let chainFile: string;
  let rootFile: string;
  const events: DomainEvent[] = [];
  let handle: ReturnType<typeof createHandler>;

  beforeAll(async () => {
    const now = new Date();
    root = await createRootCa({
      subject: { commonName: `Oracle Root ${caKeyType}` },
      keyType: caKeyType,
      validity: { days: 3650 },
      now,
    });
    issuing = await createIntermediateCa(root.issuer, {
      subject: { commonName: `Fleet Provisioning ${caKeyType}`, organization: 'certflow tests' },
      keyType: caKeyType,
      validity: { days: 1825 },
      now,
    });
    rootFile = files.write(`${caKeyType}-root.pem`, root.certificate.pem);
    chainFile = files.write(`${caKeyType}-issuing.pem`, issuing.certificate.pem);
    const loaded: LoadedCa = {
      caId: issuing.certificate.id,
      issuer: issuing.issuer,
      chain: [issuing.certificate, root.certificate],
    };
    handle = createHandler({
      signer: new CaKeyStoreCsrSigner({ load: async () => loaded }, issuing.certificate.id),
      events: { publish: async (e) => void events.push(...e) },
      clock: { now: () => new Date() },
      validityDays: 397,
    });
  });

  it.each(Object.keys(CSR_KEYS))(
    'signs an openssl %s CSR: openssl verify OK, subject and public key as the CSR\u2019s, client auth, 397 days',
    async (csrKey) => {
      const name = `${caKeyType}-${csrKey}`;
      const csr = await opensslCsr(
        name,
        CSR_KEYS[csrKey]!,
        `/C=DE/ST=Berlin/O=Acme Devices/OU=Line 3/CN=${name}-0001/serialNumber=SN-0001`,
      );

      const { certificatePem } = await handle({
        certificateSigningRequest: csr.pem,
        principalId: 'p-1',
        clientId: `${name}-0001`,
      });

      const certFile = files.write(`${name}.pem`, certificatePem);
      const verified = await openssl([
        'verify',
        '-CAfile',
        rootFile,
        '-untrusted',
        chainFile,
        '-purpose',
        'sslclient',
        certFile,
      ]);
      expect(verified.stdout.trim()).toBe(`${certFile}: OK`);
      const x509 = (flag: string) => openssl(['x509', '-in', certFile, '-noout', flag]).then((r) => r.stdout);
      const req = (flag: string) => openssl(['req', '-in', csr.file, '-noout', flag]).then((r) => r.stdout);
      expect(await x509('-subject')).toBe(await req('-subject'));
      expect(await x509('-pubkey')).toBe(await req('-pubkey'));
      expect((await x509('-subject')).trim()).toBe(
        `subject=C = DE, ST = Berlin, O = Acme Devices, OU = Line 3, CN = ${name}-0001, serialNumber = SN-0001`,
      );
      const text = await x509('-text');
      expect(text).toMatch(/CA:FALSE/);
      expect(text).toMatch(/X509v3 Extended Key Usage:\s*\n\s*TLS Web Client Authentication\s*\n/);
      expect(text).toMatch(/X509v3 Key Usage: critical\s*\n\s*Digital Signature/);
      expect(text).toContain(`Issuer: O = certflow tests, CN = Fleet Provisioning ${caKeyType}`);
      const dates = await x509('-dates');
      const [notBefore, notAfter] = [...dates.matchAll(/=(.+)/g)].map((m) => Date.parse(m[1]!));
      expect(Math.round((notAfter! - notBefore!) / 86_400_000)).toBe(397);
      expect(events.at(-1)!.detail).toMatchObject({ origin: 'certificate-provider', issuerId: issuing.certificate.id });
    },
  );

  it.each(Object.keys(CSR_KEYS))(
    'the answer for an openssl %s CSR is a client credential a stock TLS server accepts (mutual TLS)',
    async (csrKey) => {
      const name = `${caKeyType}-${csrKey}-tls`;
      const csr = await opensslCsr(name, CSR_KEYS[csrKey]!, `/O=Acme Devices/CN=${name}`);
      const { certificatePem } = await handle({
        certificateSigningRequest: csr.pem,
        principalId: 'p-1',
        clientId: name,
      });
      const outcome = await handshake(
        await brokerCredentials(issuing.issuer, issuing.certificate, root.certificate.pem),
        {
          key: readFileSync(`${files.dir}/${name}.key`, 'utf8'),
          cert: `${certificatePem}${issuing.certificate.pem}`,
          ca: root.certificate.pem,
        },
      );
      expect(outcome).toEqual({ authorized: true, serverSawPeer: name, received: 'hello' });
    },
  );

  it('refuses a CSR that openssl itself refuses (subject changed after signing)', async () => {
    const name = `${caKeyType}-tampered`;
    const csr = await opensslCsr(name, CSR_KEYS['ec-p256']!, `/O=Acme/CN=${name}`);
    const der = toDer(csr.pem, 'CERTIFICATE REQUEST');
    der[der.indexOf(Buffer.from(name))] = 'X'.charCodeAt(0);
    const tamperedPem = toPem('CERTIFICATE REQUEST', der);
    const tamperedFile = files.write(`${name}-bad.csr`, tamperedPem);
    const oracle = await openssl(['req', '-verify', '-noout', '-in', tamperedFile]);
    expect(`${oracle.stdout}${oracle.stderr}`).toMatch(/verify failure/i);
    const before = events.length;

    await expect(
      handle({ certificateSigningRequest: tamperedPem, principalId: 'p-1', clientId: name }),
    ).rejects.toMatchObject({
      constructor: CsrRejectedError,
      code: 'CSR_SIGNATURE_INVALID',
    });
    expect(events.length).toBe(before);
  });
});
