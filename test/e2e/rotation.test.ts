/**
 * Certificate rotation end to end on the local runtime, over real MQTT with mutual TLS (everything on 127.0.0.1,
 * ephemeral ports): devices get their first certificate from the CA API (`POST /certificates/device`) and are
 * registered, attached and put in the rotation group through the registry, as a factory would; then they rotate
 * through the broker, its topic rules and the rotation-get / rotation-ack workflows. openssl checks the new
 * certificates; the Debian mosquitto clients and the `certflow device rotate` command are devices too.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { MqttClient } from 'mqtt';
import { ZipChunkBuilder } from '../../lambdas/core/packaging/zip';
import { EVENT_SCHEMAS } from '../../lambdas/core/events';
import {
  DEFAULT_ROTATION_DEVICE_POLICY_NAME,
  rotationDevicePolicyDocument,
} from '../../lambdas/core/rotation/device-policy';
import { packageKey } from '../../lambdas/core/rotation/service';
import { startLocal, type LocalCertflow } from '../../local/certflow';
import { rotateDevice, RotationFailedError } from '../../local/device-simulator';
import { makeCsr } from '../helpers/csr';
import { deviceFleet, deviceRuntimeOptions, type Device } from '../helpers/devices';
import { openssl } from '../helpers/openssl';

jest.setTimeout(60_000);

const dir = mkdtempSync(join(tmpdir(), 'certflow-rotation-e2e-'));
const GROUP = 'cdfRotateCertificates';
let cf: LocalCertflow;
let issuingCaId: string;
const fleet = deviceFleet(() => cf);

beforeAll(async () => {
  cf = await startLocal({ ...deviceRuntimeOptions(join(dir, 'data')), rotation: { deletePreviousCertificate: true } });
  issuingCaId = cf.bootstrap.issuingCaId;
});
afterAll(async () => {
  await fleet.close();
  await cf?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function call<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${cf.url}${path}`, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as T };
}

/** publishes on `{prefix}/{thing}/{action}` and answers the reply topic and payload */
async function exchange(c: MqttClient, thingName: string, action: 'get' | 'ack', payload: string) {
  await c.subscribeAsync(`cdf/certificates/${thingName}/${action}/+`, { qos: 1 });
  const reply = new Promise<{ topic: string; body: Record<string, unknown> }>((resolve) =>
    c.on('message', (topic, body) => resolve({ topic, body: JSON.parse(body.toString()) as Record<string, unknown> })),
  );
  await c.publishAsync(`cdf/certificates/${thingName}/${action}`, payload, { qos: 1 });
  return reply;
}

const run = (cmd: string, args: string[], timeout = 20_000, env: NodeJS.ProcessEnv = process.env) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((done) =>
    execFile(cmd, args, { timeout, env }, (error, stdout, stderr) =>
      done({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );

const file = (name: string, content: string): string => {
  const path = join(dir, name);
  writeFileSync(path, content, { mode: 0o600 });
  return path;
};

describe('certificate rotation over MQTT with mutual TLS', () => {
  it('a device rotates with a CSR, reconnects with the new certificate, and its old one is refused after the ack', async () => {
    await cf.registry.createPolicy('fleet', JSON.stringify({ Version: '2012-10-17', Statement: [] }));
    const device = await fleet.enroll('rot-1', { policy: 'fleet', thingGroup: GROUP });
    const outcome = await rotateDevice({
      thingName: 'rot-1',
      keyPem: device.privateKeyPem,
      certificatePem: device.certificatePem,
      caPem: device.chainPem,
      mqttUrl: cf.mqttUrl,
      timeoutMs: 15_000,
    });
    expect(outcome.previousCertificateId).toBe(device.certificateId);
    expect(outcome.certificateId).not.toBe(device.certificateId);

    // openssl: the new certificate chains to the certflow CAs, is for the thing, and matches the device's new key
    const chain = file('rot-1-chain.pem', device.chainPem);
    const cert = file('rot-1-new.pem', outcome.certificatePem);
    expect((await openssl(['verify', '-CAfile', chain, cert])).stdout.trim()).toBe(`${cert}: OK`);
    expect((await openssl(['x509', '-in', cert, '-noout', '-subject'])).stdout).toMatch(/CN ?= ?rot-1/);
    const certKey = await openssl(['x509', '-in', cert, '-noout', '-pubkey']);
    const ownKey = await openssl(['pkey', '-pubout'], outcome.privateKeyPem);
    expect(certKey.stdout).toBe(ownKey.stdout);

    // the registry: the new certificate ACTIVE, attached, with the old one's policy; the old one deleted; out of
    // the group; Certificate Rotated on the bus
    const arn = `arn:aws:iot:local:000000000000:cert/${outcome.certificateId}`;
    expect(await cf.registry.describeCertificate(outcome.certificateId)).toMatchObject({ status: 'ACTIVE' });
    expect(await cf.registry.listThingPrincipals('rot-1')).toEqual([arn]);
    expect(await cf.registry.listAttachedPolicies(arn)).toEqual(['fleet']);
    expect(await cf.registry.describeCertificate(device.certificateId)).toBeUndefined();
    expect(await cf.registry.listThingGroupsForThing('rot-1')).toEqual([]);
    await cf.bus.drain();
    const rotated = cf.bus.history.find(
      (e) => e['detail-type'] === 'Certificate Rotated' && (e.detail as { thingName?: string }).thingName === 'rot-1',
    );
    expect(rotated).toBeDefined();
    expect(EVENT_SCHEMAS['Certificate Rotated'].safeParse(rotated!.detail).success).toBe(true);

    // the old certificate is refused (CONNACK not authorized), the new one admitted
    await expect(fleet.connect(device, device.chainPem)).rejects.toThrow(/Not authorized/);
    const again = await fleet.connect({ ...outcome, thingName: 'rot-1' }, device.chainPem);
    await again.endAsync();
  });

  it('a device not in the rotation group is rejected with DEVICE_NOT_WHITELISTED', async () => {
    const device = await fleet.enroll('rot-outsider');
    const failure = await rotateDevice({
      thingName: 'rot-outsider',
      keyPem: device.privateKeyPem,
      certificatePem: device.certificatePem,
      caPem: device.chainPem,
      mqttUrl: cf.mqttUrl,
      timeoutMs: 15_000,
    }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(RotationFailedError);
    expect(failure).toMatchObject({ stage: 'get', reason: 'DEVICE_NOT_WHITELISTED' });
    expect(await cf.registry.listThingPrincipals('rot-outsider')).toHaveLength(1);
  });

  it('a device cannot publish to another thing’s topic: its connection is closed and nothing is vended', async () => {
    const mallory = await fleet.enroll('rot-mallory', { thingGroup: GROUP });
    const victim = await fleet.enroll('rot-victim', { thingGroup: GROUP });
    const m = await fleet.connect(mallory, mallory.chainPem);
    const closed = new Promise<void>((r) => m.once('close', () => r()));
    const csr = await makeCsr({ name: 'CN=rot-victim' });
    m.publish('cdf/certificates/rot-victim/get', JSON.stringify({ csr: csr.pem }), { qos: 1 });
    await closed;
    await new Promise((r) => setTimeout(r, 300));
    expect(await cf.registry.listThingPrincipals('rot-victim')).toEqual([
      `arn:aws:iot:local:000000000000:cert/${victim.certificateId}`,
    ]);
    expect(await cf.registry.listThingGroupsForThing('rot-victim')).toEqual([GROUP]);
  });

  it.each([
    ['error/tampered CSR → CSR_SIGNATURE_INVALID', 'rot-tamper', 'CSR_SIGNATURE_INVALID'],
    ['error/CN mismatch → CSR_CN_MISMATCH', 'rot-cn', 'CSR_CN_MISMATCH'],
  ])('%s', async (_name, thingName, reason) => {
    const device = await fleet.enroll(thingName, { thingGroup: GROUP });
    const c = await fleet.connect(device, device.chainPem);
    let csrPem: string;
    if (reason === 'CSR_CN_MISMATCH') {
      csrPem = (await makeCsr({ name: 'CN=someone-else' })).pem;
    } else {
      // flip one bit of the signature: the CSR parses but no longer verifies
      const csr = await makeCsr({ name: `CN=${thingName}` });
      const der = Buffer.from(csr.der);
      der[der.length - 5]! ^= 0x01;
      csrPem = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE REQUEST-----\n`;
    }
    const reply = await exchange(c, thingName, 'get', JSON.stringify({ csr: csrPem }));
    expect(reply).toEqual({ topic: `cdf/certificates/${thingName}/get/rejected`, body: { message: reason } });
    expect(await cf.registry.listThingPrincipals(thingName)).toHaveLength(1);
    await c.endAsync();
  });

  it('a CSR without a previous certificate gets the CDK’s device policy, which the local runtime created', async () => {
    const policy = await cf.registry.getPolicy(DEFAULT_ROTATION_DEVICE_POLICY_NAME);
    expect(JSON.parse(policy!.document)).toEqual(
      rotationDevicePolicyDocument({ partition: 'aws', region: 'local', account: '000000000000' }),
    );
    const device = await fleet.enroll('rot-policy', { thingGroup: GROUP });
    const c = await fleet.connect(device, device.chainPem);
    const csr = await makeCsr({ name: 'CN=rot-policy' });
    const reply = await exchange(c, 'rot-policy', 'get', JSON.stringify({ csr: csr.pem }));
    await c.endAsync();
    expect(reply.topic).toBe('cdf/certificates/rot-policy/get/accepted');
    const certificateId = reply.body.certificateId as string;
    expect(await cf.registry.listAttachedPolicies(`arn:aws:iot:local:000000000000:cert/${certificateId}`)).toEqual([
      DEFAULT_ROTATION_DEVICE_POLICY_NAME,
    ]);
  });

  it('the pre-created package flow activates the package’s certificate and the zip downloads with plain fetch', async () => {
    const device = await fleet.enroll('rot-pkg', { thingGroup: GROUP });
    // the package: a second certificate for the thing, registered INACTIVE, zipped with its key
    const pkg = await call<Device>('POST', '/certificates/device', { issuerId: issuingCaId, thingName: 'rot-pkg' });
    await cf.registry.register({ certificatePem: pkg.body.certificatePem, status: 'INACTIVE' });
    const { zip } = new ZipChunkBuilder()
      .add('rot-pkg/certificate.pem', Buffer.from(pkg.body.certificatePem))
      .add('rot-pkg/private.key', Buffer.from(pkg.body.privateKeyPem))
      .finish();
    await cf.batchDeps.objects.put(packageKey('rot-pkg'), zip, {
      contentType: 'application/zip',
      metadata: { certificateid: pkg.body.certificateId },
    });

    const c = await fleet.connect(device, device.chainPem);
    const reply = await exchange(c, 'rot-pkg', 'get', '');
    await c.endAsync();
    expect(reply.topic).toBe('cdf/certificates/rot-pkg/get/accepted');
    expect(reply.body).toMatchObject({ deviceId: 'rot-pkg', action: 'get' });
    const location = String(reply.body.location);
    expect(location).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//);
    const res = await fetch(location);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(zip)).toBe(true);
    expect((await cf.registry.describeCertificate(pkg.body.certificateId))?.status).toBe('ACTIVE');
    expect(await cf.registry.listThingPrincipals('rot-pkg')).toContain(
      `arn:aws:iot:local:000000000000:cert/${pkg.body.certificateId}`,
    );
    // the device now connects with the package's certificate
    const next = await fleet.connect({ ...pkg.body, thingName: 'rot-pkg' }, device.chainPem);
    await next.endAsync();
  });

  it('mosquitto_pub and mosquitto_sub complete mTLS connects with a certflow device certificate and exchange a message with the workflow', async () => {
    // a thing outside the group: its get is answered on …/get/rejected by the rotation-get workflow
    const device = await fleet.enroll('rot-mosquitto');
    const tls = [
      '--cafile',
      file('mosq-ca.pem', device.chainPem),
      '--cert',
      file('mosq.crt', device.certificatePem),
      '--key',
      file('mosq.key', device.privateKeyPem),
    ];
    const [, port] = /:(\d+)$/.exec(cf.mqttUrl)!;
    const common = ['-h', '127.0.0.1', '-p', port!, '-i', 'rot-mosquitto', '-q', '1', '-c', ...tls];
    // one client id, so one connection at a time: a persistent session (-c) subscribes, the get is published in
    // the same session, and the reply queued for the session is read by the next connect
    const subscribe = await run('mosquitto_sub', [...common, '-t', 'cdf/certificates/rot-mosquitto/get/+', '-W', '1']);
    expect(subscribe.stderr).not.toMatch(/refused|error/i);
    const publish = await run('mosquitto_pub', [...common, '-t', 'cdf/certificates/rot-mosquitto/get', '-m', '{}']);
    expect(publish).toMatchObject({ code: 0 });
    const received = await run('mosquitto_sub', [
      ...common,
      '-t',
      'cdf/certificates/rot-mosquitto/get/+',
      '-C',
      '1',
      '-W',
      '10',
      '-v',
    ]);
    expect(received.code).toBe(0);
    expect(received.stdout.trim()).toBe(
      'cdf/certificates/rot-mosquitto/get/rejected {"message":"DEVICE_NOT_WHITELISTED"}',
    );
  });

  it('`certflow device rotate` completes a rotation and writes the new key and certificate', async () => {
    const device = await fleet.enroll('rot-cli', { thingGroup: GROUP });
    const out = join(dir, 'rot-cli-out');
    const cli = await run(
      process.execPath,
      [
        resolve(__dirname, '..', '..', 'bin', 'certflow.js'),
        'device',
        'rotate',
        '--thing',
        'rot-cli',
        '--key',
        file('cli.key', device.privateKeyPem),
        '--cert',
        file('cli.crt', device.certificatePem + device.chainPem),
        '--mqtt',
        cf.mqttUrl,
        '--out',
        out,
        '--timeout',
        '15',
      ],
      40_000,
    );
    expect(cli.stderr).toMatch(/rotation complete/);
    expect(cli.code).toBe(0);
    const result = JSON.parse(cli.stdout) as { certificateId: string; previousCertificateId: string };
    expect(result.previousCertificateId).toBe(device.certificateId);
    const certificate = readFileSync(join(out, 'certificate.pem'), 'utf8');
    const key = readFileSync(join(out, 'private.key'), 'utf8');
    const chain = file('cli-chain.pem', device.chainPem);
    expect((await openssl(['verify', '-CAfile', chain, join(out, 'certificate.pem')])).code).toBe(0);
    const c = await fleet.connect(
      { thingName: 'rot-cli', privateKeyPem: key, certificatePem: certificate },
      device.chainPem,
    );
    await c.endAsync();
    expect(await cf.registry.describeCertificate(result.certificateId)).toMatchObject({ status: 'ACTIVE' });

    // and a rejection is a clear message with its reason and exit code 3
    const outsider = await fleet.enroll('rot-cli-outsider');
    const refused = await run(process.execPath, [
      resolve(__dirname, '..', '..', 'bin', 'certflow.js'),
      'device',
      'rotate',
      '--thing',
      'rot-cli-outsider',
      '--key',
      file('cli2.key', outsider.privateKeyPem),
      '--cert',
      file('cli2.crt', outsider.certificatePem),
      '--ca',
      chain,
      '--mqtt',
      cf.mqttUrl,
    ]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/rotation failed \(get\): certflow rejected the get: DEVICE_NOT_WHITELISTED/);
  });

  it('the broker trusts a CA created while it runs, and stops trusting it once it is revoked', async () => {
    const cell = await call<{ caId: string }>('POST', `/cas/${cf.bootstrap.rootCaId}/intermediates`, {
      subject: { commonName: 'Cell R' },
    });
    expect(cell.status).toBe(201);
    await cf.bus.drain();
    const device = await fleet.enroll('rot-cell', { issuerId: cell.body.caId });
    const c = await fleet.connect(device, device.chainPem);
    await c.endAsync();
    expect((await call('POST', `/cas/${cell.body.caId}/revoke`, { reason: 'cACompromise' })).status).toBe(200);
    await cf.bus.drain();
    // the device's TLS stack sends Cell R along (it holds it), so the broker refuses it by the chain: CONNACK 5
    await expect(fleet.connect(device, device.chainPem)).rejects.toThrow(/Not authorized/);
  });

  it('the broker presents a server certificate from the issuing CA for 127.0.0.1 and localhost, kept across restarts', async () => {
    const stored = JSON.parse(readFileSync(join(cf.dataDir, 'mqtt', 'server.json'), 'utf8')) as {
      certificateId: string;
      certificatePem: string;
    };
    const root = await call<{ certificatePem: string }>('GET', `/cas/${cf.bootstrap.rootCaId}`);
    const rootFile = file('root-ca.pem', root.body.certificatePem);
    const [, port] = /:(\d+)$/.exec(cf.mqttUrl)!;
    const handshake = await run('sh', [
      '-c',
      `openssl s_client -connect 127.0.0.1:${port} -CAfile ${rootFile} -verify_ip 127.0.0.1 -verify_return_error -showcerts </dev/null 2>&1`,
    ]);
    expect(handshake.stdout).toMatch(/Verify return code: 0 \(ok\)/);
    expect(handshake.stdout).toMatch(/i:.*certflow Development Issuing CA/);
    const served = file(
      'served.pem',
      /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/.exec(handshake.stdout)![0],
    );
    expect((await openssl(['x509', '-in', served, '-noout', '-ext', 'subjectAltName'])).stdout).toMatch(
      /DNS:localhost, IP Address:127\.0\.0\.1/,
    );
    expect(
      (await openssl(['x509', '-in', served, '-noout', '-fingerprint', '-sha256'])).stdout
        .replace(/:/g, '')
        .toLowerCase(),
    ).toContain(stored.certificateId);

    // a restart on the same data directory keeps the broker's certificate and the registry: a rotated device connects
    const device = await fleet.enroll('rot-restart', { thingGroup: GROUP });
    const dataDir = cf.dataDir;
    await cf.close();
    cf = await startLocal(deviceRuntimeOptions(dataDir));
    const again = JSON.parse(readFileSync(join(dataDir, 'mqtt', 'server.json'), 'utf8')) as { certificateId: string };
    expect(again.certificateId).toBe(stored.certificateId);
    const c = await fleet.connect(device, device.chainPem);
    await c.endAsync();
  });
});
