/**
 * The local MQTT broker over real TLS on 127.0.0.1: mutual TLS against certflow CAs, admission from the local device
 * registry (dynalite), the `{prefix}/{clientId}/…` topic ACL, QoS 1 messages from the broker, and an mTLS
 * connect by the Debian mosquitto clients.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as mqttConnect, type MqttClient } from 'mqtt';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { LocalDeviceRegistry, REGISTRY_TABLE } from '../../../lambdas/adapters/local/local-device-registry';
import {
  createIntermediateCa,
  createRootCa,
  issueLeaf,
  privateKeyToPem,
  type Issuer,
  type ParsedCertificate,
} from '../../../lambdas/core/pki';
import { createLocalDynamoDbClient, ensureTable, startDynamoDb } from '../../../local/runtime/dynamodb-server';
import { isOwnTopic, startMqttBroker, type DeviceMessage, type MqttBroker } from '../../../local/runtime/mqtt-broker';
import type { LocalServer } from '../../../local/runtime/types';
import { rotateDevice } from '../../../local/device-simulator';

interface Credential {
  certificate: ParsedCertificate;
  certificatePem: string;
  keyPem: string;
}

const now = new Date();
const dir = mkdtempSync(join(tmpdir(), 'certflow-mqtt-'));
let dynamo: LocalServer;
let client: DynamoDBClient;
let registry: LocalDeviceRegistry;
let broker: MqttBroker;
let trust: string[];
let rootPem: string;
let issuing: Issuer;
const messages: DeviceMessage[] = [];
let credA: Credential;
const logs: [string, Record<string, unknown> | undefined][] = [];
const clients: MqttClient[] = [];

async function leaf(issuer: Issuer, commonName: string, profile: 'device' | 'server' = 'device'): Promise<Credential> {
  const { certificate, privateKey } = await issueLeaf(issuer, {
    profile,
    subject: { commonName },
    validity: { days: 30 },
    now,
    ...(profile === 'server' ? { sans: { dns: ['localhost'], ip: ['127.0.0.1'] } } : {}),
  });
  return { certificate, certificatePem: certificate.pem + issuer.certificate.pem, keyPem: privateKeyToPem(privateKey) };
}

/** a device registered ACTIVE and attached to its thing, as a factory would */
async function device(thingName: string, status: 'ACTIVE' | 'INACTIVE' = 'ACTIVE'): Promise<Credential> {
  const cred = await leaf(issuing, thingName);
  await registry.createThing({ thingName });
  const { certificateArn } = await registry.register({ certificatePem: cred.certificate.pem, status });
  await registry.attachThingPrincipal(thingName, certificateArn);
  return cred;
}

/** connects, or rejects with the CONNACK refusal, the TLS error, or `closed` when the broker hangs up */
function connect(clientId: string, cred?: Credential): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqttConnect(broker.url, {
      clientId,
      ...(cred ? { key: cred.keyPem, cert: cred.certificatePem } : {}),
      ca: rootPem,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
    });
    clients.push(c);
    c.once('connect', () => resolve(c));
    c.once('error', (error) => reject(error));
    c.once('close', () => reject(new Error('closed')));
  });
}

/** the CONNACK refusal or TLS error a connect ends with */
async function refusal(clientId: string, cred?: Credential): Promise<string> {
  try {
    const c = await connect(clientId, cred);
    await c.endAsync();
    return 'connected';
  } catch (error) {
    return (error as Error).message;
  }
}

function nextMessage(c: MqttClient, topic: string): Promise<{ payload: Record<string, unknown>; qos: number }> {
  return new Promise((resolve) =>
    c.on('message', (t, payload, packet) => {
      if (t === topic) resolve({ payload: JSON.parse(payload.toString()) as Record<string, unknown>, qos: packet.qos });
    }),
  );
}

const run = (cmd: string, args: string[], timeout = 10_000) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(cmd, args, { timeout }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );

beforeAll(async () => {
  dynamo = await startDynamoDb({ createTableMs: 0 });
  client = createLocalDynamoDbClient(dynamo.endpoint);
  await ensureTable(client, REGISTRY_TABLE);
  registry = new LocalDeviceRegistry(client);
  const root = await createRootCa({
    subject: { commonName: 'Broker Test Root' },
    validity: { days: 30 },
    now,
    pathLength: 1,
  });
  const intermediate = await createIntermediateCa(root.issuer, {
    subject: { commonName: 'Broker Test Issuing' },
    validity: { days: 30 },
    now,
  });
  issuing = intermediate.issuer;
  rootPem = root.certificate.pem;
  trust = [root.certificate.pem, intermediate.certificate.pem];
  const server = await leaf(issuing, 'localhost', 'server');
  broker = await startMqttBroker({
    port: 0,
    serverCertificatePem: server.certificatePem,
    serverKeyPem: server.keyPem,
    trustedCas: trust,
    registry,
    onMessage: (m) => {
      messages.push(m);
    },
    log: (message, extra) => logs.push([message, extra]),
  });
});

afterAll(async () => {
  for (const c of clients) await c.endAsync(true).catch(() => undefined);
  await broker?.close();
  client?.destroy();
  await dynamo?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('isOwnTopic', () => {
  it.each([
    ['ok/own get', 'cdf/certificates/t1/get', true],
    ['ok/own wildcard below the thing', 'cdf/certificates/t1/get/+', true],
    ['ok/own multi-level wildcard', 'cdf/certificates/t1/#', true],
    ['error/another thing', 'cdf/certificates/t2/get', false],
    ['error/wildcard at the thing level', 'cdf/certificates/+/get', false],
    ['error/multi-level wildcard above the thing', 'cdf/#', false],
    ['error/the thing level alone', 'cdf/certificates/t1', false],
    ['error/another prefix', 'other/certificates/t1/get', false],
  ])('%s', (_name, filter, expected) => {
    expect(isOwnTopic('cdf/certificates', 't1', filter)).toBe(expected);
  });
});

describe('startMqttBroker', () => {
  it('listens on 127.0.0.1 with mutual TLS, presenting a certflow server certificate (openssl s_client)', async () => {
    expect(broker.url).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
    const rootFile = join(dir, 'root.pem');
    writeFileSync(rootFile, rootPem);
    const { stdout } = await run('sh', [
      '-c',
      `openssl s_client -connect 127.0.0.1:${broker.port} -CAfile ${rootFile} -verify_ip 127.0.0.1 -verify_return_error </dev/null 2>&1`,
    ]);
    expect(stdout).toMatch(/Verify return code: 0 \(ok\)/);
    expect(stdout).toMatch(/Acceptable client certificate CA names[\s\S]*Broker Test Root/);
  });

  it('admits a device whose certificate is ACTIVE and attached to the thing named by its client id', async () => {
    credA = await device('thing-a');
    const c = await connect('thing-a', credA);
    expect(c.connected).toBe(true);
    await c.endAsync();
  });

  it('refuses a TLS client without a certificate, or with one from a CA certflow does not trust', async () => {
    const foreign = await createRootCa({ subject: { commonName: 'Someone Else' }, validity: { days: 30 }, now });
    const stranger = await leaf(foreign.issuer, 'thing-x');
    const before = logs.length;
    expect(await refusal('thing-x', stranger)).toMatch(/closed|certificate|ECONNRESET/);
    // the broker ends the handshake (Node reports no alert reason to either side)
    expect(logs.slice(before).map(([message]) => message)).toContain('mqtt tls handshake failed');
    const anonymous = await refusal('thing-a');
    expect(anonymous).toMatch(/certificate required/);
  });

  it('refuses (CONNACK not authorized) an unregistered, an INACTIVE, an unattached or another thing’s certificate', async () => {
    const unregistered = await leaf(issuing, 'thing-u');
    await registry.createThing({ thingName: 'thing-u' });
    expect(await refusal('thing-u', unregistered)).toMatch(/Not authorized/);

    const inactive = await device('thing-i', 'INACTIVE');
    expect(await refusal('thing-i', inactive)).toMatch(/Not authorized/);

    const loose = await leaf(issuing, 'thing-l');
    await registry.createThing({ thingName: 'thing-l' });
    await registry.register({ certificatePem: loose.certificate.pem, status: 'ACTIVE' });
    expect(await refusal('thing-l', loose)).toMatch(/Not authorized/);

    const b = await device('thing-b');
    expect(await refusal('thing-a', b)).toMatch(/Not authorized/);
    expect(await refusal('thing-b', b)).toBe('connected');
  });

  it('refuses a certificate once it is made INACTIVE, or detached and deleted', async () => {
    const cred = await device('thing-d');
    expect(await refusal('thing-d', cred)).toBe('connected');
    await registry.updateCertificateStatus(cred.certificate.id, 'INACTIVE');
    expect(await refusal('thing-d', cred)).toMatch(/Not authorized/);
    await registry.detachThingPrincipal('thing-d', `arn:aws:iot:local:000000000000:cert/${cred.certificate.id}`);
    await registry.deleteCertificate(cred.certificate.id);
    await registry.updateThingAttributes('thing-d', { status: 'retired' });
    expect(await refusal('thing-d', cred)).toMatch(/Not authorized/);
  });

  it('hands a device’s own publish to the rules with its client id and certificate id (principal)', async () => {
    const cred = await device('thing-p');
    const c = await connect('thing-p', cred);
    await c.publishAsync('cdf/certificates/thing-p/get', JSON.stringify({ csr: 'x' }), { qos: 1 });
    await new Promise((r) => setTimeout(r, 50));
    const seen = messages.find((m) => m.topic === 'cdf/certificates/thing-p/get');
    expect(seen).toMatchObject({ clientId: 'thing-p', principal: cred.certificate.id });
    expect(JSON.parse(seen!.payload.toString())).toEqual({ csr: 'x' });
    await c.endAsync();
  });

  it('closes the connection of a device that publishes to another thing’s topic, and delivers nothing', async () => {
    const a = await connect('thing-a', credA);
    const b = await connect('thing-b2', await device('thing-b2'));
    const subscribed = await b.subscribeAsync('cdf/certificates/thing-b2/get/+', { qos: 1 });
    expect(subscribed[0]?.qos).toBe(1);
    const received: string[] = [];
    b.on('message', (topic) => received.push(topic));
    const closed = new Promise<void>((resolve) => a.once('close', () => resolve()));
    const before = messages.length;
    a.publish('cdf/certificates/thing-b2/get/accepted', JSON.stringify({ certificate: 'forged' }), { qos: 1 });
    await closed;
    await new Promise((r) => setTimeout(r, 100));
    expect(received).toEqual([]);
    expect(messages.slice(before).filter((m) => m.clientId === 'thing-a')).toEqual([]);
  });

  it('refuses subscriptions outside the device’s own topics (SUBACK 0x80), wildcards at the thing level included', async () => {
    const c = await connect('thing-s', await device('thing-s'));
    const granted = await c.subscribeAsync('cdf/certificates/thing-s/get/+', { qos: 1 });
    expect(granted.map((g) => g.qos)).toEqual([1]);
    for (const filter of ['cdf/certificates/+/get/accepted', 'cdf/certificates/thing-b/#', '#']) {
      await expect(c.subscribeAsync(filter, { qos: 1 })).rejects.toMatchObject({ packet: { granted: [128] } });
    }
    const received: string[] = [];
    c.on('message', (topic) => received.push(topic));
    await broker.messaging.publish('cdf/certificates/thing-b/get/accepted', { certificate: 'not yours' });
    await broker.messaging.publish('cdf/certificates/thing-s/get/accepted', { certificate: 'yours' });
    await new Promise((r) => setTimeout(r, 100));
    expect(received).toEqual(['cdf/certificates/thing-s/get/accepted']);
    await c.endAsync();
  });

  it('delivers the broker’s own JSON messages with QoS 1 (AedesDeviceMessaging)', async () => {
    const c = await connect('thing-m', await device('thing-m'));
    await c.subscribeAsync('cdf/certificates/thing-m/get/+', { qos: 1 });
    const next = nextMessage(c, 'cdf/certificates/thing-m/get/accepted');
    await broker.messaging.publish('cdf/certificates/thing-m/get/accepted', { certificateId: 'abc' });
    expect(await next).toEqual({ payload: { certificateId: 'abc' }, qos: 1 });
    await c.endAsync();
  });

  it('trusts new CAs after setTrustedCas, and stops trusting removed ones', async () => {
    const other = await createRootCa({ subject: { commonName: 'Second Root' }, validity: { days: 30 }, now });
    const cred = await leaf(other.issuer, 'thing-n');
    await registry.createThing({ thingName: 'thing-n' });
    const { certificateArn } = await registry.register({ certificatePem: cred.certificate.pem, status: 'ACTIVE' });
    await registry.attachThingPrincipal('thing-n', certificateArn);
    expect(await refusal('thing-n', cred)).toMatch(/closed|certificate|ECONNRESET/);
    broker.setTrustedCas([...trust, other.certificate.pem]);
    expect(await refusal('thing-n', cred)).toBe('connected');
    broker.setTrustedCas(trust);
    expect(await refusal('thing-n', cred)).toMatch(/closed|certificate|ECONNRESET/);
  });

  it('mosquitto_sub and mosquitto_pub complete an mTLS connect with certflow device certificates and exchange a message', async () => {
    const files = async (name: string) => {
      const cred = await device(name);
      writeFileSync(join(dir, `${name}.crt`), cred.certificatePem);
      writeFileSync(join(dir, `${name}.key`), cred.keyPem, { mode: 0o600 });
      return ['--cafile', join(dir, 'root.pem'), '--cert', join(dir, `${name}.crt`), '--key', join(dir, `${name}.key`)];
    };
    writeFileSync(join(dir, 'root.pem'), rootPem);
    const topic = 'cdf/certificates/mosq-1/get/accepted';
    const sub = run(
      'mosquitto_sub',
      [
        '-h',
        '127.0.0.1',
        '-p',
        String(broker.port),
        '-i',
        'mosq-1',
        '-t',
        topic,
        '-q',
        '1',
        '-C',
        '1',
        '-W',
        '10',
        ...(await files('mosq-1')),
      ],
      15_000,
    );
    await new Promise((r) => setTimeout(r, 500));
    await broker.messaging.publish(topic, { hello: 'mosquitto' });
    const pubArgs = await files('mosq-2');
    const pub = await run('mosquitto_pub', [
      '-h',
      '127.0.0.1',
      '-p',
      String(broker.port),
      '-i',
      'mosq-2',
      '-t',
      'cdf/certificates/mosq-2/ack',
      '-q',
      '1',
      '-m',
      '{"n":1}',
      ...pubArgs,
    ]);
    expect(pub).toMatchObject({ code: 0 });
    const received = await sub;
    expect(received.code).toBe(0);
    expect(JSON.parse(received.stdout.trim())).toEqual({ hello: 'mosquitto' });
    await new Promise((r) => setTimeout(r, 50));
    expect(messages.find((m) => m.clientId === 'mosq-2')).toMatchObject({ topic: 'cdf/certificates/mosq-2/ack' });
    // and without a registered certificate mosquitto_pub is refused
    const refused = await run('mosquitto_pub', [
      '-h',
      '127.0.0.1',
      '-p',
      String(broker.port),
      '-i',
      'mosq-3',
      '-t',
      'cdf/certificates/mosq-3/ack',
      '-m',
      '{}',
      ...pubArgs,
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/not authori[sz]ed/i);
  });

  it('the device simulator says so when nothing answers its get, and when the broker refuses its certificate', async () => {
    // this broker has no topic rules: the get is never answered
    const cred = await device('sim-1');
    const simulate = (thingName: string, c: Credential) =>
      rotateDevice({
        thingName,
        keyPem: c.keyPem,
        certificatePem: c.certificatePem,
        caPem: rootPem,
        mqttUrl: broker.url,
        timeoutMs: 300,
      }).catch((e: unknown) => e);
    expect(await simulate('sim-1', cred)).toMatchObject({
      name: 'RotationFailedError',
      stage: 'get',
      message: 'no answer on cdf/certificates/sim-1/get/accepted or cdf/certificates/sim-1/get/rejected within 0.3 s',
    });
    const unregistered = await leaf(issuing, 'sim-2');
    expect(await simulate('sim-2', unregistered)).toMatchObject({
      stage: 'connect',
      message: expect.stringMatching(/the broker refused sim-2 \(not authorized/),
    });
  });
});
