/**
 * Revocation reaches the device registry, end to end on the local runtime over real MQTT with mutual TLS: a device
 * certificate revoked through the CA API becomes REVOKED in the local registry (the registry-revocation workflow,
 * started by the same rule pattern as on AWS), the broker drops the connected device and refuses it on reconnect,
 * and another device of the same CA still connects; openssl -crl_check agrees that the certificate is revoked.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { startLocal, type LocalCertflow } from '../../local/certflow';
import { deviceFleet, deviceRuntimeOptions, type Device } from '../helpers/devices';
import { openssl } from '../helpers/openssl';

jest.setTimeout(60_000);

const dir = mkdtempSync(join(tmpdir(), 'certflow-revocation-e2e-'));
let cf: LocalCertflow;
let cellId: string;
let rootId: string;
/** the CAs that verify the broker's server certificate (the development CAs) and the test's own */
let trustPem: string;
const fleet = deviceFleet(() => cf);

beforeAll(async () => {
  cf = await startLocal(deviceRuntimeOptions(join(dir, 'data')));
  // a fresh root and cell, so that the CRL lists only what this test revokes
  const root = await call<{ caId: string }>('POST', '/cas/root', { subject: { commonName: 'Revocation Test Root' } });
  rootId = root.body.caId;
  const cell = await call<{ caId: string }>('POST', `/cas/${rootId}/intermediates`, {
    subject: { commonName: 'Revocation Test Cell' },
  });
  cellId = cell.body.caId;
  await cf.bus.drain();
  trustPem = (await cf.caDeps.cas.list()).map((ca) => ca.certificatePem).join('');
});
afterAll(async () => {
  await fleet.close();
  await cf?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function call<T>(method: string, path: string, body?: unknown, accept?: string) {
  const res = await fetch(`${cf.url}${path}`, {
    method,
    headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(accept ? { accept } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, text, body: (text.startsWith('{') ? JSON.parse(text) : {}) as T };
}

/** a device of the test's cell (or of `issuerId`), registered ACTIVE and attached to its thing */
const enroll = (thingName: string, issuerId: string = cellId): Promise<Device> => fleet.enroll(thingName, { issuerId });
/** connects as the thing, trusting every certflow CA known when the test last looked */
const connect = (device: Device): Promise<MqttClient> => fleet.connect(device, trustPem);

/** resolves when the broker closes the client's connection; fails after 10 s */
const closed = (c: MqttClient): Promise<void> =>
  new Promise((resolve, reject) => {
    if (!c.connected) return resolve();
    const timer = setTimeout(() => reject(new Error(`${c.options.clientId} still connected after 10 s`)), 10_000);
    c.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });

describe('a revoked device certificate stops connecting', () => {
  it('disconnects the connected device, refuses its reconnect, keeps its sibling connected; openssl agrees', async () => {
    const victim = await enroll('rev-victim');
    const sibling = await enroll('rev-sibling');
    const victimClient = await connect(victim);
    const siblingClient = await connect(sibling);
    const dropped = closed(victimClient);

    const res = await call<{ status: string }>('POST', `/certificates/${victim.certificateId}/revoke`, {
      reason: 'keyCompromise',
    });
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('revoked');

    // the broker drops the connected client once the registry says REVOKED
    await dropped;
    await cf.bus.drain();
    expect((await cf.registry.describeCertificate(victim.certificateId))?.status).toBe('REVOKED');
    expect((await cf.registry.describeCertificate(sibling.certificateId))?.status).toBe('ACTIVE');

    // refused on reconnect (CONNACK 5, not authorized); the sibling of the same CA is still connected and connects anew
    await expect(connect(victim)).rejects.toThrow(/Not authorized/);
    expect(siblingClient.connected).toBe(true);
    const again = await connect(sibling);
    expect(again.connected).toBe(true);

    // openssl, with the cell's and the root's CRLs: the victim is revoked, the sibling is not
    const crl = await call('GET', `/cas/${cellId}/crl`, undefined, 'application/x-pem-file');
    const rootCrl = await call('GET', `/cas/${rootId}/crl`, undefined, 'application/x-pem-file');
    expect(crl.text).toMatch(/BEGIN X509 CRL/);
    const bundle = join(dir, 'trust.pem');
    writeFileSync(bundle, victim.chainPem + crl.text + rootCrl.text);
    const victimFile = join(dir, 'victim.pem');
    const siblingFile = join(dir, 'sibling.pem');
    writeFileSync(victimFile, victim.certificatePem);
    writeFileSync(siblingFile, sibling.certificatePem);
    const bad = await openssl(['verify', '-crl_check', '-CAfile', bundle, victimFile]);
    expect(bad.code).not.toBe(0);
    expect(`${bad.stdout}${bad.stderr}`).toMatch(/certificate revoked/);
    expect((await openssl(['verify', '-crl_check', '-CAfile', bundle, siblingFile])).stdout.trim()).toBe(
      `${siblingFile}: OK`,
    );
  });

  it('a replayed revocation event changes nothing; a certificate never registered is reported, not failed', async () => {
    const device = await enroll('rev-replay');
    await call('POST', `/certificates/${device.certificateId}/revoke`, { reason: 'superseded' });
    await cf.bus.drain();
    const event = cf.bus.history.find(
      (e) => e['detail-type'] === 'Certificate Revoked' && e.detail.certificateId === device.certificateId,
    );
    expect(event).toBeDefined();
    const replay = await cf.registryRevocationRunner.start(`replay-${event!.id}`, event!).result;
    expect(replay).toEqual({ certificateId: device.certificateId, outcome: 'already-revoked' });
    expect((await cf.registry.describeCertificate(device.certificateId))?.status).toBe('REVOKED');

    // issued by the API but never registered with the registry
    const loose = await call<Device>('POST', '/certificates/device', { issuerId: cellId, thingName: 'rev-loose' });
    expect(loose.status).toBe(201);
    await cf.bus.drain(); // the inventory records it
    expect((await call('POST', `/certificates/${loose.body.certificateId}/revoke`, {})).status).toBe(200);
    await cf.bus.drain();
    const looseEvent = cf.bus.history.find(
      (e) => e['detail-type'] === 'Certificate Revoked' && e.detail.certificateId === loose.body.certificateId,
    );
    const outcome = await cf.registryRevocationRunner.start(`loose-${looseEvent!.id}`, looseEvent!).result;
    expect(outcome).toEqual({ certificateId: loose.body.certificateId, outcome: 'not-registered' });
    expect(await cf.registry.describeCertificate(loose.body.certificateId)).toBeUndefined();
  });

  it('the broker also drops a device whose certificate is set INACTIVE in the registry, and refuses it after', async () => {
    const device = await enroll('rev-inactive');
    const c = await connect(device);
    const dropped = closed(c);
    await cf.registry.updateCertificateStatus(device.certificateId, 'INACTIVE');
    await dropped;
    await expect(connect(device)).rejects.toThrow(/Not authorized/);
    // active again: admitted again
    await cf.registry.updateCertificateStatus(device.certificateId, 'ACTIVE');
    expect((await connect(device)).connected).toBe(true);
  });

  it('a compromise response (CA revoked) drops and refuses every connected device the CA issued', async () => {
    const cell = await call<{ caId: string }>('POST', `/cas/${rootId}/intermediates`, {
      subject: { commonName: 'Compromised Cell' },
    });
    await cf.bus.drain();
    trustPem = (await cf.caDeps.cas.list()).map((ca) => ca.certificatePem).join('');
    const devices = [await enroll('rev-cell-0', cell.body.caId), await enroll('rev-cell-1', cell.body.caId)];
    const connected = await Promise.all(devices.map(connect));
    const dropped = Promise.all(connected.map(closed));
    const res = await call<{ certificatesRevoked: number }>('POST', `/cas/${cell.body.caId}/revoke`, {});
    expect(res.status).toBe(200);
    expect(res.body.certificatesRevoked).toBe(2);
    await dropped;
    await cf.bus.drain();
    for (const device of devices) {
      expect((await cf.registry.describeCertificate(device.certificateId))?.status).toBe('REVOKED');
    }
    // refused on reconnect (the broker no longer trusts the revoked cell, and the certificate is REVOKED)
    await expect(connect(devices[0]!)).rejects.toThrow();
  });
});
