/** The console's read-only endpoints and the redaction of key material from execution histories. */
import { generateKeyPairSync } from 'node:crypto';
import { openApiDocument } from '../../../lambdas/handlers/openapi';
import { createConsoleHandler, executionDetail, stateRows } from '../../../local/console-server';
import { startHttpServer } from '../../../local/http-server';
import { REDACTED, REDACTED_PEM, redactKeyMaterial } from '../../../local/redact';
import { StateMachineRunner } from '../../../local/runtime/state-machine-runner';

const pkcs8 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' });
const sec1 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'sec1', format: 'pem' });
const pkcs1 = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs1', format: 'pem' });
const encrypted = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
  type: 'pkcs8',
  format: 'pem',
  cipher: 'aes-256-cbc',
  passphrase: 'pw',
});
const CERT = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIQ\n-----END CERTIFICATE-----\n';
const KEY_TEXT = /PRIVATE KEY-----|MIG[HT]AgEA|MIIE/;

describe('redactKeyMaterial', () => {
  it('removes key-named fields, PEM private keys in any string and keys inside JSON text; keeps the rest', () => {
    const cause = JSON.stringify({ errorType: 'Error', errorMessage: `bad key ${pkcs8}`, privateKey: 'c2VjcmV0' });
    const redacted = redactKeyMaterial({
      privateKeyPem: pkcs8,
      'private.key': 'anything',
      caKey: { d: 'x' },
      files: [{ name: 'a/private.key', body: `${CERT}${sec1}` }],
      note: `rsa: ${pkcs1} and encrypted: ${encrypted}`,
      truncated: pkcs8.slice(0, 60),
      cause,
      certificatePem: CERT,
      keyType: 'ec-p256',
      zipKey: 'batches/t/certificates.zip',
      Key: { pk: { S: 'task#1' } },
      privateKey: null,
    }) as Record<string, unknown>;
    const text = JSON.stringify(redacted);
    expect(text).not.toMatch(KEY_TEXT);
    expect(text).not.toContain('c2VjcmV0');
    expect(redacted).toMatchObject({
      privateKeyPem: REDACTED,
      'private.key': REDACTED,
      caKey: REDACTED,
      files: [{ name: 'a/private.key', body: `${CERT}${REDACTED_PEM}\n` }],
      note: `rsa: ${REDACTED_PEM}\n and encrypted: ${REDACTED_PEM}\n`,
      truncated: REDACTED_PEM,
      certificatePem: CERT,
      keyType: 'ec-p256',
      zipKey: 'batches/t/certificates.zip',
      Key: { pk: { S: 'task#1' } },
      privateKey: null,
    });
    expect(JSON.parse(redacted.cause as string)).toEqual({
      errorType: 'Error',
      errorMessage: `bad key ${REDACTED_PEM}\n`,
      privateKey: REDACTED,
    });
  });
});

/** A workflow whose Lambda returns a key and fails once with a key in its error message (retried). */
function keyedRunner(): StateMachineRunner {
  let calls = 0;
  return new StateMachineRunner({
    stateMachineName: 'keyed',
    retryIntervalMs: 0,
    definition: {
      StartAt: 'IssueCredential',
      States: {
        IssueCredential: {
          Type: 'Task',
          Resource: 'arn:aws:lambda:us-east-1:000000000000:function:issue',
          Retry: [{ ErrorEquals: ['FlakyError'], MaxAttempts: 2 }],
          Next: 'Publish',
        },
        Publish: { Type: 'Pass', Result: { published: true }, ResultPath: '$.publish', End: true },
      },
    },
    resources: {
      'arn:aws:lambda:us-east-1:000000000000:function:issue': async () => {
        calls += 1;
        if (calls === 1) throw Object.assign(new Error(`could not load ${sec1}`), { name: 'FlakyError' });
        return { certificatePem: CERT, privateKeyPem: pkcs8, thingName: 'thing-1' };
      },
    },
  });
}

describe('the execution view', () => {
  it('lists states in the order entered with retries, and no key material anywhere', async () => {
    const runner = keyedRunner();
    await runner.start('exec-1', { thingName: 'thing-1', csr: pkcs1 }).result;
    const record = runner.describe('exec-1')!;
    // the raw history has the key material; the view must not
    expect(JSON.stringify(record)).toMatch(KEY_TEXT);
    const detail = executionDetail('keyed', record);
    expect(JSON.stringify(detail)).not.toMatch(KEY_TEXT);
    expect(detail.status).toBe('SUCCEEDED');
    expect(detail.states.map((s) => [s.name, s.status, s.retries])).toEqual([
      ['IssueCredential', 'Succeeded', 1],
      ['Publish', 'Succeeded', 0],
    ]);
    expect(detail.states[0]!.output).toEqual({ certificatePem: CERT, privateKeyPem: REDACTED, thingName: 'thing-1' });
    expect(detail.events.map((e) => e.id)).toEqual(record.events.map((e) => e.id));
    expect(detail.events[0]!.type).toBe('ExecutionStarted');
    expect(detail.events.at(-1)!.type).toBe('ExecutionSucceeded');
    expect(detail.events.every((e, i, all) => i === 0 || e.startedAfterMs >= all[i - 1]!.startedAfterMs)).toBe(true);
    const retried = detail.events.find((e) => e.type === 'StateRetried');
    expect(retried).toMatchObject({ stateName: 'IssueCredential', retry: { errorEquals: ['FlakyError'] } });
  });

  it('marks a failed state with its error', async () => {
    const runner = new StateMachineRunner({
      stateMachineName: 'failing',
      definition: {
        StartAt: 'Sign',
        States: { Sign: { Type: 'Task', Resource: 'arn:aws:lambda:us-east-1:000000000000:function:sign', End: true } },
      },
      resources: {
        'arn:aws:lambda:us-east-1:000000000000:function:sign': async () => {
          throw Object.assign(new Error('CA expired'), { name: 'IssuerExpiredError' });
        },
      },
    });
    await expect(runner.start('exec-2', {}).result).rejects.toThrow();
    const rows = stateRows(runner.describe('exec-2')!);
    expect(rows).toMatchObject([{ name: 'Sign', status: 'Failed', error: 'IssuerExpiredError' }]);
  });

  it('marks a caught failure Caught, with the output of the catcher, and goes on to the next state', async () => {
    const runner = new StateMachineRunner({
      stateMachineName: 'catching',
      definition: {
        StartAt: 'Sign',
        States: {
          Sign: {
            Type: 'Task',
            Resource: 'arn:aws:lambda:us-east-1:000000000000:function:sign',
            Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'RecordFailure' }],
            End: true,
          },
          RecordFailure: { Type: 'Pass', End: true },
        },
      },
      resources: {
        'arn:aws:lambda:us-east-1:000000000000:function:sign': async () => {
          throw Object.assign(new Error('CA expired'), { name: 'IssuerExpiredError' });
        },
      },
    });
    await runner.start('exec-3', { taskId: 't' }).result;
    const rows = stateRows(runner.describe('exec-3')!);
    expect(rows.map((r) => [r.name, r.status, r.error])).toEqual([
      ['Sign', 'Caught', 'IssuerExpiredError'],
      ['RecordFailure', 'Succeeded', undefined],
    ]);
    expect(rows[0]!.output).toMatchObject({ taskId: 't', error: { Error: 'IssuerExpiredError' } });
  });

  it('marks a state still running when its execution failed Aborted (a Map iteration stopped by another)', async () => {
    let release!: () => void;
    const slow = new Promise<void>((r) => (release = r));
    const runner = new StateMachineRunner({
      stateMachineName: 'aborting',
      definition: {
        StartAt: 'Chunks',
        States: {
          Chunks: {
            Type: 'Map',
            ItemsPath: '$.items',
            ItemProcessor: {
              StartAt: 'Sign',
              States: {
                Sign: { Type: 'Task', Resource: 'arn:aws:lambda:us-east-1:000000000000:function:sign', End: true },
              },
            },
            End: true,
          },
        },
      },
      resources: {
        'arn:aws:lambda:us-east-1:000000000000:function:sign': async (item) => {
          if (item === 'slow') await slow;
          else throw Object.assign(new Error('signer unplugged'), { name: 'InjectedChunkError' });
          return {};
        },
      },
    });
    await expect(runner.start('exec-4', { items: ['slow', 'bad'] }).result).rejects.toThrow();
    const rows = stateRows(runner.describe('exec-4')!);
    release();
    expect(rows.map((r) => [r.name, r.mapIndex, r.status])).toEqual(
      expect.arrayContaining([
        ['Sign', 0, 'Aborted'],
        ['Sign', 1, 'Failed'],
      ]),
    );
  });
});

describe('the console endpoints', () => {
  let server: Awaited<ReturnType<typeof startHttpServer>>;
  const runner = keyedRunner();
  beforeAll(async () => {
    await runner.start('exec-1', { thingName: 'thing-1' }).result;
    server = await startHttpServer({
      mounts: [],
      raw: [
        createConsoleHandler({
          runners: () => [runner],
          tasks: { listByStatus: async () => [] },
          suppliers: async () => ['demo'],
          openApi: () => openApiDocument(),
        }),
      ],
    });
  });
  afterAll(async () => server?.close());
  const get = (path: string, init?: RequestInit) => fetch(`${server.url}${path}`, init);

  it('serves the console page, its files and the OpenAPI document', async () => {
    const page = await get('/console');
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toContain('<main id="main"');
    // no external assets: every src/href is same-origin
    for (const [, url] of html.matchAll(/(?:src|href)="([^"]+)"/g)) expect(url).toMatch(/^(\/|#)/);
    expect((await get('/console/console.js')).headers.get('content-type')).toMatch(/javascript/);
    expect(await (await get('/openapi.json')).json()).toEqual(openApiDocument());
    expect((await get('/console/secrets.txt')).status).toBe(404);
  });

  it('lists state machines and executions, and shows one execution redacted', async () => {
    expect(await (await get('/console/api/state-machines')).json()).toEqual([
      { name: 'keyed', arn: runner.stateMachineArn, executions: 1, running: 0 },
    ]);
    const { executions } = (await (await get('/console/api/executions?stateMachine=keyed')).json()) as {
      executions: { name: string; status: string }[];
    };
    expect(executions).toMatchObject([{ name: 'exec-1', status: 'SUCCEEDED' }]);
    const res = await get('/console/api/executions/keyed/exec-1');
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(text).not.toMatch(KEY_TEXT);
    expect(text).toContain(REDACTED);
  });

  it('answers 404, 400 and 405 with a code', async () => {
    const cases: [string, RequestInit | undefined, number, string][] = [
      ['/console/api/executions/keyed/nope', undefined, 404, 'NOT_FOUND'],
      ['/console/api/executions?stateMachine=nope', undefined, 404, 'NOT_FOUND'],
      ['/console/api/executions?status=DONE', undefined, 400, 'INVALID_REQUEST'],
      ['/console/api/nothing', undefined, 404, 'NOT_FOUND'],
      ['/console/api/batches', { method: 'DELETE' }, 405, 'METHOD_NOT_ALLOWED'],
    ];
    for (const [path, init, status, code] of cases) {
      const res = await get(path, init);
      expect([path, res.status]).toEqual([path, status]);
      expect(((await res.json()) as { code: string }).code).toBe(code);
    }
  });
});
