/**
 * A device that rotates its certificate over MQTT the CDF way (`certflow device rotate`): a new EC key and CSR →
 * publish `{prefix}/{thing}/get` → the new certificate on `…/get/accepted` → reconnect with it over mutual TLS →
 * publish `…/ack` → `…/ack/accepted` → write the new key and certificate. Rejections (`{ message: REASON }` on
 * `…/rejected`), refused connections and timeouts end it with a RotationFailedError that says which.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, type MqttClient } from 'mqtt';
import { parseCertificate, type ParsedCertificate } from '../lambdas/core/pki/certificate';
import { buildCsr } from '../lambdas/core/pki/csr';
import { generateKeyPairAsync, privateKeyToPem, spkiDer, type KeyType } from '../lambdas/core/pki/keys';
import { encodeName } from '../lambdas/core/pki/name';
import { decodePemBlocks, toPem } from '../lambdas/core/pki/pem';
import {
  DEFAULT_ROTATION_TOPIC_PREFIX,
  replyTopic,
  requestTopic,
  type RotationAction,
} from '../lambdas/core/rotation/topics';

export interface RotateDeviceOptions {
  thingName: string;
  /** the device's current key and certificate (PEM; the certificate may be followed by its chain) */
  keyPem: string;
  certificatePem: string;
  /** the CA certificates that verify the broker (PEM) */
  caPem: string;
  /** `mqtts://127.0.0.1:8883` */
  mqttUrl: string;
  topicPrefix?: string;
  /** where to write `private.key` and `certificate.pem` (nothing written when absent) */
  outDir?: string;
  /** how long to wait for each answer (default 30 s) */
  timeoutMs?: number;
  keyType?: Extract<KeyType, 'ec-p256' | 'ec-p384'>;
  log?: (line: string) => void;
}

export interface RotationOutcome {
  thingName: string;
  previousCertificateId: string;
  certificateId: string;
  certificatePem: string;
  privateKeyPem: string;
  /** the files written, when outDir was given */
  files?: { privateKey: string; certificate: string };
}

/** The rotation did not complete: `stage` says where, `reason` is the rejection reason when certflow refused. */
export class RotationFailedError extends Error {
  override readonly name = 'RotationFailedError';
  constructor(
    readonly stage: 'connect' | 'get' | 'reconnect' | 'ack',
    message: string,
    readonly reason?: string,
  ) {
    super(message);
  }
}

function connectDevice(
  url: string,
  clientId: string,
  credentials: { key: string; cert: string; ca: string },
  stage: 'connect' | 'reconnect',
  timeoutMs: number,
): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = connect(url, {
      clientId,
      ...credentials,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: timeoutMs,
      clean: true,
    });
    const fail = (message: string) => {
      client.off('error', onError);
      client.off('close', onClose);
      client.end(true);
      reject(new RotationFailedError(stage, message));
    };
    const onError = (error: Error) =>
      fail(
        /Not authorized/i.test(error.message)
          ? `the broker refused ${clientId} (not authorized: the certificate is not registered ACTIVE and attached to the thing)`
          : `could not connect to ${url}: ${error.message}`,
      );
    const onClose = () =>
      fail(`the broker at ${url} closed the connection during the TLS handshake (certificate not trusted?)`);
    client.once('error', onError);
    client.once('close', onClose);
    client.once('connect', () => {
      client.off('error', onError);
      client.off('close', onClose);
      resolve(client);
    });
  });
}

/** publishes a request and waits for its `accepted` or `rejected` reply */
async function request(
  client: MqttClient,
  prefix: string,
  thingName: string,
  action: RotationAction,
  payload: Record<string, unknown>,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  const accepted = replyTopic(prefix, thingName, action, 'accepted');
  const rejected = replyTopic(prefix, thingName, action, 'rejected');
  const granted = await client.subscribeAsync(`${prefix}/${thingName}/${action}/+`, { qos: 1 }).catch((e: Error) => {
    throw new RotationFailedError(action, `the broker refused the subscription to ${accepted}: ${e.message}`);
  });
  if (granted[0]?.qos === 128)
    throw new RotationFailedError(action, `the broker refused the subscription to ${accepted}`);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(new RotationFailedError(action, `no answer on ${accepted} or ${rejected} within ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
    client.on('message', (topic, body) => {
      if (topic !== accepted && topic !== rejected) return;
      clearTimeout(timer);
      let reply: Record<string, unknown>;
      try {
        reply = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
      } catch {
        return reject(new RotationFailedError(action, `the answer on ${topic} is not JSON`));
      }
      if (topic === rejected) {
        const reason = typeof reply.message === 'string' ? reply.message : 'UNKNOWN';
        return reject(new RotationFailedError(action, `certflow rejected the ${action}: ${reason}`, reason));
      }
      resolve(reply);
    });
    client.once('close', () => {
      clearTimeout(timer);
      reject(new RotationFailedError(action, `the broker closed the connection before answering the ${action}`));
    });
    client.publish(requestTopic(prefix, thingName, action), JSON.stringify(payload), { qos: 1 }, (error) => {
      if (error) {
        clearTimeout(timer);
        reject(new RotationFailedError(action, `could not publish the ${action}: ${error.message}`));
      }
    });
  });
}

const leafOf = (pem: string): ParsedCertificate => {
  const first = decodePemBlocks(pem).find((b) => b.label === 'CERTIFICATE');
  if (!first) throw new RotationFailedError('connect', 'the certificate file holds no CERTIFICATE');
  return parseCertificate(toPem('CERTIFICATE', first.der));
};

export async function rotateDevice(options: RotateDeviceOptions): Promise<RotationOutcome> {
  const prefix = options.topicPrefix ?? DEFAULT_ROTATION_TOPIC_PREFIX;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const log = options.log ?? (() => undefined);
  const { thingName } = options;
  const current = leafOf(options.certificatePem);

  const keys = await generateKeyPairAsync(options.keyType ?? 'ec-p256');
  const privateKeyPem = privateKeyToPem(keys.privateKey);
  const csrPem = toPem(
    'CERTIFICATE REQUEST',
    buildCsr(encodeName({ commonName: thingName }), {
      spki: spkiDer(keys.publicKey),
      pkcs8: keys.privateKey.export({ type: 'pkcs8', format: 'der' }),
    }),
  );

  log(`connecting to ${options.mqttUrl} as ${thingName} with certificate ${current.id.slice(0, 16)}…`);
  const first = await connectDevice(
    options.mqttUrl,
    thingName,
    { key: options.keyPem, cert: options.certificatePem, ca: options.caPem },
    'connect',
    timeoutMs,
  );
  let vended: Record<string, unknown>;
  try {
    log(`publishing ${requestTopic(prefix, thingName, 'get')} with a new CSR`);
    vended = await request(
      first,
      prefix,
      thingName,
      'get',
      { csr: csrPem, previousCertificateId: current.id },
      timeoutMs,
    );
  } finally {
    await first.endAsync().catch(() => undefined);
  }
  if (typeof vended.certificate !== 'string') {
    throw new RotationFailedError('get', 'the accepted get carries no certificate (a pre-created package answer?)');
  }
  const certificatePem = vended.certificate;
  const issued = leafOf(certificatePem);
  if (!issued.spki.equals(spkiDer(keys.publicKey))) {
    throw new RotationFailedError('get', 'the new certificate is not for the key this device made');
  }
  log(`received certificate ${issued.id.slice(0, 16)}…; reconnecting with it`);

  const second = await connectDevice(
    options.mqttUrl,
    thingName,
    { key: privateKeyPem, cert: certificatePem, ca: options.caPem },
    'reconnect',
    timeoutMs,
  );
  try {
    log(`publishing ${requestTopic(prefix, thingName, 'ack')}`);
    await request(second, prefix, thingName, 'ack', { previousCertificateId: current.id }, timeoutMs);
  } finally {
    await second.endAsync().catch(() => undefined);
  }
  const outcome: RotationOutcome = {
    thingName,
    previousCertificateId: current.id,
    certificateId: issued.id,
    certificatePem,
    privateKeyPem,
  };
  if (options.outDir) {
    await mkdir(options.outDir, { recursive: true });
    const files = {
      privateKey: join(options.outDir, 'private.key'),
      certificate: join(options.outDir, 'certificate.pem'),
    };
    await writeFile(files.privateKey, privateKeyPem, { mode: 0o600 });
    await writeFile(files.certificate, certificatePem);
    outcome.files = files;
  }
  log(`rotation complete: ${thingName} now uses certificate ${issued.id.slice(0, 16)}…`);
  return outcome;
}
