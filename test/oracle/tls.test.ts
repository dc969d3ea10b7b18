/**
 * A real mutual-TLS handshake with Node's tls module (OpenSSL underneath) on 127.0.0.1: certificates issued by
 * certflow must be accepted by a stock TLS stack, and one from another CA refused.
 */
import { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { createIntermediateCa, createRootCa, issueLeaf, pemBundle, privateKeyToPem } from '../../lambdas/core/pki';

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

interface Outcome {
  clientError?: string;
  serverSawPeer?: string;
  authorized?: boolean;
  serverError?: string;
  received?: string;
}

/** Starts a TLS server that requires client certificates, connects one client, and reports what happened. */
async function handshake(server: tls.SecureContextOptions, client: tls.ConnectionOptions): Promise<Outcome> {
  const outcome: Outcome = {};
  // The server asks for a client certificate and serves only authorized peers; it keeps the connection long
  // enough to report OpenSSL's verdict (with rejectUnauthorized the TLS 1.3 client only sees a reset).
  const srv = tls.createServer({ ...server, requestCert: true, rejectUnauthorized: false }, (socket) => {
    if (!socket.authorized) {
      outcome.serverError = String(socket.authorizationError);
      socket.destroy();
      return;
    }
    outcome.serverSawPeer = socket.getPeerCertificate().subject?.CN as string | undefined;
    socket.end('hello');
  });
  srv.on('tlsClientError', (e) => {
    outcome.serverError = (e as NodeJS.ErrnoException).code ?? e.message;
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  try {
    await new Promise<void>((resolve) => {
      const socket = tls.connect({ ...client, host: '127.0.0.1', port, servername: 'broker.certflow.test' }, () => {
        outcome.authorized = socket.authorized;
      });
      socket.on('data', (d) => {
        outcome.received = (outcome.received ?? '') + d.toString();
        socket.end();
      });
      socket.on('error', (e) => {
        outcome.clientError = (e as NodeJS.ErrnoException).code ?? e.message;
        resolve();
      });
      socket.on('close', () => resolve());
    });
  } finally {
    await new Promise((resolve) => srv.close(resolve));
  }
  return outcome;
}

describe('mutual TLS with certflow certificates', () => {
  let ours: Awaited<ReturnType<typeof pki>>;
  let serverOpts: tls.SecureContextOptions;

  beforeAll(async () => {
    ours = await pki('certflow');
    const server = await issueLeaf(ours.intermediate.issuer, {
      profile: 'server',
      subject: { commonName: 'broker.certflow.test' },
      sans: { ip: ['127.0.0.1'] },
      validity: { days: 5 },
      now: now(),
    });
    serverOpts = {
      key: privateKeyToPem(server.privateKey),
      cert: pemBundle([server.certificate, ours.intermediate.certificate]),
      ca: ours.root.certificate.pem,
    };
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
