/**
 * Bulk issuance end to end on the local runtime: real HTTP on 127.0.0.1, the real ASL run by
 * aws-local-stepfunctions, dynalite, s3rver and worker threads; zips checked with unzip, certificates with openssl.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EVENT_SCHEMAS } from '../../lambdas/core/events';
import { startLocal, type LocalCertflow } from '../../local/certflow';
import { openssl } from '../helpers/openssl';
import { unzipList, unzipRead, unzipTest } from '../helpers/zip';

jest.setTimeout(120_000);

const dirs: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'certflow-e2e-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

interface TaskView {
  taskId: string;
  status: string;
  chunksPending: number;
  chunksTotal: number;
  quantity: number;
  error?: { code: string; message: string };
}

async function post(cf: LocalCertflow, body: unknown, headers: Record<string, string> = {}, supplier = 'demo') {
  const res = await fetch(`${cf.url}/supplier/${supplier}/certificates`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { res, body: (await res.json()) as { taskId: string; status: string; code?: string; message?: string } };
}

async function waitFor(
  cf: LocalCertflow,
  taskId: string,
  status: string[] = ['complete', 'failed'],
): Promise<TaskView> {
  for (let i = 0; i < 600; i++) {
    const task = (await (await fetch(`${cf.url}/certificates/${taskId}/task`)).json()) as TaskView;
    if (status.includes(task.status)) return task;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`task ${taskId} did not reach ${status.join('/')}`);
}

async function downloadZip(cf: LocalCertflow, taskId: string): Promise<string> {
  const res = await fetch(`${cf.url}/certificates/${taskId}`, { headers: { accept: 'application/zip' } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('application/zip');
  const file = join(tempDir(), `${taskId}.zip`);
  writeFileSync(file, Buffer.from(await res.arrayBuffer()));
  return file;
}

describe('bulk issuance on the local runtime', () => {
  let cf: LocalCertflow;
  let dataDir: string;
  let chunkGate: Promise<void> | undefined;
  let failChunk: number | undefined;

  beforeAll(async () => {
    dataDir = tempDir();
    cf = await startLocal({
      dataDir,
      port: 0,
      workers: 2,
      retryIntervalMs: 0,
      bulk: { chunkSize: 40 },
      beforeChunk: async ({ index }) => {
        if (chunkGate) await chunkGate;
        if (failChunk === index)
          throw Object.assign(new Error(`injected failure in chunk ${index}`), { name: 'InjectedChunkError' });
      },
    });
  });
  afterAll(async () => cf?.close());

  it('CDF walkthrough, quantity only: 202 with location and x-taskid, then a complete zip of 100 certificates', async () => {
    const { res, body } = await post(cf, { quantity: 100 });
    expect(res.status).toBe(202);
    expect(body.status).toBe('pending');
    expect(res.headers.get('location')).toBe(`/certificates/${body.taskId}`);
    expect(res.headers.get('x-taskid')).toBe(body.taskId);
    const task = await waitFor(cf, body.taskId);
    expect(task).toMatchObject({ status: 'complete', quantity: 100, chunksTotal: 3, chunksPending: 0 });
    const zip = await downloadZip(cf, body.taskId);
    expect(unzipTest(zip)).toMatch(/No errors detected/);
    const entries = unzipList(zip);
    expect(entries.filter((e) => e.endsWith('/certificate.pem'))).toHaveLength(100);
    expect(entries.filter((e) => e.endsWith('/private.key'))).toHaveLength(100);
    expect(entries.filter((e) => e.endsWith('/public.key'))).toHaveLength(100);
    expect(entries).toContain('manifest.csv');
    const manifest = unzipRead(zip, 'manifest.csv').trim().split('\n');
    expect(manifest[0]).toBe('name,path,certificateId,serialNumber,notAfter');
    expect(manifest).toHaveLength(101);
    expect(new Set(manifest.slice(1).map((l) => l.split(',')[2])).size).toBe(100);
  });

  it('CDF walkthrough, certInfo + increment + includeCA: names count up in hex and every sampled certificate verifies with openssl', async () => {
    const { res, body } = await post(cf, {
      quantity: 5,
      certInfo: {
        commonName: '`templateFoo::`AB1CD79EF${increment(90)}',
        organization: 'Acme',
        organizationalUnit: 'Fleet',
        locality: 'Seattle',
        stateName: 'WA',
        country: 'US',
        emailAddress: 'iot@example.com',
        includeCA: true,
        daysExpiry: 30,
      },
    });
    expect(res.status).toBe(202);
    const task = await waitFor(cf, body.taskId);
    expect(task.quantity).toBe(90);
    expect(task.status).toBe('complete');
    const zip = await downloadZip(cf, body.taskId);
    unzipTest(zip);
    const names = unzipList(zip)
      .filter((e) => e.endsWith('/certificate.pem'))
      .map((e) => e.split('/')[0]);
    expect(names[0]).toBe('templateFoo__AB1CD79EF');
    expect(names).toContain('templateFoo__AB1CD7A48'); // 0x…79EF + 89
    const dir = tempDir();
    for (const name of [names[0]!, names[45]!, names[89]!]) {
      const cert = join(dir, `${name}.pem`);
      const chain = join(dir, `${name}-chain.pem`);
      writeFileSync(cert, unzipRead(zip, `${name}/certificate.pem`));
      writeFileSync(chain, unzipRead(zip, `${name}/ca-chain.pem`));
      const verify = await openssl(['verify', '-CAfile', chain, '-purpose', 'sslclient', cert]);
      expect(verify.stdout.trim()).toBe(`${cert}: OK`);
      const text = (await openssl(['x509', '-in', cert, '-noout', '-subject', '-enddate'])).stdout;
      expect(text).toMatch(
        new RegExp(
          `subject=C = US, ST = WA, L = Seattle, O = Acme, OU = Fleet, CN = templateFoo::${name.slice(13)}, emailAddress = iot@example.com`,
        ),
      );
      const key = join(dir, `${name}.key`);
      writeFileSync(key, unzipRead(zip, `${name}/private.key`));
      const pubFromKey = (await openssl(['pkey', '-in', key, '-pubout'])).stdout;
      expect(pubFromKey).toBe((await openssl(['x509', '-in', cert, '-noout', '-pubkey'])).stdout);
    }
  });

  it('CDF walkthrough, list and static generators', async () => {
    const list = await post(cf, {
      certInfo: { commonName: '`dev::`${list}', commonNameList: ['alpha', 'beta', 'gamma'] },
    });
    const stat = await post(cf, { quantity: 4, certInfo: { commonName: '`fixed-`Name${static}' } });
    expect((await waitFor(cf, list.body.taskId)).status).toBe('complete');
    expect((await waitFor(cf, stat.body.taskId)).status).toBe('complete');
    const listZip = await downloadZip(cf, list.body.taskId);
    expect(unzipList(listZip).filter((e) => e.endsWith('/certificate.pem'))).toEqual([
      'dev__ALPHA/certificate.pem',
      'dev__BETA/certificate.pem',
      'dev__GAMMA/certificate.pem',
    ]);
    const staticZip = await downloadZip(cf, stat.body.taskId);
    // the same name four times: folders get the certificate's index so nothing is overwritten
    expect(unzipList(staticZip).filter((e) => e.endsWith('/certificate.pem'))).toEqual(
      [0, 1, 2, 3].map((i) => `fixed-NAME-${i}/certificate.pem`),
    );
  });

  it('answers 303 to the task while the batch runs, and a presigned URL that plain fetch downloads when done', async () => {
    let open!: () => void;
    chunkGate = new Promise<void>((r) => (open = r));
    const { body } = await post(cf, { quantity: 100 });
    const running = await fetch(`${cf.url}/certificates/${body.taskId}`, { redirect: 'manual' });
    expect(running.status).toBe(303);
    expect(running.headers.get('location')).toBe(`/certificates/${body.taskId}/task`);
    open();
    chunkGate = undefined;
    expect((await waitFor(cf, body.taskId)).status).toBe('complete');
    const urlsRes = await fetch(`${cf.url}/certificates/${body.taskId}?downloadtype=signedUrl`);
    expect(urlsRes.status).toBe(200);
    const urls = (await urlsRes.json()) as string[];
    expect(urls).toHaveLength(1); // the batch zip: the chunk zips (private keys) are deleted once it is complete
    // nothing of the chunks is left under the batch prefix once the workflow has ended (it deletes them after it
    // has marked the task complete and announced the batch), only the request and the batch zip
    for (let i = 0; i < 100 && cf.runner.describe(body.taskId)?.status === 'RUNNING'; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(cf.runner.describe(body.taskId)?.status).toBe('SUCCEEDED');
    const left = await cf.batchDeps.objects.list(`batches/${body.taskId}/`);
    expect(left.sort()).toEqual([`batches/${body.taskId}/certificates.zip`, `batches/${body.taskId}/request.json`]);
    let total = 0;
    for (const url of urls) {
      expect(new URL(url).hostname).toBe('127.0.0.1');
      const part = await fetch(url);
      expect(part.status).toBe(200);
      const file = join(tempDir(), 'part.zip');
      writeFileSync(file, Buffer.from(await part.arrayBuffer()));
      unzipTest(file);
      total += unzipList(file).filter((e) => e.endsWith('/certificate.pem')).length;
    }
    expect(total).toBe(100);
  });

  it.each([
    ['error/unknown field', { quantity: 1, colour: 'red' }, 'INVALID_REQUEST', /colour/],
    ['error/quantity 0', { quantity: 0 }, 'INVALID_REQUEST', /quantity/],
    ['error/no quantity', {}, 'INVALID_REQUEST', /quantity/],
    [
      'error/country of 3 letters',
      { quantity: 1, certInfo: { country: 'USA' } },
      'INVALID_SUBJECT',
      /certInfo\.country/,
    ],
    ['error/daysExpiry 826', { quantity: 1, certInfo: { daysExpiry: 826 } }, 'INVALID_REQUEST', /daysExpiry/],
    [
      'error/non-hex increment',
      { certInfo: { commonName: 'XYZ${increment(3)}' } },
      'INVALID_COMMON_NAME',
      /hexadecimal/,
    ],
    ['error/list without names', { certInfo: { commonName: '${list}' } }, 'INVALID_COMMON_NAME', /commonNameList/],
    ['error/unknown key type', { quantity: 1, keyType: 'dsa' }, 'INVALID_REQUEST', /keyType/],
  ])('%s → 400 with a code and a message naming the field', async (_n, requestBody, code, message) => {
    const { res, body } = await post(cf, requestBody);
    expect(res.status).toBe(400);
    expect(body.code).toBe(code);
    expect(body.message).toMatch(message);
  });

  it('answers 400 to malformed JSON, 404 to an unknown supplier or task, 415 to an unknown Accept', async () => {
    const bad = await fetch(`${cf.url}/supplier/demo/certificates`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"quantity":',
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { code: string }).code).toBe('INVALID_JSON');
    const supplier = await post(cf, { quantity: 1 }, {}, 'nobody');
    expect(supplier.res.status).toBe(404);
    expect(supplier.body.code).toBe('SUPPLIER_NOT_FOUND');
    const task = await fetch(`${cf.url}/certificates/00000000-0000-0000-0000-000000000000/task`);
    expect(task.status).toBe(404);
    expect(((await task.json()) as { code: string }).code).toBe('TASK_NOT_FOUND');
    const accept = await fetch(`${cf.url}/certificates/x/task`, { headers: { accept: 'text/html' } });
    expect(accept.status).toBe(415);
    const cdf = await post(cf, { quantity: 1 }, { accept: 'application/vnd.aws-cdf-v1.0+json' });
    expect(cdf.res.status).toBe(202);
    expect(cdf.res.headers.get('content-type')).toBe('application/vnd.aws-cdf-v1.0+json');
  });

  it('returns the same task for a repeated Idempotency-Key, and 409 when the key is reused for another body', async () => {
    const first = await post(cf, { quantity: 3 }, { 'idempotency-key': 'order-42' });
    const again = await post(cf, { quantity: 3 }, { 'idempotency-key': 'order-42' });
    expect(again.res.status).toBe(202);
    expect(again.body.taskId).toBe(first.body.taskId);
    const other = await post(cf, { quantity: 4 }, { 'idempotency-key': 'order-42' });
    expect(other.res.status).toBe(409);
    expect(other.body.code).toBe('IDEMPOTENCY_KEY_REUSED');
    await waitFor(cf, first.body.taskId);
  });

  it('an injected chunk failure ends the batch failed with a reason, 409 on download and no zip', async () => {
    failChunk = 1;
    const { body } = await post(cf, { quantity: 100 });
    const task = await waitFor(cf, body.taskId);
    failChunk = undefined;
    expect(task.status).toBe('failed');
    expect(task.error?.message).toMatch(/injected failure in chunk 1/);
    // the child recorded its error on the task (chunkFailure) and failed the Map; RecordBatchFailure read it back
    expect(task.error?.code).toBe('CHUNK_FAILED');
    expect(task.error?.message).toMatch(/^chunk 1 failed: /);
    const res = await fetch(`${cf.url}/certificates/${body.taskId}`);
    expect(res.status).toBe(409);
    expect(((await res.json()) as { code: string }).code).toBe('BATCH_FAILED');
    expect(await cf.batchDeps.objects.head(`batches/${body.taskId}/certificates.zip`)).toBeUndefined();
    const failedEvents = cf.bus.history.filter(
      (e) => e['detail-type'] === 'Batch Failed' && e.detail.taskId === body.taskId,
    );
    expect(failedEvents).toHaveLength(1);
    expect(cf.runner.describe(body.taskId)?.status).toBe('FAILED');
  });

  it('emits events that match their published schemas, with no key material', async () => {
    await cf.bus.drain();
    const kinds = new Set(cf.bus.history.map((e) => e['detail-type']));
    for (const kind of ['Certificate Issued', 'Batch Completed', 'Batch Failed', 'CA Created'])
      expect(kinds).toContain(kind);
    for (const event of cf.bus.history) {
      expect(event.source).toBe('certflow');
      const schema = EVENT_SCHEMAS[event['detail-type'] as keyof typeof EVENT_SCHEMAS];
      expect(schema.safeParse(event.detail).success).toBe(true);
      expect(JSON.stringify(event)).not.toMatch(/PRIVATE KEY|BEGIN/);
    }
  });
});

describe('restarting the local runtime during a batch', () => {
  it('resumes the unfinished batch and completes it', async () => {
    const dataDir = tempDir();
    let release!: () => void;
    const blocked = new Promise<void>((r) => (release = r));
    const first = await startLocal({
      dataDir,
      port: 0,
      workers: 1,
      retryIntervalMs: 0,
      bulk: { chunkSize: 20 },
      beforeChunk: ({ index }) => (index >= 2 ? blocked : undefined),
    });
    const { body } = await post(first, { quantity: 100 });
    for (let i = 0; i < 200; i++) {
      const t = (await (await fetch(`${first.url}/certificates/${body.taskId}/task`)).json()) as TaskView;
      if (t.chunksPending <= 3) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await first.close();
    release();

    const second = await startLocal({ dataDir, port: 0, workers: 1, retryIntervalMs: 0, bulk: { chunkSize: 20 } });
    try {
      expect(second.resumed).toEqual([body.taskId]);
      const task = await waitFor(second, body.taskId);
      expect(task.status).toBe('complete');
      const zip = await downloadZip(second, body.taskId);
      unzipTest(zip);
      expect(unzipList(zip).filter((e) => e.endsWith('/certificate.pem'))).toHaveLength(100);
    } finally {
      await second.close();
    }
  });
});
