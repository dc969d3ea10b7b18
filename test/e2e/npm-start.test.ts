/**
 * `npm start` runs the esbuild bundle in dist/, not the TypeScript sources: everything the runtime reads from disk
 * (ASL files, console assets, the worker) must be found from there too. Builds the bundle, starts it as a user
 * would (PORT=0, a fresh data directory), and uses the API, the console and the MQTT address it prints.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'certflow-npm-start-'));
let child: ChildProcess;
let output = '';

beforeAll(async () => {
  execFileSync('npm', ['run', '--silent', 'bundle'], { cwd: ROOT, stdio: 'pipe' });
  child = spawn(process.execPath, ['--enable-source-maps', 'dist/main.js'], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', MQTT_PORT: '0', CERTFLOW_DATA_DIR: join(dir, 'data') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  for (const deadline = Date.now() + 60_000; !/MQTT broker .* at mqtts:/.test(output);) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`certflow did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
});

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

const baseUrl = () => /certflow is running at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)![1]!;

describe('npm start (the bundle in dist/)', () => {
  it('prints where the API, the console and the MQTT broker are, and what it created', () => {
    expect(output).toMatch(
      /certflow is running at http:\/\/127\.0\.0\.1:\d+ .*console: http:\/\/127\.0\.0\.1:\d+\/console/,
    );
    expect(output).toMatch(/MQTT broker \(mutual TLS, certflow device certificates\) at mqtts:\/\/127\.0\.0\.1:\d+/);
    expect(output).toContain('created a development root CA');
  });

  it('serves the console and the OpenAPI document from the bundle', async () => {
    const page = await fetch(`${baseUrl()}/console`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<html');
    const doc = (await (await fetch(`${baseUrl()}/openapi.json`)).json()) as { openapi: string };
    expect(doc.openapi).toMatch(/^3\.1/);
  });

  it('runs a batch to complete through the bundled workflow engine and worker threads', async () => {
    const created = await fetch(`${baseUrl()}/supplier/demo/certificates`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ quantity: 30 }),
    });
    expect(created.status).toBe(202);
    const { taskId } = (await created.json()) as { taskId: string };
    let status = '';
    for (const deadline = Date.now() + 30_000; status !== 'complete' && Date.now() < deadline;) {
      await new Promise((r) => setTimeout(r, 200));
      status = ((await (await fetch(`${baseUrl()}/certificates/${taskId}/task`)).json()) as { status: string }).status;
      expect(status).not.toBe('failed');
    }
    expect(status).toBe('complete');
    const zip = await fetch(`${baseUrl()}/certificates/${taskId}`);
    expect(zip.headers.get('content-type')).toBe('application/zip');
    expect((await zip.arrayBuffer()).byteLength).toBeGreaterThan(30 * 1000);
  });
});
