import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import {
  createIntermediateCa,
  createRootCa,
  DeviceCertificateTemplate,
  generateDeviceKey,
  issueCertificate,
  KEY_TYPES,
  parseCertificate,
  privateKeyPem,
  randomSerial,
  randomSerials,
} from '../../lambdas/core/pki';

const NOW = new Date('2026-03-01T12:00:00Z');
const notBefore = new Date('2026-03-01T00:00:00Z');
const notAfter = new Date('2027-03-01T00:00:00Z');
const subject = { organization: 'Acme', country: 'DE', organizationalUnit: 'Line 3', emailAddress: 'x@example.com' };

describe('generateDeviceKey', () => {
  it.each(KEY_TYPES.filter((t) => !t.startsWith('rsa-3') && !t.startsWith('rsa-4')))(
    '%s: PKCS#8 and SPKI that OpenSSL reads and that belong together',
    (type) => {
      const seen = new Set<string>();
      const n = type.startsWith('ec') ? 200 : 1;
      for (let i = 0; i < n; i++) {
        const key = generateDeviceKey(type);
        seen.add(key.pkcs8.toString('hex'));
        const priv = createPrivateKey({ key: key.pkcs8, format: 'der', type: 'pkcs8' });
        const pubFromPriv = createPublicKey(priv).export({ type: 'spki', format: 'der' });
        expect(pubFromPriv.equals(key.spki)).toBe(true);
        // the PEM re-exported by OpenSSL is the same bytes we wrote
        expect(priv.export({ type: 'pkcs8', format: 'der' }).equals(key.pkcs8)).toBe(true);
        expect(privateKeyPem(key)).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
      }
      expect(seen.size).toBe(n); // every call makes a new key, even with the ECDH object reused
    },
  );
});

describe('DeviceCertificateTemplate', () => {
  it.each(['ec-p256', 'ec-p384', 'rsa-2048'] as const)(
    'builds exactly the TBS the generic path builds (%s CA)',
    async (caType) => {
      const root = await createRootCa({
        subject: { commonName: 'R' },
        keyType: caType,
        validity: { days: 800 },
        now: NOW,
      });
      const int = await createIntermediateCa(root.issuer, {
        subject: { commonName: 'I' },
        keyType: caType,
        validity: { days: 700 },
        now: NOW,
      });
      const template = new DeviceCertificateTemplate(int.issuer, {
        subject,
        keyType: 'ec-p256',
        notBefore,
        notAfter,
        now: NOW,
      });
      const key = generateDeviceKey('ec-p256');
      const serial = randomSerial();
      const generic = await issueCertificate(
        {
          profile: 'device',
          subject: { ...subject, commonName: 'thing-1' },
          publicKey: key.spki,
          validity: { notBefore, notAfter },
          now: NOW,
          serial,
        },
        int.issuer,
      );
      expect(template.tbs('thing-1', key.spki, serial).equals(generic.tbs)).toBe(true);
      const fast = await template.issue('thing-1', key.spki, serial);
      const parsed = parseCertificate(fast.der);
      expect(parsed.id).toBe(fast.id);
      expect(parsed.serialNumber).toBe(fast.serialNumber);
      expect(
        new X509Certificate(fast.der).verify(
          createPublicKey({ key: int.certificate.spki, format: 'der', type: 'spki' }),
        ),
      ).toBe(true);
    },
  );

  it('refuses a validity that outlives the CA', async () => {
    const root = await createRootCa({ subject: { commonName: 'R' }, validity: { days: 10 }, now: NOW });
    expect(
      () => new DeviceCertificateTemplate(root.issuer, { subject, keyType: 'ec-p256', notBefore, notAfter, now: NOW }),
    ).toThrow(/outlive/);
  });
});

describe('randomSerials', () => {
  it('makes distinct positive 16-byte serials, as randomSerial does, from one draw', () => {
    const serials = randomSerials(500);
    expect(serials).toHaveLength(500);
    expect(new Set(serials.map((s) => s.toString('hex'))).size).toBe(500);
    for (const serial of serials) {
      expect(serial).toHaveLength(16);
      expect(serial[0]! & 0xc0).toBe(0x40); // positive, and the top byte never zero: always 16 bytes in DER
    }
    expect(randomSerial()[0]! & 0xc0).toBe(0x40);
  });
});
