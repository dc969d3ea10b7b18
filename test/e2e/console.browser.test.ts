/**
 * The local console in a real browser: playwright-core driving Debian's chromium on a closed network. Starts a
 * batch from the form, watches it complete, opens its execution history, downloads the zip (unzip -t), finds
 * certificates in the inventory by issuer with pagination, revokes one behind the confirmation (openssl reads the
 * new CRL), and shows the CA tree. Screenshots go to test-artifacts/console/.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { z } from 'zod';
import { startLocal, type LocalCertflow } from '../../local/certflow';
import { openssl } from '../helpers/openssl';
import { unzipList, unzipTest } from '../helpers/zip';

jest.setTimeout(120_000);

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = resolve(__dirname, '../../test-artifacts/console');
const dir = mkdtempSync(join(tmpdir(), 'certflow-console-'));
const QUANTITY = 60;
let inject = false;
const retried = new Set<string>();

let cf: LocalCertflow;
let context: BrowserContext;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  cf = await startLocal({
    dataDir: join(dir, 'data'),
    port: 0,
    workers: 1,
    retryIntervalMs: 0,
    bulk: { chunkSize: 20 },
    // once `inject` is on: chunk 1 fails once with a transient error (retried), chunk 2 fails for good (caught)
    // once chunk 1 is done — a failed chunk stops the Map at once, so chunk 1 would otherwise be aborted mid-retry
    beforeChunk: async ({ taskId, index }) => {
      if (!inject) return;
      if (index === 1 && !retried.has(taskId)) {
        retried.add(taskId);
        throw Object.assign(new Error('injected: throttled'), { name: 'TransientChunkError' });
      }
      if (index === 2) {
        for (const deadline = Date.now() + 30_000; !(await cf.batchDeps.tasks.isChunkDone(taskId, 1));) {
          if (Date.now() > deadline) throw new Error('chunk 1 never finished');
          await new Promise((r) => setTimeout(r, 20));
        }
        await new Promise((r) => setTimeout(r, 300)); // chunk 1's state exits right after its chunk is counted
        throw Object.assign(new Error('injected: the signer is unplugged'), { name: 'InjectedChunkError' });
      }
    },
  });
  // a fresh profile, no network beyond 127.0.0.1 (playwright adds --headless and --no-sandbox itself as well)
  context = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1360, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
    ],
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && pageErrors.push(m.text()));
  // the console loads nothing from anywhere but its own origin
  await context.route(
    (url) => !url.href.startsWith(cf.url),
    (route) => {
      pageErrors.push(`external request ${route.request().url()}`);
      return route.abort();
    },
  );
});

afterAll(async () => {
  await context?.close();
  await cf?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** polls until `check` holds (10 s) */
async function until(check: () => Promise<boolean>): Promise<void> {
  for (const deadline = Date.now() + 10_000; !(await check());) {
    if (Date.now() > deadline) throw new Error('condition not met within 10 s');
    await new Promise((r) => setTimeout(r, 100));
  }
}

const shot = (name: string, fullPage = true) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage });

describe('the local console in chromium', () => {
  let taskId: string;

  it('starts a batch from the form and shows its progress until it completes', async () => {
    await page.goto(`${cf.url}/console`);
    await page.getByRole('heading', { name: 'Batches', level: 2 }).waitFor();
    await page.getByLabel('Supplier').selectOption('demo');
    await page.getByLabel('Quantity').fill(String(QUANTITY));
    await page.getByLabel('Common name template').fill('`console-`A000${increment}');
    await page.getByLabel('Key type').selectOption('ec-p256');
    await page.getByRole('button', { name: 'Start batch' }).click();
    const started = await page
      .getByRole('status')
      .filter({ hasText: /Batch .* started/ })
      .textContent();
    taskId = /Batch (\S+) started/.exec(started ?? '')![1]!;
    const row = page.locator(`#batches-table tr[data-task="${taskId}"]`);
    await row.waitFor();
    await row.getByText('complete', { exact: true }).waitFor({ timeout: 60_000 });
    await row.getByText(`${QUANTITY / 20} / ${QUANTITY / 20} chunks`).waitFor();
    expect(await row.locator('progress').getAttribute('value')).toBe(String(QUANTITY / 20));
    await shot('1-batches');
  });

  it('opens the execution history of the batch, states in order and no key material', async () => {
    const row = page.locator(`#batches-table tr[data-task="${taskId}"]`);
    await row.getByRole('link', { name: 'Execution' }).click();
    await page.getByRole('heading', { name: `Execution ${taskId}` }).waitFor();
    await page.locator('#execution-summary').getByText('SUCCEEDED').waitFor();
    const states = await page.locator('#states-table tbody tr th').allTextContents();
    expect(states[0]).toBe('PlanChunks');
    expect(states.filter((s) => s === 'IssueChunk')).toHaveLength(QUANTITY / 20);
    expect(states.indexOf('AssembleZip')).toBeGreaterThan(states.lastIndexOf('IssueChunk'));
    const events = page.locator('#events-table tbody tr');
    expect(await events.first().locator('td').nth(1).textContent()).toBe('ExecutionStarted');
    expect(await events.last().locator('td').nth(1).textContent()).toBe('ExecutionSucceeded');
    const ids = (await page.locator('#events-table tbody tr td:first-child').allTextContents()).map(Number);
    expect(ids).toEqual(ids.map((_, i) => i + 1));
    // details open with the keyboard
    const first = page.locator('#states-table tbody tr').first().locator('summary');
    await first.focus();
    await page.keyboard.press('Enter');
    await page.locator('#states-table tbody tr').first().locator('pre').first().waitFor();
    expect(await page.content()).not.toMatch(/PRIVATE KEY/);
    await shot('2-execution');
  });

  it('lists the executions of every state machine', async () => {
    await page.getByRole('link', { name: 'Executions', exact: true }).click();
    await page.locator('#executions-table').getByRole('link', { name: taskId }).waitFor();
    const machines = await page.getByLabel('State machine').locator('option').allTextContents();
    for (const runner of cf.runners) expect(machines.some((m) => m.startsWith(runner.stateMachineName))).toBe(true);
    await page.getByLabel('State machine').selectOption('certflow-inventory');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.locator('#executions-table tbody tr td:nth-child(2)').first().getByText('certflow-inventory').waitFor();
    await shot('3-executions');
  });

  it('downloads the zip of the batch', async () => {
    await page.getByRole('link', { name: 'Batches' }).click();
    const row = page.locator(`#batches-table tr[data-task="${taskId}"]`);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      row.getByRole('link', { name: 'Download zip' }).click(),
    ]);
    const file = join(dir, 'batch.zip');
    await download.saveAs(file);
    expect(download.suggestedFilename()).toBe(`certificates-${taskId}.zip`);
    expect(unzipTest(file)).toMatch(/No errors detected/);
    const entries = unzipList(file);
    expect(entries).toContain('manifest.csv');
    expect(entries.filter((e) => e.endsWith('/certificate.pem'))).toHaveLength(QUANTITY);
  });

  it('searches the inventory by issuer, status and expiry, and pages through it', async () => {
    await page.getByRole('link', { name: 'Inventory' }).click();
    const form = page.locator('#inventory-form');
    await form.getByLabel('Issuer').selectOption(cf.bootstrap.issuingCaId);
    await form.getByLabel('Page size').selectOption('25');
    await form.getByRole('button', { name: 'Search' }).click();
    const rows = page.locator('#inventory-table tbody tr[data-certificate]');
    await page.getByText('Page 1').waitFor();
    await until(async () => (await rows.count()) === 25);
    const firstPage = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-certificate')));
    await page.getByRole('button', { name: 'Next page' }).click();
    await page.getByText('Page 2').waitFor();
    const secondPage = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-certificate')));
    expect(secondPage.filter((id) => firstPage.includes(id))).toEqual([]);
    await page.getByRole('button', { name: 'Previous page' }).click();
    await page.getByText('Page 1').waitFor();
    expect(await rows.first().getAttribute('data-certificate')).toBe(firstPage[0]);
    // status filter
    await form.getByLabel('Status').selectOption('revoked');
    await form.getByRole('button', { name: 'Search' }).click();
    await page.getByText('No certificates match.').waitFor();
    await form.getByLabel('Status').selectOption('');
    await form.getByRole('button', { name: 'Search' }).click();
    await until(async () => (await rows.count()) === 25);
    // by expiry, any issuer: the batch's certificates (one year) and the local MQTT broker's server certificate
    // expire within 400 days, the CAs do not
    const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
    await form.getByLabel('Issuer').selectOption('');
    await form.getByLabel('Expiring before', { exact: true }).fill(day(400));
    await form.getByLabel('Page size').selectOption('100');
    await form.getByRole('button', { name: 'Search' }).click();
    await until(async () => (await rows.count()) === QUANTITY + 1);
    const kinds = await page.locator('#inventory-table tbody tr[data-certificate] td:nth-child(3)').allTextContents();
    expect(kinds.filter((k) => k === 'device')).toHaveLength(QUANTITY);
    expect(kinds.filter((k) => k === 'server')).toHaveLength(1);
    await form.getByLabel('Expiring before', { exact: true }).fill(day(1));
    await form.getByRole('button', { name: 'Search' }).click();
    await page.getByText('No certificates match.').waitFor();
    await form.getByLabel('Expiring before', { exact: true }).fill('');
    await form.getByLabel('Issuer').selectOption(cf.bootstrap.issuingCaId);
    await form.getByLabel('Page size').selectOption('25');
    await form.getByRole('button', { name: 'Search' }).click();
    await until(async () => (await rows.count()) === 25);
  });

  it('revokes a certificate only after the confirmation', async () => {
    const row = page.locator('#inventory-table tbody tr[data-certificate]').first();
    const certificateId = (await row.getAttribute('data-certificate'))!;
    const commonName = (await row.locator('th').textContent())!;
    const status = async () =>
      ((await (await fetch(`${cf.url}/certificates/${certificateId}`)).json()) as { status: string }).status;

    // cancelled with the keyboard: nothing happens
    await row.getByRole('button', { name: `Revoke ${commonName}` }).click();
    const dialog = page.getByRole('dialog', { name: 'Revoke certificate?' });
    await dialog.waitFor();
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    await page.getByRole('status').getByText('Revocation cancelled.').waitFor();
    expect(await status()).toBe('active');

    await row.getByRole('button', { name: `Revoke ${commonName}` }).click();
    await dialog.waitFor();
    await dialog.getByLabel('Reason').selectOption('keyCompromise');
    await shot('4-revoke-confirmation', false);
    await dialog.getByRole('button', { name: 'Revoke' }).click();
    await page
      .getByRole('status')
      .getByText(/^Revoked .*CRL #\d+ published/)
      .waitFor();
    const revokedRow = page.locator(`#inventory-table tr[data-certificate="${certificateId}"]`);
    await revokedRow.getByText('revoked', { exact: true }).waitFor();
    expect(await revokedRow.getByRole('button').isDisabled()).toBe(true);
    expect(await status()).toBe('revoked');

    // the independent oracle: the issuer's CRL lists the serial with the reason
    const { serialNumber } = (await (await fetch(`${cf.url}/certificates/${certificateId}`)).json()) as {
      serialNumber: string;
    };
    const crl = Buffer.from(await (await fetch(`${cf.url}/cas/${cf.bootstrap.issuingCaId}/crl`)).arrayBuffer());
    const text = await openssl(['crl', '-inform', 'DER', '-noout', '-text'], crl);
    expect(text.code).toBe(0);
    expect(text.stdout.toUpperCase()).toContain(serialNumber.toUpperCase());
    expect(text.stdout).toContain('Key Compromise');
    await shot('5-inventory');
  });

  it('shows the CA tree: the issuing CA under the root, with status and expiry', async () => {
    await page.getByRole('link', { name: 'CA hierarchy' }).click();
    const root = page.locator(`article[data-ca="${cf.bootstrap.rootCaId}"]`);
    await root.waitFor();
    const nested = page.locator(
      `li:has(> article[data-ca="${cf.bootstrap.rootCaId}"]) > ul article[data-ca="${cf.bootstrap.issuingCaId}"]`,
    );
    await nested.waitFor();
    await nested.getByText('active', { exact: true }).waitFor();
    await nested.getByText(/^expires /).waitFor();
    await shot('6-ca-tree');
    expect(pageErrors).toEqual([]);
  });

  it('shows a failed batch: its reason, the retried chunk and the caught failure in the history', async () => {
    inject = true;
    await page.getByRole('link', { name: 'Batches' }).click();
    await page.getByLabel('Quantity').fill(String(QUANTITY));
    await page.getByRole('button', { name: 'Start batch' }).click();
    const started = await page
      .getByRole('status')
      .filter({ hasText: /Batch .* started/ })
      .textContent();
    const failedId = /Batch (\S+) started/.exec(started ?? '')![1]!;
    const row = page.locator(`#batches-table tr[data-task="${failedId}"]`);
    await row.getByText('failed', { exact: true }).waitFor({ timeout: 60_000 });
    await row.getByText(/chunk 3 failed|InjectedChunkError|signer is unplugged/).waitFor();
    expect(await row.getByRole('link', { name: 'Download zip' }).count()).toBe(0);
    await row.getByRole('link', { name: 'Execution' }).click();
    await page.locator('#execution-summary').getByText('FAILED', { exact: true }).waitFor();
    const states = page.locator('#states-table tbody tr');
    const rowOf = async (name: string, iteration = '') => {
      for (const tr of await states.all()) {
        const cells = await tr.locator('th, td').allTextContents();
        if (cells[0] === name && cells[2] === iteration) return cells;
      }
      throw new Error(`no state row ${name} ${iteration}`);
    };
    // State, Type, Iteration, Status, Started after, Duration, Retries, Details
    expect((await rowOf('IssueChunk', '1'))[3]).toBe('Succeeded');
    expect((await rowOf('IssueChunk', '1'))[6]).toBe('1');
    expect((await rowOf('IssueChunk', '2'))[3]).toMatch(/^Caught.*InjectedChunkError/);
    expect((await rowOf('RecordChunkFailure', '2'))[3]).toBe('Succeeded');
    expect((await rowOf('ChunkFailed', '2'))[3]).toMatch(/^Failed/);
    expect((await rowOf('RecordBatchFailure'))[3]).toBe('Succeeded');
    expect((await rowOf('BatchFailed'))[3]).toMatch(/^Failed/);
    const types = await page.locator('#events-table tbody tr td:nth-child(2)').allTextContents();
    expect(types).toEqual(expect.arrayContaining(['StateRetried', 'StateCaught', 'ExecutionFailed']));
    await shot('7-failed-execution');
    inject = false;
  });

  it('GET /openapi.json documents every route the running server exposes', async () => {
    const doc = (await (await fetch(`${cf.url}/openapi.json`)).json()) as { paths: Record<string, object> };
    expect(cf.routes.length).toBeGreaterThan(0);
    for (const route of cf.routes)
      expect(Object.keys(doc.paths[route.resource] ?? {})).toContain(route.method.toLowerCase());
  });

  it('the running server answers as its OpenAPI document says', async () => {
    type Media = { schema: object };
    type Op = { responses: Record<string, { content?: Record<string, Media> }> };
    const doc = (await (await fetch(`${cf.url}/openapi.json`)).json()) as { paths: Record<string, Record<string, Op>> };
    const check = async (method: string, resource: string, path: string, body?: unknown) => {
      const res = await fetch(`${cf.url}${path}`, {
        method,
        redirect: 'manual',
        headers: { accept: 'application/json', ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      const documented = doc.paths[resource]![method.toLowerCase()]!.responses[String(res.status)];
      expect([method, resource, res.status, documented !== undefined]).toEqual([method, resource, res.status, true]);
      const schema = documented!.content!['application/json']!.schema;
      const result = z.fromJSONSchema(schema as never).safeParse(await res.json());
      if (!result.success) throw new Error(`${method} ${path} ${res.status}: ${result.error.message}`);
      return res.status;
    };
    const issuer = cf.bootstrap.issuingCaId;
    const { items } = (await (await fetch(`${cf.url}/certificates?issuer=${issuer}&limit=2`)).json()) as {
      items: { certificateId: string }[];
    };
    const [{ taskId }] = (
      (await (await fetch(`${cf.url}/console/api/batches`)).json()) as { batches: { taskId: string }[] }
    ).batches as [{ taskId: string }];
    expect(await check('GET', '/certificates/{taskId}/task', `/certificates/${taskId}/task`)).toBe(200);
    expect(await check('GET', '/cas', '/cas')).toBe(200);
    expect(await check('GET', '/cas/{caId}', `/cas/${issuer}`)).toBe(200);
    expect(await check('GET', '/certificates', `/certificates?issuer=${issuer}&limit=2`)).toBe(200);
    expect(await check('GET', '/certificates/{taskId}', `/certificates/${items[0]!.certificateId}`)).toBe(200);
    const device = { issuerId: issuer, thingName: 'thing-openapi' };
    expect(await check('POST', '/certificates/device', '/certificates/device', device)).toBe(201);
    const revoke = { reason: 'superseded' };
    expect(
      await check('POST', '/certificates/{taskId}/revoke', `/certificates/${items[1]!.certificateId}/revoke`, revoke),
    ).toBe(200);
    expect(
      await check('POST', '/certificates/{taskId}/revoke', `/certificates/${items[1]!.certificateId}/revoke`, revoke),
    ).toBe(409);
    expect(
      await check('POST', '/supplier/{supplierId}/certificates', '/supplier/demo/certificates', { quantity: 0 }),
    ).toBe(400);
    expect(
      await check('POST', '/supplier/{supplierId}/certificates', '/supplier/nobody/certificates', { quantity: 1 }),
    ).toBe(404);
    expect(await check('GET', '/certificates/{taskId}/task', '/certificates/no-such-task/task')).toBe(404);

    // provisioning: the documented template example is stored and used as it is
    type Body = { requestBody: { content: Record<string, { example: unknown }> } };
    const template = (doc.paths['/templates/{templateId}']!.put as unknown as Body).requestBody.content[
      'application/json'
    ]!.example;
    expect(await check('PUT', '/templates/{templateId}', '/templates/openapi-line', template)).toBe(201);
    expect(await check('PUT', '/templates/{templateId}', '/templates/openapi-line', template)).toBe(200);
    expect(await check('PUT', '/templates/{templateId}', '/templates/bad', { Resources: { w: { Type: 'X' } } })).toBe(
      400,
    );
    expect(await check('GET', '/templates', '/templates')).toBe(200);
    expect(await check('GET', '/templates/{templateId}', '/templates/openapi-line')).toBe(200);
    expect(await check('GET', '/templates/{templateId}', '/templates/no-such')).toBe(404);
    const cdfProvisioningParameters = { caId: issuer, certInfo: { organization: 'Acme' } };
    const thing = { provisioningTemplateId: 'openapi-line', cdfProvisioningParameters };
    expect(await check('POST', '/things', '/things', { ...thing, parameters: { ThingName: 'thing-prov-1' } })).toBe(
      201,
    );
    expect(await check('POST', '/things', '/things', { ...thing, parameters: {} })).toBe(400);
    expect(await check('POST', '/things', '/things', { ...thing, provisioningTemplateId: 'no-such' })).toBe(404);
    const bulk = { ...thing, parameters: [{ ThingName: 'thing-prov-2' }, { ThingName: 'thing-prov-3' }] };
    const accepted = await fetch(`${cf.url}/bulkprovisioningtasks`, {
      method: 'POST',
      headers: { accept: 'application/json', 'content-type': 'application/json' },
      body: JSON.stringify(bulk),
    });
    expect(accepted.status).toBe(202);
    const { taskId: provisioningTaskId } = (await accepted.json()) as { taskId: string };
    expect(await check('POST', '/bulkprovisioningtasks', '/bulkprovisioningtasks', bulk)).toBe(202);
    const task = `/bulkprovisioningtasks/${provisioningTaskId}`;
    expect(await check('GET', '/bulkprovisioningtasks/{taskId}', task)).toBe(200);
    expect(await check('GET', '/bulkprovisioningtasks/{taskId}', '/bulkprovisioningtasks/no-such')).toBe(404);
    expect(await check('GET', '/bulkprovisioningtasks/{taskId}', '/bulkprovisioningtasks/bad%20id')).toBe(400);
  });
});

// the screenshots folder is git-ignored
test('test-artifacts/ is ignored by git', () => {
  if (!existsSync(resolve(__dirname, '../../.git'))) return;
  expect(
    execFileSync('git', ['check-ignore', 'test-artifacts/console/1-batches.png'], {
      cwd: resolve(__dirname, '../..'),
      encoding: 'utf8',
    }).trim(),
  ).toBe('test-artifacts/console/1-batches.png');
});
