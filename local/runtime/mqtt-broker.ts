/**
 * The local MQTT broker: aedes on Node `tls`, 127.0.0.1, with mutual TLS, standing in for AWS IoT Core.
 *
 * - TLS: the broker presents a server certificate issued by certflow (SAN 127.0.0.1 and localhost) and requires a
 *   client certificate that chains to a certflow CA (`requestCert`, `rejectUnauthorized`); the trust store can be
 *   replaced while running (`setTrustedCas`, e.g. after a CA is created or revoked). Every CA of the verified chain
 *   must be in the current trust store: a client that sends a revoked intermediate itself is refused (CONNACK 5).
 * - Admission, as AWS IoT with CDF's policy: the client's certificate (SHA-256 of its DER, the AWS IoT certificate
 *   id) must be registered ACTIVE in the device registry and attached to the thing named by the MQTT client id, seen
 *   from both sides (the certificate lists the thing and the thing lists the certificate), else CONNACK 5 (not
 *   authorized). A deleted, inactive, revoked or detached certificate is refused at its next connect, and a client
 *   already connected with it is disconnected when the registry reports the change (`recheckCertificate`).
 * - Topics: a client publishes and subscribes only under `{prefix}/{clientId}/…` (CDF's `${iot:ClientId}` policy). A
 *   publish elsewhere closes the connection (as AWS IoT does); a subscription elsewhere is refused in the SUBACK
 *   (0x80).
 * - Messages devices publish are handed to `onMessage` (the local topic rules) with the client id and principal.
 */
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { createHash } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { createServer, type DetailedPeerCertificate, type Server, type TLSSocket } from 'node:tls';
import { toDer } from '../../lambdas/core/pki/pem';
import type { DeviceMessaging, DeviceRegistry } from '../../lambdas/core/ports';
import { DEFAULT_ROTATION_TOPIC_PREFIX } from '../../lambdas/core/rotation/topics';

/** AWS IoT thing names; an MQTT client id is a thing name here */
const THING_NAME = /^[a-zA-Z0-9:_-]{1,128}$/;

/** A message a device published, as the topic rules see it. */
export interface DeviceMessage {
  topic: string;
  payload: Buffer;
  clientId: string;
  /** the AWS IoT certificate id of the client's certificate (`principal()` in IoT SQL) */
  principal: string;
}

export interface MqttBrokerOptions {
  /** port on 127.0.0.1; 0 picks a free one (default 8883) */
  port?: number;
  /** the broker's certificate and key (PEM); `certificatePem` may carry the chain after the leaf */
  serverCertificatePem: string;
  serverKeyPem: string;
  /** CA certificates (PEM) a client certificate must chain to */
  trustedCas: string[];
  registry: DeviceRegistry;
  /** default `cdf/certificates` */
  topicPrefix?: string;
  onMessage?: (message: DeviceMessage) => unknown;
  log?: (message: string, extra?: Record<string, unknown>) => void;
}

export interface MqttBroker {
  /** `mqtts://127.0.0.1:<port>` */
  url: string;
  port: number;
  messaging: DeviceMessaging;
  /** replaces the trust store for new connections */
  setTrustedCas(pems: string[]): void;
  /**
   * Checks the clients connected with this certificate against the registry again and disconnects those that would
   * be refused now (certificate REVOKED, INACTIVE, deleted or detached), as AWS IoT does when a certificate leaves
   * ACTIVE. Answers the client ids it disconnected.
   */
  recheckCertificate(certificateId: string): Promise<string[]>;
  close(): Promise<void>;
}

/** DeviceMessaging on the local aedes broker: QoS 1, JSON, published by the broker itself. */
export class AedesDeviceMessaging implements DeviceMessaging {
  constructor(private readonly broker: Aedes) {}

  publish(topic: string, payload: Record<string, unknown>): Promise<void> {
    return new Promise((resolve, reject) =>
      this.broker.publish(
        { cmd: 'publish', topic, payload: Buffer.from(JSON.stringify(payload)), qos: 1, retain: false, dup: false },
        (error) => (error ? reject(error) : resolve()),
      ),
    );
  }
}

const notAuthorized = (message: string, returnCode: 2 | 5 = 5): AuthenticateError =>
  Object.assign(new Error(message), { returnCode }) as AuthenticateError;

const fingerprint = (der: Buffer): string => createHash('sha256').update(der).digest('hex');

/**
 * The certificate ids of the TLS peer's verified chain, leaf first (empty when there is no client certificate).
 * OpenSSL clients send the intermediates they hold, so the chain can carry a CA that is no longer in the trust store.
 */
function peerChain(client: Client): string[] {
  const socket = client.conn as TLSSocket;
  if (typeof socket.getPeerCertificate !== 'function') return [];
  const ids: string[] = [];
  let cert: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  while (cert?.raw && cert.raw.length > 0) {
    const id = fingerprint(cert.raw);
    if (ids.includes(id)) break; // a self-signed root is its own issuer
    ids.push(id);
    cert = cert.issuerCertificate;
  }
  return ids;
}

/**
 * Is `filter` (a topic or a subscription filter) inside `{prefix}/{clientId}/`? The prefix and the client id must be
 * literal levels; wildcards are allowed only below them.
 */
export function isOwnTopic(prefix: string, clientId: string, filter: string): boolean {
  const own = [...prefix.split('/'), clientId];
  const levels = filter.split('/');
  if (levels.length <= own.length) return false;
  return own.every((level, i) => levels[i] === level);
}

/** Why a client may not connect with this certificate as this thing; undefined when it may. */
export async function admissionRefusal(
  registry: DeviceRegistry,
  clientId: string,
  certificateId: string,
): Promise<string | undefined> {
  const certificate = await registry.describeCertificate(certificateId);
  if (!certificate) return 'certificate not registered';
  if (certificate.status !== 'ACTIVE') return `certificate ${certificate.status}`;
  const arn = certificate.certificateArn;
  const [things, principals] = await Promise.all([
    registry.listPrincipalThings(arn).catch(() => [] as string[]),
    registry.listThingPrincipals(clientId).catch(() => [] as string[]),
  ]);
  if (!things.includes(clientId) || !principals.includes(arn)) return `certificate not attached to thing ${clientId}`;
  return undefined;
}

export async function startMqttBroker(options: MqttBrokerOptions): Promise<MqttBroker> {
  const prefix = options.topicPrefix ?? DEFAULT_ROTATION_TOPIC_PREFIX;
  const log = options.log ?? (() => undefined);
  const principals = new WeakMap<Client, string>();
  let trusted = new Set<string>();
  const trust = (pems: string[]) => {
    trusted = new Set(pems.map((pem) => fingerprint(toDer(pem, 'CERTIFICATE'))));
  };
  trust(options.trustedCas);

  const aedes = new Aedes({
    authenticate: (client, _username, _password, done) => {
      const [certificateId, ...issuers] = peerChain(client);
      const clientId = client.id;
      if (!certificateId) return done(notAuthorized('no client certificate'), false);
      // every CA of the chain must be trusted now (the client may have sent an intermediate that was revoked)
      if (issuers.length === 0 || issuers.some((id) => !trusted.has(id))) {
        log('mqtt connect refused', { clientId, certificateId, reason: 'a CA of the chain is not trusted' });
        return done(notAuthorized('a CA of the certificate chain is not trusted'), false);
      }
      if (!THING_NAME.test(clientId)) {
        return done(notAuthorized(`client id ${clientId} is not a thing name`, 2), false);
      }
      admissionRefusal(options.registry, clientId, certificateId).then(
        (refusal) => {
          if (refusal) {
            log('mqtt connect refused', { clientId, certificateId, reason: refusal });
            return done(notAuthorized(refusal), false);
          }
          principals.set(client, certificateId);
          done(null, true);
        },
        (error: unknown) => {
          log('mqtt connect failed', { clientId, certificateId, error: String(error) });
          done(Object.assign(notAuthorized('registry unavailable'), { returnCode: 3 }) as AuthenticateError, false);
        },
      );
    },
    authorizePublish: (client, packet, done) => {
      // client null: the broker's own publish (AedesDeviceMessaging)
      if (client === null) return done(null);
      if (isOwnTopic(prefix, client.id, packet.topic) && !/[+#]/.test(packet.topic)) return done(null);
      log('mqtt publish refused', { clientId: client.id, topic: packet.topic });
      done(new Error(`${client.id} may not publish to ${packet.topic}`));
    },
    authorizeSubscribe: (client, subscription, done) => {
      if (isOwnTopic(prefix, client.id, subscription.topic)) return done(null, subscription);
      log('mqtt subscribe refused', { clientId: client.id, topic: subscription.topic });
      done(null, null);
    },
  });
  await aedes.listen();

  // the clients connected now (admitted and not yet gone), for recheckCertificate
  const clients = new Set<Client>();
  aedes.on('clientReady', (client) => clients.add(client));
  aedes.on('clientDisconnect', (client) => clients.delete(client));
  aedes.on('clientError', (client) => clients.delete(client));

  aedes.on('publish', (packet, client) => {
    if (!client || !options.onMessage) return;
    const principal = principals.get(client);
    if (!principal) return;
    const message = { topic: packet.topic, payload: Buffer.from(packet.payload), clientId: client.id, principal };
    Promise.resolve(options.onMessage(message)).catch((error: unknown) =>
      log('mqtt rule failed', { clientId: client.id, topic: packet.topic, error: String(error) }),
    );
  });

  const context = (cas: string[]) => ({
    key: options.serverKeyPem,
    cert: options.serverCertificatePem,
    ca: cas,
    minVersion: 'TLSv1.2' as const,
  });
  const sockets = new Set<Socket>();
  const server: Server = createServer(
    { ...context(options.trustedCas), requestCert: true, rejectUnauthorized: true },
    (socket) => {
      aedes.handle(socket);
    },
  );
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('tlsClientError', (error) => log('mqtt tls handshake failed', { error: error.message }));

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8883, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    url: `mqtts://127.0.0.1:${port}`,
    port,
    messaging: new AedesDeviceMessaging(aedes),
    setTrustedCas: (pems) => {
      trust(pems);
      server.setSecureContext(context(pems));
    },
    recheckCertificate: async (certificateId) => {
      const connected = [...clients].filter((client) => principals.get(client) === certificateId);
      const dropped: string[] = [];
      for (const client of connected) {
        const refusal = await admissionRefusal(options.registry, client.id, certificateId).catch(
          (error: unknown) => `registry unavailable: ${String(error)}`,
        );
        if (!refusal) continue;
        log('mqtt client disconnected', { clientId: client.id, certificateId, reason: refusal });
        principals.delete(client);
        client.close();
        dropped.push(client.id);
      }
      return dropped;
    },
    close: () =>
      (closing ??= (async () => {
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      })()),
  };
}
