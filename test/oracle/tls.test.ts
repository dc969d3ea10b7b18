/**
 * A real mutual-TLS handshake with Node's tls module (OpenSSL underneath) on 127.0.0.1: certificates issued by
 * certflow must be accepted by a stock TLS stack, and one from another CA refused.
 */
import type * as tls from 'node:tls';
import { createIntermediateCa, createRootCa, issueLeaf, pemBundle, privateKeyToPem } from '../../lambdas/core/pki';
import { brokerCredentials, handshake } from '../helpers/tls';

const now = () => new Date();

async function pki(name: string) {
  const root = await createRootCa({ subject: { commonName: `${name} Root` }, validity: { days: 30 }, now: now() });
  const intermediate = await createIntermediateCa(root.issuer, {
    subject: { commonName: `${name} Issuing CA` },
    validity: { days: 20 },
    now: now(),
  });
  return { root, intermediate };
}

describe('mutual TLS with certflow certificates', () => {
  let ours: Awaited<ReturnType<typeof pki>>;
  let serverOpts: tls.SecureContextOptions;

  beforeAll(async () => {
    ours = await pki('certflow');
    serverOpts = await brokerCredentials(
      ours.intermediate.issuer,
      ours.intermediate.certificate,
      ours.root.certificate.pem,
    );
  });

  it.each(['ec-p256', 'ec-p384', 'rsa-2048'] as const)(
    'completes the handshake with a %s device certificate',
    async (keyType) => {
      const device = await issueLeaf(ours.intermediate.issuer, {
        profile: 'device',
        subject: { commonName: `thing-${keyType}` },
        keyType,
        validity: { days: 5 },
        now: now(),
      });
      const outcome = await handshake(serverOpts, {
        key: privateKeyToPem(device.privateKey),
        cert: pemBundle([device.certificate, ours.intermediate.certificate]),
        ca: ours.root.certificate.pem,
      });
      expect(outcome.clientError).toBeUndefined();
      expect(outcome.authorized).toBe(true);
      expect(outcome.serverSawPeer).toBe(`thing-${keyType}`);
      expect(outcome.received).toBe('hello');
      expect(outcome.serverError).toBeUndefined();
    },
  );

  it('refuses a device certificate from another CA', async () => {
    const foreign = await pki('foreign');
    const device = await issueLeaf(foreign.intermediate.issuer, {
      profile: 'device',
      subject: { commonName: 'intruder' },
      validity: { days: 5 },
      now: now(),
    });
    const outcome = await handshake(serverOpts, {
      key: privateKeyToPem(device.privateKey),
      cert: pemBundle([device.certificate, foreign.intermediate.certificate]),
      ca: ours.root.certificate.pem,
    });
    // TLS 1.3: the client finishes first; the server refuses the certificate and never serves the connection
    expect(outcome.serverSawPeer).toBeUndefined();
    expect(outcome.received).toBeUndefined();
    expect(outcome.serverError).toMatch(/UNABLE_TO_GET_ISSUER_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
  });

  it('refuses a server certificate from another CA (client side check)', async () => {
    const foreign = await pki('foreign');
    const server = await issueLeaf(foreign.intermediate.issuer, {
      profile: 'server',
      subject: { commonName: 'broker.certflow.test' },
      validity: { days: 5 },
      now: now(),
    });
    const device = await issueLeaf(ours.intermediate.issuer, {
      profile: 'device',
      subject: { commonName: 'thing' },
      validity: { days: 5 },
      now: now(),
    });
    const outcome = await handshake(
      {
        key: privateKeyToPem(server.privateKey),
        cert: pemBundle([server.certificate, foreign.intermediate.certificate]),
        ca: ours.root.certificate.pem,
      },
      {
        key: privateKeyToPem(device.privateKey),
        cert: pemBundle([device.certificate, ours.intermediate.certificate]),
        ca: ours.root.certificate.pem,
      },
    );
    expect(outcome.clientError).toMatch(/UNABLE_TO_GET_ISSUER_CERT|SELF_SIGNED|UNABLE_TO_VERIFY/);
    expect(outcome.serverSawPeer).toBeUndefined();
  });
});
