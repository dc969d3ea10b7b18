/**
 * Both rotation ASL files executed by the local runtime's StateMachineRunner with the real handlers, s3rver for the
 * packages, real CA signing, an in-memory DeviceRegistry (test/helpers; LocalDeviceRegistry comes from the mqtt
 * branch) and a recorded DeviceMessaging. openssl checks every certificate the workflow hands a device.
 */
import { webcrypto } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3ObjectStore } from '../../lambdas/adapters/aws/s3-object-store';
import { EVENT_SCHEMAS } from '../../lambdas/core/events';
import {
  createIntermediateCa,
  createRootCa,
  issueFromCsr,
  issueLeaf,
  parseCertificate,
  parseCsr,
  pemBundle,
  privateKeyToPem,
  toPem,
  type ParsedCertificate,
} from '../../lambdas/core/pki';
import type { CaKeyStore, DomainEvent, LoadedCa } from '../../lambdas/core/ports';
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
import { MemoryDeviceRegistry, RecordedDeviceMessaging } from '../helpers/memory-device-registry';
import { openssl, scratch } from '../helpers/openssl';
import { handshake } from '../helpers/tls';

const FN = (name: string) => `arn:aws:lambda:local:000000000000:function:certflow-${name}`;
const STATEMACHINES = join(__dirname, '..', '..', 'statemachines');
const GROUP = 'cdfRotateCertificates';
const POLICY = 'certflow-rotated';

let s3: LocalServer;
let dataDir: string;
let objects: S3ObjectStore;
let ca: LoadedCa;
let root: ParsedCertificate;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'certflow-rotation-'));
  s3 = await startS3({ dataDir });
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
  await rm(dataDir, { recursive: true, force: true });
});

interface World {
  registry: MemoryDeviceRegistry;
  messaging: RecordedDeviceMessaging;
  events: DomainEvent[];
  deps: RotationDeps;
  get: StateMachineRunner;
  ack: StateMachineRunner;
}

function world(config: Partial<RotationDeps['config']> = {}): World {
  const registry = new MemoryDeviceRegistry();
  registry.policies.set(POLICY, { policyName: POLICY, policyArn: `arn:policy/${POLICY}`, document: '{}' });
  registry.policies.set('fleet-a', { policyName: 'fleet-a', policyArn: 'arn:policy/fleet-a', document: '{}' });
  const messaging = new RecordedDeviceMessaging();
  const events: DomainEvent[] = [];
  const caKeys: CaKeyStore = {
    load: async (caId) => {
      if (caId !== ca.caId) throw new Error(`unknown CA ${caId}`);
      return ca;
    },
  };
  const deps: RotationDeps = {
    registry,
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
  return { registry, messaging, events, deps, get, ack };
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

/** A thing in the group with an old certificate (signed by the CA) attached, with policy fleet-a. */
async function enrolledThing(w: World, thingName: string) {
  w.registry.addThing(thingName, [GROUP]);
  const old = await makeCsr({ name: `CN=${thingName}` });
  const oldCert = await issueFromCsr(ca.issuer, parseCsr(old.pem), {
    profile: 'device',
    validity: { days: 30 },
    now: new Date(),
  });
  const { certificateArn } = await w.registry.register({ certificatePem: oldCert.pem, status: 'ACTIVE' });
  await w.registry.attachThingPrincipal(thingName, certificateArn);
  await w.registry.attachPolicy('fleet-a', certificateArn);
  w.registry.calls.length = 0;
  return { oldId: oldCert.id, oldArn: certificateArn };
}

describe('rotation-get workflow', () => {
  it('signs a CSR, registers and attaches the certificate with the previous policies, replies on get/accepted', async () => {
    const w = world();
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
    const arn = MemoryDeviceRegistry.arnOf(payload.certificateId);
    expect(w.registry.certificates.get(payload.certificateId)).toMatchObject({
      status: 'ACTIVE',
      caCertificateId: ca.caId,
    });
    expect([...w.registry.principalThings.get(arn)!]).toEqual(['thing-1']);
    expect([...w.registry.principalPolicies.get(arn)!]).toEqual(['fleet-a']);
    expect(w.registry.things.get('thing-1')!.attributes).toEqual({ status: 'active' });

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
    const server = await issueLeaf(ca.issuer, {
      profile: 'server',
      subject: { commonName: 'broker.certflow.test' },
      sans: { ip: ['127.0.0.1'] },
      validity: { days: 5 },
      now: new Date(),
    });
    const outcome = await handshake(
      {
        key: privateKeyToPem(server.privateKey),
        cert: pemBundle([server.certificate, ca.chain[0]!]),
        ca: root.pem,
      },
      { key: deviceKey, cert: payload.certificate + ca.chain[0]!.pem, ca: root.pem },
    );
    expect(outcome).toMatchObject({ authorized: true, serverSawPeer: 'thing-1', received: 'hello' });
  }, 30_000);

  it('vends the pre-created package: activates its certificate, attaches it, replies with a presigned URL', async () => {
    const w = world();
    w.registry.addThing('thing-p', [GROUP]);
    const csr = await makeCsr({ name: 'CN=thing-p' });
    const cert = await issueFromCsr(ca.issuer, parseCsr(csr.pem), {
      profile: 'device',
      validity: { days: 30 },
      now: new Date(),
    });
    await w.registry.register({ certificatePem: cert.pem, status: 'INACTIVE' });
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
    expect(w.registry.certificates.get(cert.id)!.status).toBe('ACTIVE');
    expect([...w.registry.principalThings.get(MemoryDeviceRegistry.arnOf(cert.id))!]).toEqual(['thing-p']);
    expect(w.events).toEqual([]);
  });

  it.each([
    [
      'a thing outside the rotation group',
      'DEVICE_NOT_WHITELISTED',
      async (w: World) => {
        w.registry.addThing('thing-x', []);
        return { deviceId: 'thing-x', action: 'get', csr: (await makeCsr({ name: 'CN=thing-x' })).pem };
      },
    ],
    ['an unknown thing', 'DEVICE_NOT_WHITELISTED', async () => ({ deviceId: 'thing-x', action: 'get' })],
    [
      'a CSR for another thing',
      'CSR_CN_MISMATCH',
      async (w: World) => {
        w.registry.addThing('thing-x', [GROUP]);
        return { deviceId: 'thing-x', action: 'get', csr: (await makeCsr({ name: 'CN=thing-y' })).pem };
      },
    ],
    [
      'a tampered CSR',
      'CSR_SIGNATURE_INVALID',
      async (w: World) => {
        w.registry.addThing('thing-x', [GROUP]);
        const { der } = await makeCsr({ name: 'CN=thing-x' });
        der.writeUInt8(der.readUInt8(der.length - 5) ^ 0x01, der.length - 5); // inside the signature
        return { deviceId: 'thing-x', action: 'get', csr: toPem('CERTIFICATE REQUEST', der) };
      },
    ],
    [
      'a CSR with a 1024-bit RSA key',
      'WEAK_KEY',
      async (w: World) => {
        w.registry.addThing('thing-x', [GROUP]);
        const csr = await makeCsr({ name: 'CN=thing-x', alg: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 1024 } });
        return { deviceId: 'thing-x', action: 'get', csr: csr.pem };
      },
    ],
    [
      'a CSR asking for a CA certificate',
      'CSR_REQUESTS_CA',
      async (w: World) => {
        w.registry.addThing('thing-x', [GROUP]);
        return { deviceId: 'thing-x', action: 'get', csr: (await makeCsr({ name: 'CN=thing-x', ca: true })).pem };
      },
    ],
    [
      'an unknown previous certificate',
      'PREVIOUS_CERTIFICATE_NOT_FOUND',
      async (w: World) => {
        w.registry.addThing('thing-x', [GROUP]);
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
        w.registry.addThing('thing-x', [GROUP]);
        return { deviceId: 'thing-x', action: 'get' };
      },
    ],
  ] as const)('error/%s: { message: %s } on get/rejected, nothing registered', async (_, reason, setup) => {
    const w = world();
    const input = await setup(w);
    const result = await run(w.get, input);
    expect(result.status).toBe('SUCCEEDED');
    expect(statesOf(result.events)).toContain('ReplyRejected');
    expect(w.messaging.published).toEqual([
      { topic: 'cdf/certificates/thing-x/get/rejected', payload: { message: reason } },
    ]);
    expect(w.registry.certificates.size).toBe(0);
    expect(w.events).toEqual([]);
  });

  it('undoes a half-done rotation when attaching the policy fails, and rejects with UNABLE_TO_ATTACH_POLICY', async () => {
    const w = world({ rotatedCertificatePolicyName: 'no-such-policy' });
    w.registry.addThing('thing-r', [GROUP]);
    const result = await run(w.get, {
      deviceId: 'thing-r',
      action: 'get',
      csr: (await makeCsr({ name: 'CN=thing-r' })).pem,
    });
    expect(result.status).toBe('SUCCEEDED');
    expect(w.messaging.published).toEqual([
      { topic: 'cdf/certificates/thing-r/get/rejected', payload: { message: 'UNABLE_TO_ATTACH_POLICY' } },
    ]);
    expect(w.registry.certificates.size).toBe(0);
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
    const w = world({ validityDays: 3650 });
    w.registry.addThing('thing-v', [GROUP]);
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
    const w = world();
    w.registry.addThing('thing-t', [GROUP]);
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
    expect(w.registry.certificates.size).toBe(1);
    expect(w.events).toHaveLength(1);
  });

  it('rolls the new certificate back when the accepted reply cannot be published', async () => {
    const w = world();
    w.registry.addThing('thing-f', [GROUP]);
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
    expect(w.registry.certificates.size).toBe(0);
    expect(
      w.registry.principalThings.size === 0 || [...w.registry.principalThings.values()].every((s) => s.size === 0),
    ).toBe(true);
  });
});

describe('rotation-ack workflow', () => {
  it('with deletion on: detaches and deletes the previous certificate, leaves the group, Certificate Rotated, OK', async () => {
    const w = world({ deletePreviousCertificate: true });
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
    expect(w.registry.certificates.has(oldId)).toBe(false);
    expect(w.registry.principalThings.get(oldArn)?.size ?? 0).toBe(0);
    expect(w.registry.certificates.get(newId)!.status).toBe('ACTIVE');
    expect(w.registry.groups.get(GROUP)!.has('thing-a')).toBe(false);
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
    const w = world();
    const { oldId } = await enrolledThing(w, 'thing-b');
    const acked = await run(w.ack, { deviceId: 'thing-b', action: 'ack', certId: 'cd'.repeat(32) });
    expect(acked.status).toBe('SUCCEEDED');
    expect(w.messaging.published).toEqual([
      { topic: 'cdf/certificates/thing-b/ack/accepted', payload: { message: 'OK' } },
    ]);
    expect(w.registry.certificates.get(oldId)!.status).toBe('ACTIVE');
    expect(w.registry.calls).toEqual([
      'describeThing thing-b',
      'listThingGroupsForThing thing-b',
      `removeThingFromThingGroup thing-b ${GROUP}`,
    ]);
  });

  it('refuses an ack whose certificate is not the thing’s when deletion is on (CERTIFICATE_NOT_ATTACHED)', async () => {
    const w = world({ deletePreviousCertificate: true });
    const { oldId } = await enrolledThing(w, 'thing-c');
    const acked = await run(w.ack, { deviceId: 'thing-c', action: 'ack', certId: 'ef'.repeat(32) });
    expect(acked.status).toBe('SUCCEEDED');
    expect(w.messaging.published).toEqual([
      { topic: 'cdf/certificates/thing-c/ack/rejected', payload: { message: 'CERTIFICATE_NOT_ATTACHED' } },
    ]);
    expect(w.registry.certificates.has(oldId)).toBe(true);
    expect(w.registry.groups.get(GROUP)!.has('thing-c')).toBe(true);
  });
});
