/**
 * Both rotation ASL files executed by the local runtime's StateMachineRunner with the real handlers, s3rver for the
 * packages, real CA signing, the local runtime's LocalDeviceRegistry on dynalite (a table per test, its calls
 * recorded and faults injected at the port) and a recorded DeviceMessaging. openssl checks every certificate the
 * workflow hands a device.
 */
import { webcrypto } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import { S3ObjectStore } from '../../lambdas/adapters/aws/s3-object-store';
import { createTableInput } from '../../lambdas/adapters/aws/tables';
import {
  LocalDeviceRegistry,
  localCertificateArn,
  REGISTRY_TABLE,
} from '../../lambdas/adapters/local/local-device-registry';
import { NotFoundError } from '../../lambdas/core/errors';
import { EVENT_SCHEMAS } from '../../lambdas/core/events';
import {
  createIntermediateCa,
  createRootCa,
  issueFromCsr,
  parseCertificate,
  parseCsr,
  pemBundle,
  toPem,
  type ParsedCertificate,
} from '../../lambdas/core/pki';
import type { CaKeyStore, DeviceMessaging, DomainEvent, LoadedCa } from '../../lambdas/core/ports';
import { DEFAULT_ROTATION_CONFIG, type RotationDeps } from '../../lambdas/core/rotation/service';
import { CaKeyStoreCsrSigner } from '../../lambdas/core/signing/csr-signer';
import { createHandler as createAck } from '../../lambdas/handlers/sfn-rotation-ack';
import { createHandler as createApprove } from '../../lambdas/handlers/sfn-rotation-approve';
import { createHandler as createReply } from '../../lambdas/handlers/sfn-rotation-reply';
import { createHandler as createRollback } from '../../lambdas/handlers/sfn-rotation-rollback';
import { createHandler as createVend } from '../../lambdas/handlers/sfn-rotation-vend';
import { createLocalS3Client, ensureBucket, startS3 } from '../../local/runtime/s3-server';
import { StateMachineRunner } from '../../local/runtime/state-machine-runner';
import type { LocalServer } from '../../local/runtime/types';
import { makeCsr } from '../helpers/csr';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';
import { recording, type RecordingRegistry } from '../helpers/recording-registry';
import { openssl, scratch } from '../helpers/openssl';
import { brokerCredentials, handshake } from '../helpers/tls';

const FN = (name: string) => `arn:aws:lambda:local:000000000000:function:certflow-${name}`;
const STATEMACHINES = join(__dirname, '..', '..', 'statemachines');
const GROUP = 'cdfRotateCertificates';
const POLICY = 'certflow-rotated';

let s3: LocalServer;
let dynamo: LocalDynamo;
let dataDir: string;
let objects: S3ObjectStore;
let ca: LoadedCa;
let root: ParsedCertificate;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'certflow-rotation-'));
  s3 = await startS3({ dataDir });
  dynamo = await startDynalite([]);
  const client = createLocalS3Client(s3.endpoint);
  await ensureBucket(client, 'rotation');
  objects = new S3ObjectStore(client, 'rotation');
  const now = new Date();
  const rootCa = await createRootCa({ subject: { commonName: 'Rotation Root' }, validity: { days: 3650 }, now });
  const issuing = await createIntermediateCa(rootCa.issuer, {
    subject: { commonName: 'Rotation Issuing CA' },
    validity: { days: 3000 },
    now,
  });
  root = rootCa.certificate;
  ca = { caId: issuing.certificate.id, issuer: issuing.issuer, chain: [issuing.certificate, rootCa.certificate] };
}, 30_000);

afterAll(async () => {
  await s3?.close();
  await dynamo?.close();
  await rm(dataDir, { recursive: true, force: true });
});

/** A DeviceMessaging that records what it would publish. */
class RecordedDeviceMessaging implements DeviceMessaging {
  readonly published: { topic: string; payload: Record<string, unknown> }[] = [];
  /** errors thrown by the next publishes, in order */
  readonly failures: Error[] = [];

  async publish(topic: string, payload: Record<string, unknown>): Promise<void> {
    const failure = this.failures.shift();
    if (failure) throw failure;
    this.published.push({ topic, payload: JSON.parse(JSON.stringify(payload)) as Record<string, unknown> });
  }
}

interface World {
  /** the registry itself, for setting up and inspecting (not recorded) */
  local: LocalDeviceRegistry;
  registry: RecordingRegistry;
  messaging: RecordedDeviceMessaging;
  events: DomainEvent[];
  deps: RotationDeps;
  get: StateMachineRunner;
  ack: StateMachineRunner;
}

let worlds = 0;

async function world(config: Partial<RotationDeps['config']> = {}): Promise<World> {
  // a table of its own: every test starts from an empty registry
  const tableName = `registry-${++worlds}`;
  await dynamo.client.send(new CreateTableCommand(createTableInput({ ...REGISTRY_TABLE, tableName })));
  const local = new LocalDeviceRegistry(dynamo.client, { tableName, rotationGroupName: GROUP });
  await local.createPolicy(POLICY, '{}');
  await local.createPolicy('fleet-a', '{}');
  const registry = recording(local);
  const messaging = new RecordedDeviceMessaging();
  const events: DomainEvent[] = [];
  const caKeys: CaKeyStore = {
    load: async (caId) => {
      if (caId !== ca.caId) throw new Error(`unknown CA ${caId}`);
      return ca;
    },
  };
  const deps: RotationDeps = {
    registry: registry.registry,
    messaging,
    objects,
    signer: new CaKeyStoreCsrSigner(caKeys, ca.caId),
    events: { publish: async (e) => void events.push(...e) },
    clock: { now: () => new Date() },
    config: { ...DEFAULT_ROTATION_CONFIG, rotatedCertificatePolicyName: POLICY, ...config },
  };
  const resources = {
    [FN('rotation-approve')]: createApprove(deps),
    [FN('rotation-vend')]: createVend(deps),
    [FN('rotation-reply')]: createReply(deps),
    [FN('rotation-rollback')]: createRollback(deps),
    [FN('rotation-ack')]: createAck(deps),
  } as Record<string, (input: unknown) => Promise<unknown>>;
  const get = new StateMachineRunner({
    definition: join(STATEMACHINES, 'rotation-get.asl.json'),
    substitutions: {
      ApproveDeviceFunctionArn: FN('rotation-approve'),
      VendCertificateFunctionArn: FN('rotation-vend'),
      ReplyFunctionArn: FN('rotation-reply'),
      RollbackFunctionArn: FN('rotation-rollback'),
    },
    resources,
    retryIntervalMs: 0,
  });
  const ack = new StateMachineRunner({
    definition: join(STATEMACHINES, 'rotation-ack.asl.json'),
    substitutions: {
      ApproveDeviceFunctionArn: FN('rotation-approve'),
      AcknowledgeRotationFunctionArn: FN('rotation-ack'),
      ReplyFunctionArn: FN('rotation-reply'),
    },
    resources,
    retryIntervalMs: 0,
  });
  return { local, registry, messaging, events, deps, get, ack };
}

let executions = 0;
const run = (runner: StateMachineRunner, input: Record<string, unknown>) => {
  const started = runner.start(`exec-${++executions}`, input);
  return started.result.then(
    () => ({ status: 'SUCCEEDED', events: started.events }),
    (e: { error?: string }) => ({ status: `FAILED ${e.error ?? ''}`, events: started.events }),
  );
};
const statesOf = (events: { type: string; stateName?: string }[]) =>
  events.filter((e) => e.type === 'StateEntered').map((e) => e.stateName);

/** A thing in the registry, in `groups` (set up directly, not recorded). */
async function addThing(w: World, thingName: string, groups: string[] = []): Promise<void> {
  await w.local.createThing({ thingName });
  for (const group of groups) await w.local.addThingToThingGroup(thingName, group);
}

/** How many of the certificates registered through the port are still registered. */
async function certificatesLeft(w: World): Promise<number> {
  let left = 0;
  for (const id of w.registry.registered) if (await w.local.describeCertificate(id)) left++;
  return left;
}

/** The things a certificate is attached to (none once it is deleted). */
async function thingsOf(w: World, arn: string): Promise<string[]> {
  try {
    return await w.local.listPrincipalThings(arn);
  } catch (error) {
    if (error instanceof NotFoundError) return [];
    throw error;
  }
}

const inGroup = async (w: World, thingName: string): Promise<boolean> =>
  (await w.local.listThingGroupsForThing(thingName)).includes(GROUP);

/** A thing in the group with an old certificate (signed by the CA) attached, with policy fleet-a. */
async function enrolledThing(w: World, thingName: string) {
  await addThing(w, thingName, [GROUP]);
  const old = await makeCsr({ name: `CN=${thingName}` });
  const oldCert = await issueFromCsr(ca.issuer, parseCsr(old.pem), {
    profile: 'device',
    validity: { days: 30 },
    now: new Date(),
  });
  const { certificateArn } = await w.local.register({ certificatePem: oldCert.pem, status: 'ACTIVE' });
  await w.local.attachThingPrincipal(thingName, certificateArn);
  await w.local.attachPolicy('fleet-a', certificateArn);
  return { oldId: oldCert.id, oldArn: certificateArn };
}

describe('rotation-get workflow', () => {
  it('signs a CSR, registers and attaches the certificate with the previous policies, replies on get/accepted', async () => {
    const w = await world();
    const { oldId } = await enrolledThing(w, 'thing-1');
    const csr = await makeCsr({ name: 'CN=thing-1' });
    const result = await run(w.get, {
      deviceId: 'thing-1',
      action: 'get',
      certId: oldId,
      csr: csr.pem,
      previousCertificateId: oldId,
    });
    expect(result.status).toBe('SUCCEEDED');
    expect(statesOf(result.events)).toEqual([
      'ApproveDevice',
      'CsrOrPackage',
      'SignCertificate',
      'ReplyAccepted',
      'CertificateVended',
    ]);
    expect(w.messaging.published).toHaveLength(1);
    const [reply] = w.messaging.published;
    expect(reply!.topic).toBe('cdf/certificates/thing-1/get/accepted');
    const payload = reply!.payload as { deviceId: string; action: string; certificateId: string; certificate: string };
    expect(Object.keys(payload).sort()).toEqual(['action', 'certificate', 'certificateId', 'deviceId']);
    expect(payload).toMatchObject({ deviceId: 'thing-1', action: 'get' });

    // the registry: ACTIVE, with the CA, attached to the thing, with the old certificate's policies
    const arn = localCertificateArn(payload.certificateId);
    expect(await w.local.describeCertificate(payload.certificateId)).toMatchObject({
      status: 'ACTIVE',
      caCertificateId: ca.caId,
    });
    expect(await w.local.listPrincipalThings(arn)).toEqual(['thing-1']);
    expect(await w.local.listAttachedPolicies(arn)).toEqual(['fleet-a']);
    expect((await w.local.describeThing('thing-1'))!.attributes).toEqual({ status: 'active' });

    // Certificate Issued, origin rotation, valid against its schema
    expect(w.events).toHaveLength(1);
    expect(w.events[0]!.detailType).toBe('Certificate Issued');
    expect(EVENT_SCHEMAS['Certificate Issued'].parse(w.events[0]!.detail)).toMatchObject({
      origin: 'rotation',
      thingName: 'thing-1',
      issuerId: ca.caId,
      certificates: [{ certificateId: payload.certificateId, commonName: 'thing-1' }],
    });

    // openssl: chains to the root, the CSR's subject and key, 1095 days, a client certificate
    const dir = scratch();
    try {
      const certFile = dir.write('cert.pem', payload.certificate);
      const chainFile = dir.write('chain.pem', pemBundle([ca.chain[0]!]));
      const rootFile = dir.write('root.pem', root.pem);
      const verify = await openssl([
        'verify',
        '-CAfile',
        rootFile,
        '-untrusted',
        chainFile,
        '-purpose',
        'sslclient',
        certFile,
      ]);
      expect(verify.stdout).toContain(`${certFile}: OK`);
      const text = (await openssl(['x509', '-in', certFile, '-noout', '-subject', '-startdate', '-enddate'])).stdout;
      expect(text).toMatch(/subject=CN\s*=\s*thing-1/);
      const days = (Date.parse(/notAfter=(.*)/.exec(text)![1]!) - Date.now()) / 86_400_000;
      expect(Math.round(days)).toBe(1095);
      const csrFile = dir.write('req.pem', csr.pem);
      const certKey = (await openssl(['x509', '-in', certFile, '-noout', '-pubkey'])).stdout;
      const csrKey = (await openssl(['req', '-in', csrFile, '-noout', '-pubkey'])).stdout;
      expect(certKey).toBe(csrKey);
    } finally {
      dir.cleanup();
    }

    // a real mutual-TLS handshake: the device's own key with the rotated certificate, against a server trusting the root
    const deviceKey = toPem('PRIVATE KEY', Buffer.from(await webcrypto.subtle.exportKey('pkcs8', csr.keys.privateKey)));
    const outcome = await handshake(await brokerCredentials(ca.issuer, ca.chain[0]!, root.pem), {
      key: deviceKey,
      cert: payload.certificate + ca.chain[0]!.pem,
      ca: root.pem,
    });
    expect(outcome).toMatchObject({ authorized: true, serverSawPeer: 'thing-1', received: 'hello' });
  }, 30_000);

  it('vends the pre-created package: activates its certificate, attaches it, replies with a presigned URL', async () => {
    const w = await world();
    await addThing(w, 'thing-p', [GROUP]);
    const csr = await makeCsr({ name: 'CN=thing-p' });
    const cert = await issueFromCsr(ca.issuer, parseCsr(csr.pem), {
      profile: 'device',
      validity: { days: 30 },
      now: new Date(),
    });
    await w.local.register({ certificatePem: cert.pem, status: 'INACTIVE' });
    const zip = Buffer.from('PK fake package for thing-p');
    await objects.put('certificates/thing-p.zip', zip, {
      contentType: 'application/zip',
      metadata: { certificateid: cert.id },
    });

    const result = await run(w.get, { deviceId: 'thing-p', action: 'get' });
    expect(result.status).toBe('SUCCEEDED');
    expect(statesOf(result.events)).toEqual([
      'ApproveDevice',
      'CsrOrPackage',
      'ActivatePackagedCertificate',
      'ReplyAccepted',
      'CertificateVended',
    ]);
    const [reply] = w.messaging.published;
    expect(reply!.topic).toBe('cdf/certificates/thing-p/get/accepted');
    const payload = reply!.payload as { location: string };
    expect(Object.keys(payload).sort()).toEqual(['action', 'deviceId', 'location']);
    const downloaded = await fetch(payload.location);
    expect(downloaded.status).toBe(200);
    expect(Buffer.from(await downloaded.arrayBuffer())).toEqual(zip);
    expect(payload.location).toMatch(/X-Amz-Expires=300/);
    expect((await w.local.describeCertificate(cert.id))!.status).toBe('ACTIVE');
    expect(await w.local.listPrincipalThings(localCertificateArn(cert.id))).toEqual(['thing-p']);
    expect(w.events).toEqual([]);
  });

  it.each([
    [
      'a thing outside the rotation group',
      'DEVICE_NOT_WHITELISTED',
      async (w: World) => {
        await addThing(w, 'thing-x');
        return { deviceId: 'thing-x', action: 'get', csr: (await makeCsr({ name: 'CN=thing-x' })).pem };
      },
    ],
    ['an unknown thing', 'DEVICE_NOT_WHITELISTED', async () => ({ deviceId: 'thing-x', action: 'get' })],
    [
      'a CSR for another thing',
      'CSR_CN_MISMATCH',
      async (w: World) => {
        await addThing(w, 'thing-x', [GROUP]);
        return { deviceId: 'thing-x', action: 'get', csr: (await makeCsr({ name: 'CN=thing-y' })).pem };
      },
    ],
    [
      'a tampered CSR',
      'CSR_SIGNATURE_INVALID',
      async (w: World) => {
        await addThing(w, 'thing-x', [GROUP]);
        const { der } = await makeCsr({ name: 'CN=thing-x' });
        der.writeUInt8(der.readUInt8(der.length - 5) ^ 0x01, der.length - 5); // inside the signature
        return { deviceId: 'thing-x', action: 'get', csr: toPem('CERTIFICATE REQUEST', der) };
      },
    ],
    [
      'a CSR with a 1024-bit RSA key',
      'WEAK_KEY',
      async (w: World) => {
        await addThing(w, 'thing-x', [GROUP]);
        const csr = await makeCsr({ name: 'CN=thing-x', alg: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 1024 } });
        return { deviceId: 'thing-x', action: 'get', csr: csr.pem };
      },
    ],
    [
      'a CSR asking for a CA certificate',
      'CSR_REQUESTS_CA',
      async (w: World) => {
        await addThing(w, 'thing-x', [GROUP]);
        return { deviceId: 'thing-x', action: 'get', csr: (await makeCsr({ name: 'CN=thing-x', ca: true })).pem };
      },
    ],
    [
      'an unknown previous certificate',
      'PREVIOUS_CERTIFICATE_NOT_FOUND',
      async (w: World) => {
        await addThing(w, 'thing-x', [GROUP]);
        return {
          deviceId: 'thing-x',
          action: 'get',
          csr: (await makeCsr({ name: 'CN=thing-x' })).pem,
          previousCertificateId: 'ab'.repeat(32),
        };
      },
    ],
    [
      'no package for the thing',
      'CERTIFICATE_NOT_FOUND',
      async (w: World) => {
        await addThing(w, 'thing-x', [GROUP]);
        return { deviceId: 'thing-x', action: 'get' };
      },
    ],
  ] as const)('error/%s: { message: %s } on get/rejected, nothing registered', async (_, reason, setup) => {
    const w = await world();
    const input = await setup(w);
    const result = await run(w.get, input);
    expect(result.status).toBe('SUCCEEDED');
    expect(statesOf(result.events)).toContain('ReplyRejected');
    expect(w.messaging.published).toEqual([
      { topic: 'cdf/certificates/thing-x/get/rejected', payload: { message: reason } },
    ]);
    expect(await certificatesLeft(w)).toBe(0);
    expect(w.events).toEqual([]);
  });

  it('undoes a half-done rotation when attaching the policy fails, and rejects with UNABLE_TO_ATTACH_POLICY', async () => {
    const w = await world({ rotatedCertificatePolicyName: 'no-such-policy' });
    await addThing(w, 'thing-r', [GROUP]);
    const result = await run(w.get, {
      deviceId: 'thing-r',
      action: 'get',
      csr: (await makeCsr({ name: 'CN=thing-r' })).pem,
    });
    expect(result.status).toBe('SUCCEEDED');
    expect(w.messaging.published).toEqual([
      { topic: 'cdf/certificates/thing-r/get/rejected', payload: { message: 'UNABLE_TO_ATTACH_POLICY' } },
    ]);
    expect(await certificatesLeft(w)).toBe(0);
    expect(w.registry.calls.filter((c) => !c.startsWith('describe') && !c.startsWith('list'))).toEqual([
      expect.stringMatching(/^register ACTIVE withCa$/),
      expect.stringMatching(/^attachThingPrincipal thing-r /),
      expect.stringMatching(/^attachPolicy no-such-policy /),
      expect.stringMatching(/^detachThingPrincipal thing-r /),
      expect.stringMatching(/^updateCertificateStatus \w+ INACTIVE$/),
      expect.stringMatching(/^deleteCertificate /),
    ]);
  });

  it('never signs beyond the issuing CA: a validity longer than the CA has left ends with the CA', async () => {
    const w = await world({ validityDays: 3650 });
    await addThing(w, 'thing-v', [GROUP]);
    const result = await run(w.get, {
      deviceId: 'thing-v',
      action: 'get',
      csr: (await makeCsr({ name: 'CN=thing-v' })).pem,
    });
    expect(result.status).toBe('SUCCEEDED');
    const { certificate } = w.messaging.published[0]!.payload as { certificate: string };
    expect(parseCertificate(certificate).notAfter.getTime()).toBe(ca.issuer.certificate.notAfter.getTime());
  });

  it('retries a throttled step (the half-done work undone first), then succeeds', async () => {
    const w = await world();
    await addThing(w, 'thing-t', [GROUP]);
    w.registry.failNext.set('attachPolicy', Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    const result = await run(w.get, {
      deviceId: 'thing-t',
      action: 'get',
      csr: (await makeCsr({ name: 'CN=thing-t' })).pem,
    });
    expect(result.status).toBe('SUCCEEDED');
    expect(result.events.filter((e) => e.type === 'StateRetried').map((e) => e.stateName)).toEqual(['SignCertificate']);
    expect(w.messaging.published.map((p) => p.topic)).toEqual(['cdf/certificates/thing-t/get/accepted']);
    // the first attempt's certificate is gone, only the second one is left
    expect(await certificatesLeft(w)).toBe(1);
    expect(w.events).toHaveLength(1);
  });

  it('rolls the new certificate back when the accepted reply cannot be published', async () => {
    const w = await world();
    await addThing(w, 'thing-f', [GROUP]);
    for (let i = 0; i < 4; i++) {
      w.messaging.failures.push(Object.assign(new Error('broker down'), { name: 'ServiceUnavailableException' }));
    }
    const result = await run(w.get, {
      deviceId: 'thing-f',
      action: 'get',
      csr: (await makeCsr({ name: 'CN=thing-f' })).pem,
    });
    expect(result.status).toBe('FAILED ReplyNotDelivered');
    expect(statesOf(result.events).slice(-2)).toEqual(['RollBackCertificate', 'ReplyNotDelivered']);
    expect(await certificatesLeft(w)).toBe(0);
    expect(await w.local.listThingPrincipals('thing-f')).toEqual([]);
  });
});

describe('rotation-ack workflow', () => {
  it('with deletion on: detaches and deletes the previous certificate, leaves the group, Certificate Rotated, OK', async () => {
    const w = await world({ deletePreviousCertificate: true });
    const { oldId, oldArn } = await enrolledThing(w, 'thing-a');
    const next = await makeCsr({ name: 'CN=thing-a' });
    const got = await run(w.get, { deviceId: 'thing-a', action: 'get', csr: next.pem, previousCertificateId: oldId });
    expect(got.status).toBe('SUCCEEDED');
    const newId = (w.messaging.published[0]!.payload as { certificateId: string }).certificateId;

    const acked = await run(w.ack, { deviceId: 'thing-a', action: 'ack', certId: newId });
    expect(acked.status).toBe('SUCCEEDED');
    expect(statesOf(acked.events)).toEqual([
      'ApproveDevice',
      'AcknowledgeRotation',
      'ReplyAccepted',
      'RotationAcknowledged',
    ]);
    expect(w.messaging.published[1]).toEqual({
      topic: 'cdf/certificates/thing-a/ack/accepted',
      payload: { message: 'OK' },
    });
    expect(await w.local.describeCertificate(oldId)).toBeUndefined();
    expect(await thingsOf(w, oldArn)).toEqual([]);
    expect((await w.local.describeCertificate(newId))!.status).toBe('ACTIVE');
    expect(await inGroup(w, 'thing-a')).toBe(false);
    const rotated = w.events.find((e) => e.detailType === 'Certificate Rotated')!;
    expect(EVENT_SCHEMAS['Certificate Rotated'].parse(rotated.detail)).toMatchObject({
      thingName: 'thing-a',
      certificateId: newId,
      previousCertificateIds: [oldId],
      deletedCertificateIds: [oldId],
      thingGroupName: GROUP,
    });

    // a second ack: the thing left the group
    const again = await run(w.ack, { deviceId: 'thing-a', action: 'ack', certId: newId });
    expect(again.status).toBe('SUCCEEDED');
    expect(w.messaging.published[2]).toEqual({
      topic: 'cdf/certificates/thing-a/ack/rejected',
      payload: { message: 'DEVICE_NOT_WHITELISTED' },
    });
  }, 30_000);

  it('with deletion off: keeps the previous certificate and only leaves the group', async () => {
    const w = await world();
    const { oldId } = await enrolledThing(w, 'thing-b');
    const acked = await run(w.ack, { deviceId: 'thing-b', action: 'ack', certId: 'cd'.repeat(32) });
    expect(acked.status).toBe('SUCCEEDED');
    expect(w.messaging.published).toEqual([
      { topic: 'cdf/certificates/thing-b/ack/accepted', payload: { message: 'OK' } },
    ]);
    expect((await w.local.describeCertificate(oldId))!.status).toBe('ACTIVE');
    expect(w.registry.calls).toEqual([
      'describeThing thing-b',
      'listThingGroupsForThing thing-b',
      `removeThingFromThingGroup thing-b ${GROUP}`,
    ]);
  });

  it('refuses an ack whose certificate is not the thing’s when deletion is on (CERTIFICATE_NOT_ATTACHED)', async () => {
    const w = await world({ deletePreviousCertificate: true });
    const { oldId } = await enrolledThing(w, 'thing-c');
    const acked = await run(w.ack, { deviceId: 'thing-c', action: 'ack', certId: 'ef'.repeat(32) });
    expect(acked.status).toBe('SUCCEEDED');
    expect(w.messaging.published).toEqual([
      { topic: 'cdf/certificates/thing-c/ack/rejected', payload: { message: 'CERTIFICATE_NOT_ATTACHED' } },
    ]);
    expect(await w.local.describeCertificate(oldId)).toBeDefined();
    expect(await inGroup(w, 'thing-c')).toBe(true);
  });
});
