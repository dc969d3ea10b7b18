/**
 * certflow CLI.
 *   certflow batch create --supplier demo --quantity 10000 --out batch.zip [--key-type ec-p256] [--common-name T]
 *                         [--include-ca] [--days N] [--register] [--layout certflow|cdf] [--endpoint URL]
 *   certflow batch status TASK_ID [--endpoint URL]
 *   certflow batch download TASK_ID --out batch.zip [--endpoint URL]
 *   certflow device rotate --thing T --key key.pem --cert cert.pem [--ca ca.pem] [--mqtt URL] [--out DIR]
 * Without --endpoint (or CERTFLOW_ENDPOINT) the embedded local runtime runs in this process.
 */
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { KEY_TYPES } from '../lambdas/core/pki/keys';
import { ApiClient, ApiError } from './api-client';
import { startLocal } from './certflow';
import { rotateDevice, RotationFailedError } from './device-simulator';

const USAGE = `usage:
  certflow batch create --supplier ID --quantity N --out FILE [--key-type ${KEY_TYPES.join('|')}]
                        [--common-name TEMPLATE] [--include-ca] [--days N] [--register] [--layout certflow|cdf]
                        [--idempotency-key KEY] [--endpoint URL]
  certflow batch status TASK_ID [--endpoint URL]
  certflow batch download TASK_ID --out FILE [--endpoint URL]
  certflow device rotate --thing THING --key KEY.pem --cert CERT.pem [--ca CA.pem] [--mqtt mqtts://127.0.0.1:8883]
                         [--out DIR] [--prefix cdf/certificates] [--timeout SECONDS]
      (--ca defaults to the certificates after the first one in --cert)
environment: CERTFLOW_ENDPOINT (a running certflow; none = embedded runtime), CERTFLOW_DATA_DIR, MQTT_PORT`;

interface TaskView {
  taskId: string;
  status: string;
  chunksPending: number;
  chunksTotal: number;
  quantity: number;
  error?: { code: string; message: string };
}

class UsageError extends Error {}

function progress(task: TaskView, started: number): string {
  const done = task.chunksTotal - task.chunksPending;
  const width = 30;
  const filled = task.chunksTotal ? Math.round((done / task.chunksTotal) * width) : 0;
  const certs = Math.min(task.quantity, Math.round((done / Math.max(1, task.chunksTotal)) * task.quantity));
  const secs = (Date.now() - started) / 1000;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${task.chunksTotal} chunks, ~${certs}/${task.quantity} certificates, ${secs.toFixed(1)} s (${task.status})`;
}

async function waitForTask(client: ApiClient, taskId: string): Promise<TaskView> {
  const started = Date.now();
  const tty = process.stderr.isTTY;
  let last = '';
  for (;;) {
    const { body } = await client.json<TaskView>('GET', `/certificates/${encodeURIComponent(taskId)}/task`);
    const line = progress(body, started);
    if (tty) process.stderr.write(`\r${line}`);
    else if (line.split(',')[0] !== last.split(',')[0]) process.stderr.write(`${line}\n`);
    last = line;
    if (body.status === 'complete' || body.status === 'failed') {
      if (tty) process.stderr.write('\n');
      return body;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function download(client: ApiClient, taskId: string, out: string): Promise<number> {
  const res = await client.request('GET', `/certificates/${encodeURIComponent(taskId)}`, undefined, {
    accept: 'application/zip',
  });
  let body: Response = res;
  if (res.status === 302 || res.status === 301) body = await fetch(res.headers.get('location')!);
  else if (res.status !== 200) {
    const err = (await res.json().catch(() => ({}))) as { code?: string; message?: string };
    throw new ApiError(res.status, err.code ?? `HTTP_${res.status}`, err.message ?? 'download failed');
  }
  if (!body.ok || !body.body)
    throw new ApiError(body.status, 'DOWNLOAD_FAILED', `download failed with HTTP ${body.status}`);
  let size = 0;
  const counter = async function* (source: AsyncIterable<Uint8Array>) {
    for await (const chunk of source) {
      size += chunk.length;
      yield chunk;
    }
  };
  await pipeline(
    Readable.fromWeb(body.body as import('node:stream/web').ReadableStream),
    counter,
    createWriteStream(out),
  );
  return size;
}

async function withClient<T>(endpoint: string | undefined, fn: (client: ApiClient) => Promise<T>): Promise<T> {
  if (endpoint) return fn(new ApiClient({ endpoint }));
  process.stderr.write('starting the embedded certflow runtime…\n');
  const cf = await startLocal({ port: 0 });
  try {
    return await fn(new ApiClient({ endpoint: cf.url }));
  } finally {
    await cf.close();
  }
}

async function deviceRotate(values: Record<string, string | boolean | undefined>): Promise<number> {
  const str = (name: string): string | undefined => (typeof values[name] === 'string' ? values[name] : undefined);
  const [thingName, keyFile, certFile] = [str('thing'), str('key'), str('cert')];
  if (!thingName || !keyFile || !certFile) throw new UsageError(`--thing, --key and --cert are required\n${USAGE}`);
  const read = (file: string) =>
    readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new UsageError(`cannot read ${file}: ${e.code ?? e.message}`);
    });
  const certificatePem = await read(certFile);
  const caFile = str('ca');
  const caPem = caFile
    ? await read(caFile)
    : certificatePem
        .split(/(?<=-----END CERTIFICATE-----\s*)/)
        .slice(1)
        .join('');
  if (!caPem.includes('BEGIN CERTIFICATE')) {
    throw new UsageError(`--ca is required (${certFile} holds no CA certificate after the device certificate)`);
  }
  const timeout = str('timeout');
  if (timeout !== undefined && !(Number(timeout) > 0))
    throw new UsageError('--timeout must be a positive number of seconds');
  try {
    const outcome = await rotateDevice({
      thingName,
      keyPem: await read(keyFile),
      certificatePem,
      caPem,
      mqttUrl: str('mqtt') ?? `mqtts://127.0.0.1:${process.env.MQTT_PORT ?? 8883}`,
      ...(str('prefix') ? { topicPrefix: str('prefix')! } : {}),
      ...(str('out') ? { outDir: str('out')! } : {}),
      ...(timeout !== undefined ? { timeoutMs: Number(timeout) * 1000 } : {}),
      log: (line) => process.stderr.write(`${line}\n`),
    });
    process.stdout.write(
      `${JSON.stringify({
        thingName: outcome.thingName,
        previousCertificateId: outcome.previousCertificateId,
        certificateId: outcome.certificateId,
        ...(outcome.files ? { files: outcome.files } : {}),
      })}\n`,
    );
    return 0;
  } catch (error) {
    if (!(error instanceof RotationFailedError)) throw error;
    process.stderr.write(`rotation failed (${error.stage}): ${error.message}\n`);
    return error.reason ? 3 : 1;
  }
}

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      supplier: { type: 'string' },
      quantity: { type: 'string' },
      out: { type: 'string', short: 'o' },
      'key-type': { type: 'string' },
      'common-name': { type: 'string' },
      'include-ca': { type: 'boolean' },
      days: { type: 'string' },
      register: { type: 'boolean' },
      layout: { type: 'string' },
      'idempotency-key': { type: 'string' },
      endpoint: { type: 'string' },
      thing: { type: 'string' },
      key: { type: 'string' },
      cert: { type: 'string' },
      ca: { type: 'string' },
      mqtt: { type: 'string' },
      prefix: { type: 'string' },
      timeout: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [group, command, arg] = positionals;
  if (values.help || (group !== 'batch' && group !== 'device') || !command) throw new UsageError(USAGE);
  if (group === 'device') {
    if (command !== 'rotate') throw new UsageError(USAGE);
    return deviceRotate(values);
  }
  const endpoint = values.endpoint ?? process.env.CERTFLOW_ENDPOINT;

  if (command === 'create') {
    if (!values.supplier || !values.out) throw new UsageError(`--supplier and --out are required\n${USAGE}`);
    const body = {
      ...(values.quantity ? { quantity: Number(values.quantity) } : {}),
      ...(values['key-type'] ? { keyType: values['key-type'] } : {}),
      ...(values.register ? { register: true } : {}),
      ...(values.layout ? { layout: values.layout } : {}),
      certInfo: {
        ...(values['common-name'] ? { commonName: values['common-name'] } : {}),
        ...(values['include-ca'] ? { includeCA: true } : {}),
        ...(values.days ? { daysExpiry: Number(values.days) } : {}),
      },
    };
    return withClient(endpoint, async (client) => {
      const headers = values['idempotency-key'] ? { 'idempotency-key': values['idempotency-key'] } : undefined;
      const started = Date.now();
      const { body: created } = await client.json<{ taskId: string }>(
        'POST',
        `/supplier/${encodeURIComponent(values.supplier!)}/certificates`,
        body,
        headers,
      );
      process.stderr.write(`batch ${created.taskId} accepted\n`);
      const task = await waitForTask(client, created.taskId);
      if (task.status === 'failed') {
        process.stderr.write(`batch ${task.taskId} failed: ${task.error?.code ?? ''} ${task.error?.message ?? ''}\n`);
        return 1;
      }
      const size = await download(client, task.taskId, values.out!);
      const secs = (Date.now() - started) / 1000;
      process.stderr.write(
        `wrote ${values.out} (${(size / 1e6).toFixed(1)} MB): ${task.quantity} certificates in ${secs.toFixed(1)} s (${(task.quantity / secs).toFixed(0)}/s)\n`,
      );
      process.stdout.write(`${task.taskId}\n`);
      return 0;
    });
  }
  if (command === 'status' || command === 'download') {
    if (!arg) throw new UsageError(`TASK_ID is required\n${USAGE}`);
    return withClient(endpoint, async (client) => {
      if (command === 'status') {
        const { body } = await client.json<TaskView>('GET', `/certificates/${encodeURIComponent(arg)}/task`);
        process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
        return 0;
      }
      if (!values.out) throw new UsageError(`--out is required\n${USAGE}`);
      const size = await download(client, arg, values.out);
      process.stderr.write(`wrote ${values.out} (${size} bytes)\n`);
      return 0;
    });
  }
  throw new UsageError(USAGE);
}

if (require.main === module || process.argv[1]?.endsWith('certflow.js') || process.argv[1]?.endsWith('certflow')) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      if (error instanceof UsageError) process.stderr.write(`${error.message}\n`);
      else if (error instanceof ApiError)
        process.stderr.write(`error ${error.status} ${error.code}: ${error.message}\n`);
      else process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(error instanceof UsageError ? 2 : 1);
    },
  );
}
