/**
 * The CA hierarchy, the inventory fed by events, revocation and CRLs, end to end on the local runtime:
 * root → 2 intermediates → 50 device certificates each + a 1,000-certificate batch; revoke one intermediate.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EVENT_SCHEMAS } from '../../lambdas/core/events';
import { startLocal, type LocalCertflow } from '../../local/certflow';
import { suppliersFile } from '../../local/bootstrap';
import { openssl } from '../helpers/openssl';

jest.setTimeout(180_000);

const dir = mkdtempSync(join(tmpdir(), 'certflow-ca-e2e-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let cf: LocalCertflow;
beforeAll(async () => {
  cf = await startLocal({
    dataDir: join(dir, 'data'),
    port: 0,
    workers: 2,
    retryIntervalMs: 0,
    bulk: { chunkSize: 250 },
  });
});
afterAll(async () => cf?.close());

async function call<T = Record<string, unknown>>(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  const res = await fetch(`${cf.url}${path}`, {
    method,
    headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* PEM or DER */
  }
  return { status: res.status, body: parsed as T, text };
}

interface Page {
  items: { certificateId: string; status: string; thingName?: string; kind: string }[];
  nextToken?: string;
}

async function listAll(issuer: string, pageSize: number, status?: string): Promise<Page['items']> {
  const all: Page['items'] = [];
  let token: string | undefined;
  do {
    const q = new URLSearchParams({
      issuer,
      limit: String(pageSize),
      ...(status ? { status } : {}),
      ...(token ? { nextToken: token } : {}),
    });
    const res = await call<Page>('GET', `/certificates?${q}`);
    expect(res.status).toBe(200);
    expect(res.body.items.length).toBeLessThanOrEqual(pageSize);
    all.push(...res.body.items);
    token = res.body.nextToken;
  } while (token);
  return all;
}

async function waitForInventory(issuer: string, count: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    await cf.bus.drain();
    if ((await listAll(issuer, 1000)).length >= count) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`inventory of ${issuer} never reached ${count}`);
}

describe('CA hierarchy, inventory, revocation and CRLs', () => {
  let rootId: string;
  let cellA: string;
  let cellB: string;
  const devicesA: { certificateId: string; certificatePem: string; chainPem: string }[] = [];
  const devicesB: typeof devicesA = [];

  it('creates a root and two intermediates ("cells"); CA keys are never returned', async () => {
    const root = await call<{ caId: string; kind: string; certificatePem: string }>('POST', '/cas/root', {
      subject: { commonName: 'Acme Fleet Root', organization: 'Acme' },
      validityDays: 3650,
      pathLength: 1,
    });
    expect(root.status).toBe(201);
    expect(root.body.kind).toBe('root');
    expect(root.text).not.toMatch(/PRIVATE KEY/);
    rootId = root.body.caId;
    const a = await call<{ caId: string }>('POST', `/cas/${rootId}/intermediates`, {
      subject: { commonName: 'Cell A' },
    });
    const b = await call<{ caId: string }>('POST', `/cas/${rootId}/intermediates`, {
      subject: { commonName: 'Cell B' },
      keyType: 'ec-p384',
    });
    expect([a.status, b.status]).toEqual([201, 201]);
    cellA = a.body.caId;
    cellB = b.body.caId;
    const cas = await call<{ cas: { caId: string; parentId?: string }[] }>('GET', '/cas');
    expect(
      cas.body.cas
        .filter((c) => c.parentId === rootId)
        .map((c) => c.caId)
        .sort(),
    ).toEqual([cellA, cellB].sort());
  });

  it('issues 50 device certificates from each cell and a server certificate', async () => {
    for (let i = 0; i < 50; i++) {
      for (const [cell, list] of [
        [cellA, devicesA],
        [cellB, devicesB],
      ] as const) {
        const res = await call<{
          certificateId: string;
          certificatePem: string;
          chainPem: string;
          privateKeyPem: string;
        }>('POST', '/certificates/device', {
          issuerId: cell,
          thingName: `thing-${cell.slice(0, 4)}-${i}`,
        });
        expect(res.status).toBe(201);
        expect(res.body.privateKeyPem).toMatch(/BEGIN PRIVATE KEY/);
        list.push(res.body);
        // the factory registers the thing and its certificate (all but the last of cell A, which is never registered)
        if (cell === cellB || i < 49) {
          const thingName = `thing-${cell.slice(0, 4)}-${i}`;
          await cf.registry.createThing({ thingName });
          const { certificateArn } = await cf.registry.register({
            certificatePem: res.body.certificatePem,
            status: 'ACTIVE',
          });
          await cf.registry.attachThingPrincipal(thingName, certificateArn);
        }
      }
    }
    const server = await call<{ certificatePem: string }>('POST', '/certificates/server', {
      issuerId: cellB,
      fqdn: 'mqtt.acme.test',
      sans: { ip: ['127.0.0.1'] },
    });
    expect(server.status).toBe(201);
    const file = join(dir, 'server.pem');
    writeFileSync(file, server.body.certificatePem);
    expect((await openssl(['x509', '-in', file, '-noout', '-ext', 'subjectAltName'])).stdout).toMatch(
      /DNS:mqtt\.acme\.test, IP Address:127\.0\.0\.1/,
    );
  });

  it('adds a 1,000-certificate bulk batch signed by cell A', async () => {
    const suppliers = JSON.parse(readFileSync(suppliersFile(cf.dataDir), 'utf8'));
    writeFileSync(
      suppliersFile(cf.dataDir),
      JSON.stringify({ ...suppliers, cellA: { type: 'certflow', caId: cellA } }),
    );
    const post = await call<{ taskId: string }>('POST', '/supplier/cellA/certificates', { quantity: 1000 });
    expect(post.status).toBe(202);
    for (let i = 0; i < 600; i++) {
      const task = await call<{ status: string }>('GET', `/certificates/${post.body.taskId}/task`);
      if (task.body.status === 'complete') break;
      expect(task.body.status).not.toBe('failed');
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  it('lists exactly those certificates by issuer, paginated, in a stable order', async () => {
    await waitForInventory(cellA, 1050);
    const a = await listAll(cellA, 37);
    expect(a).toHaveLength(1050);
    expect(new Set(a.map((c) => c.certificateId)).size).toBe(1050);
    for (const d of devicesA) expect(a.some((c) => c.certificateId === d.certificateId)).toBe(true);
    const again = await listAll(cellA, 500);
    expect(again.map((c) => c.certificateId)).toEqual(a.map((c) => c.certificateId));
    await waitForInventory(cellB, 51);
    expect(await listAll(cellB, 10)).toHaveLength(51);
    const one = await call<{ certificatePem: string; chainPem: string; status: string; thingName: string }>(
      'GET',
      `/certificates/${devicesA[0]!.certificateId}`,
    );
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ status: 'active', certificatePem: devicesA[0]!.certificatePem });
  });

  it('replayed events leave the inventory unchanged', async () => {
    const before = await listAll(cellA, 1000);
    const issued = cf.bus.history.filter((e) => e['detail-type'] === 'Certificate Issued');
    await cf.bus.putEvents(issued.map((e) => ({ Source: e.source, DetailType: e['detail-type'], Detail: e.detail })));
    await cf.bus.drain();
    expect(await listAll(cellA, 1000)).toEqual(before);
  });

  it('revoking a device certificate twice is 409; the CRL lists it and openssl -crl_check rejects it', async () => {
    const victim = devicesB[0]!;
    const first = await call('POST', `/certificates/${victim.certificateId}/revoke`, { reason: 'keyCompromise' });
    expect(first.status).toBe(200);
    const second = await call<{ code: string }>('POST', `/certificates/${victim.certificateId}/revoke`, {
      reason: 'keyCompromise',
    });
    expect(second.status).toBe(409);
    expect(second.body.code).toBe('ALREADY_REVOKED');
    const crl = await call('GET', `/cas/${cellB}/crl`, undefined, { accept: 'application/x-pem-file' });
    expect(crl.text).toMatch(/BEGIN X509 CRL/);
    const rootCrl = await call('GET', `/cas/${rootId}/crl`, undefined, { accept: 'application/x-pem-file' });
    const bundle = join(dir, 'b-trust.pem');
    writeFileSync(bundle, victim.chainPem + crl.text + rootCrl.text);
    const revoked = join(dir, 'b-revoked.pem');
    const healthy = join(dir, 'b-healthy.pem');
    writeFileSync(revoked, victim.certificatePem);
    writeFileSync(healthy, devicesB[1]!.certificatePem);
    const bad = await openssl(['verify', '-crl_check_all', '-CAfile', bundle, revoked]);
    expect(`${bad.stdout}${bad.stderr}`).toMatch(/certificate revoked/);
    expect((await openssl(['verify', '-crl_check_all', '-CAfile', bundle, healthy])).stdout.trim()).toBe(
      `${healthy}: OK`,
    );
  });

  it('revoking cell A revokes its 1,050 certificates, keeps cell B active, and refuses further issuance (409)', async () => {
    const res = await call<{ certificatesRevoked: number; thingsToRotate: number }>('POST', `/cas/${cellA}/revoke`, {
      reason: 'cACompromise',
    });
    expect(res.status).toBe(200);
    expect(res.body.certificatesRevoked).toBe(1050);
    // the 50 things of cell A (batch certificates belong to no thing) now rotate to a healthy CA; the one thing
    // that was never registered is skipped, as AWS IoT would (no thing to add to the group)
    expect(res.body.thingsToRotate).toBe(50);
    expect(await cf.registry.members()).toEqual(
      devicesA
        .slice(0, 49)
        .map((_, i) => `thing-${cellA.slice(0, 4)}-${i}`)
        .sort(),
    );
    expect(await cf.registry.listThingGroupsForThing(`thing-${cellB.slice(0, 4)}-0`)).toEqual([]);
    expect(await listAll(cellA, 1000, 'active')).toHaveLength(0);
    expect(await listAll(cellA, 1000, 'revoked')).toHaveLength(1050);
    expect(await listAll(cellB, 1000, 'active')).toHaveLength(50);
    const refused = await call<{ code: string }>('POST', '/certificates/device', {
      issuerId: cellA,
      thingName: 'late',
    });
    expect(refused.status).toBe(409);
    expect(refused.body.code).toBe('ISSUER_REVOKED');
    expect((await call('POST', `/cas/${cellA}/revoke`, {})).status).toBe(409);
    // the root's CRL now lists cell A: a cell-A leaf fails verification, even one with a valid signature
    const rootCrl = await call('GET', `/cas/${rootId}/crl`, undefined, { accept: 'application/x-pem-file' });
    const cellCrl = await call('GET', `/cas/${cellA}/crl`, undefined, { accept: 'application/x-pem-file' });
    const bundle = join(dir, 'a-trust.pem');
    writeFileSync(bundle, devicesA[1]!.chainPem + rootCrl.text + cellCrl.text);
    const leaf = join(dir, 'a-leaf.pem');
    writeFileSync(leaf, devicesA[1]!.certificatePem);
    const verdict = await openssl(['verify', '-crl_check_all', '-CAfile', bundle, leaf]);
    expect(verdict.code).not.toBe(0);
    expect(`${verdict.stdout}${verdict.stderr}`).toMatch(/certificate revoked/);
  });

  it('every event on the bus matches its published schema and carries no key material', async () => {
    await cf.bus.drain();
    expect(cf.bus.history.length).toBeGreaterThan(0);
    for (const event of cf.bus.history) {
      const schema = EVENT_SCHEMAS[event['detail-type'] as keyof typeof EVENT_SCHEMAS];
      expect(schema).toBeDefined();
      expect(schema.safeParse(event.detail).success).toBe(true);
      expect(JSON.stringify(event.detail)).not.toMatch(/PRIVATE KEY|BEGIN/);
    }
  });

  it.each([
    [
      'error/unknown CA → 404',
      'POST',
      `/cas/${'0'.repeat(64)}/intermediates`,
      { subject: { commonName: 'x' } },
      404,
      'CA_NOT_FOUND',
    ],
    ['error/bad CA id → 400', 'GET', '/cas/not-an-id', undefined, 400, 'INVALID_REQUEST'],
    [
      'error/unknown field → 400',
      'POST',
      '/cas/root',
      { subject: { commonName: 'x' }, colour: 'red' },
      400,
      'INVALID_REQUEST',
    ],
    [
      'error/bad reason → 400',
      'POST',
      `/certificates/${'a'.repeat(64)}/revoke`,
      { reason: 'bored' },
      400,
      'INVALID_REQUEST',
    ],
    [
      'error/unknown certificate → 404',
      'POST',
      `/certificates/${'a'.repeat(64)}/revoke`,
      {},
      404,
      'CERTIFICATE_NOT_FOUND',
    ],
    ['error/list without issuer → 400', 'GET', '/certificates', undefined, 400, 'INVALID_REQUEST'],
  ])('%s', async (_n, method, path, body, status, code) => {
    const res = await call<{ code: string }>(method, path, body);
    expect(res.status).toBe(status);
    expect(res.body.code).toBe(code);
  });
});

describe('expiry sweep', () => {
  it('sends Certificate Expiring once per certificate within the window, and not for later or revoked ones', async () => {
    const sweepDir = mkdtempSync(join(tmpdir(), 'certflow-sweep-'));
    const local = await startLocal({
      dataDir: sweepDir,
      port: 0,
      workers: 1,
      retryIntervalMs: 0,
      expiryWindowDays: 30,
      expirySweepIntervalMs: 0,
    });
    try {
      const post = (body: unknown) =>
        fetch(`${local.url}/certificates/device`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        }).then((r) => r.json() as Promise<{ certificateId: string }>);
      const issuerId = local.bootstrap.issuingCaId;
      const soon = await post({ issuerId, thingName: 'soon', validityDays: 10 });
      const soonRevoked = await post({ issuerId, thingName: 'soon-revoked', validityDays: 12 });
      const later = await post({ issuerId, thingName: 'later', validityDays: 90 });
      await local.bus.drain();
      await fetch(`${local.url}/certificates/${soonRevoked.certificateId}/revoke`, { method: 'POST' });
      await local.bus.drain();

      await local.sweepExpiring();
      const expiring = () =>
        local.bus.history.filter((e) => e['detail-type'] === 'Certificate Expiring').map((e) => e.detail.certificateId);
      expect(expiring()).toEqual([soon.certificateId]);
      expect(expiring()).not.toContain(later.certificateId);
      await local.sweepExpiring();
      expect(expiring()).toEqual([soon.certificateId]); // once per certificate and window
    } finally {
      await local.close();
      rmSync(sweepDir, { recursive: true, force: true });
    }
  });
});

describe('compromise response larger than one slice', () => {
  it('revokes the first slice in the request and the rest in the revoke-issued workflow, then publishes the CRL', async () => {
    const sliceDir = mkdtempSync(join(tmpdir(), 'certflow-slices-'));
    const local = await startLocal({
      dataDir: sliceDir,
      port: 0,
      workers: 1,
      retryIntervalMs: 0,
      revokeSliceSize: 40,
      expirySweepIntervalMs: 0,
    });
    try {
      const api = async (method: string, path: string, body?: unknown) => {
        const res = await fetch(`${local.url}${path}`, {
          method,
          headers: { 'content-type': 'application/json' },
          ...(body ? { body: JSON.stringify(body) } : {}),
        });
        return (await res.json()) as Record<string, unknown>;
      };
      const cell = (await api('POST', `/cas/${local.bootstrap.rootCaId}/intermediates`, {
        subject: { commonName: 'Cell S' },
      })) as { caId: string };
      for (let i = 0; i < 130; i++)
        await api('POST', '/certificates/device', { issuerId: cell.caId, thingName: `s-${i}` });
      await local.bus.drain();
      const result = await api('POST', `/cas/${cell.caId}/revoke`, {});
      expect(result).toMatchObject({ certificatesRevoked: 40, complete: false });
      let executions = local.revokeRunner.list();
      for (let i = 0; i < 100 && executions.some((e) => e.status === 'RUNNING'); i++) {
        await new Promise((r) => setTimeout(r, 100));
        executions = local.revokeRunner.list();
      }
      expect(executions).toHaveLength(1);
      expect(executions[0]!.status).toBe('SUCCEEDED');
      const active = (await api('GET', `/certificates?issuer=${cell.caId}&status=active&limit=1000`)) as {
        items: unknown[];
      };
      const revoked = (await api('GET', `/certificates?issuer=${cell.caId}&status=revoked&limit=1000`)) as {
        items: unknown[];
      };
      expect(active.items).toHaveLength(0);
      expect(revoked.items).toHaveLength(130);
      const crl = await fetch(`${local.url}/cas/${cell.caId}/crl`);
      const file = join(sliceDir, 'cell.crl');
      writeFileSync(file, Buffer.from(await crl.arrayBuffer()));
      const text = (await openssl(['crl', '-inform', 'DER', '-in', file, '-noout', '-text'])).stdout;
      expect(text.match(/Serial Number:/g)).toHaveLength(130);
    } finally {
      await local.close();
      rmSync(sliceDir, { recursive: true, force: true });
    }
  });
});

describe('issuing from an expired CA', () => {
  it('answers 409 ISSUER_EXPIRED once the CA has expired (controlled clock)', async () => {
    const clockDir = mkdtempSync(join(tmpdir(), 'certflow-clock-'));
    let now = new Date();
    const local = await startLocal({
      dataDir: clockDir,
      port: 0,
      workers: 1,
      expirySweepIntervalMs: 0,
      clock: { now: () => now },
    });
    try {
      const post = async (path: string, body: unknown) => {
        const res = await fetch(`${local.url}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      };
      const short = await post(`/cas/${local.bootstrap.rootCaId}/intermediates`, {
        subject: { commonName: 'Short-lived cell' },
        validityDays: 2,
      });
      expect(short.status).toBe(201);
      expect(
        (await post('/certificates/device', { issuerId: short.body.caId, thingName: 'early', validityDays: 1 })).status,
      ).toBe(201);
      now = new Date(now.getTime() + 3 * 86_400_000);
      const late = await post('/certificates/device', {
        issuerId: short.body.caId,
        thingName: 'late',
        validityDays: 1,
      });
      expect(late.status).toBe(409);
      expect(late.body.code).toBe('ISSUER_EXPIRED');
    } finally {
      await local.close();
      rmSync(clockDir, { recursive: true, force: true });
    }
  });
});
