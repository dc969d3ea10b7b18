/** A real mutual-TLS handshake on 127.0.0.1 with Node's tls module (OpenSSL underneath), for the oracle tests. */
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { issueLeaf, pemBundle, privateKeyToPem, type Issuer, type ParsedCertificate } from '../../lambdas/core/pki';

export interface Outcome {
  clientError?: string;
  serverSawPeer?: string;
  authorized?: boolean;
  serverError?: string;
  received?: string;
}

/**
 * A broker's credentials for `handshake`: a server certificate for broker.certflow.test / 127.0.0.1 issued by
 * `issuer` (served with `issuerCertificate`), trusting client certificates that chain to `trustedPem`.
 */
export async function brokerCredentials(
  issuer: Issuer,
  issuerCertificate: ParsedCertificate,
  trustedPem: string,
): Promise<tls.SecureContextOptions> {
  const server = await issueLeaf(issuer, {
    profile: 'server',
    subject: { commonName: 'broker.certflow.test' },
    sans: { ip: ['127.0.0.1'] },
    validity: { days: 5 },
    now: new Date(),
  });
  return {
    key: privateKeyToPem(server.privateKey),
    cert: pemBundle([server.certificate, issuerCertificate]),
    ca: trustedPem,
  };
}

/** Starts a TLS server that requires client certificates, connects one client, and reports what happened. */
export async function handshake(server: tls.SecureContextOptions, client: tls.ConnectionOptions): Promise<Outcome> {
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
