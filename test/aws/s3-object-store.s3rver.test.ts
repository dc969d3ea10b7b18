/**
 * S3ObjectStore against a real S3 wire-protocol server (s3rver on 127.0.0.1, files in a temporary directory): the
 * server the local runtime uses. Checks what mocks cannot: multipart upload end to end, ranges, presigned URLs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { NotFoundError } from '../../lambdas/core/errors';
import { S3ObjectStore } from '../../lambdas/adapters/aws/s3-object-store';

interface S3rverServer {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}
// s3rver ships no types
// eslint-disable-next-line @typescript-eslint/no-require-imports
const S3rver = require('s3rver') as new (options: {
  port: number;
  address: string;
  directory: string;
  silent: boolean;
}) => S3rverServer;

const BUCKET = 'certflow-test';
const MiB = 1024 * 1024;
let dir: string;
let server: S3rverServer;
let client: S3Client;
let store: S3ObjectStore;

async function* chunks(count: number, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < count; i++) yield Buffer.alloc(size, i);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'certflow-s3rver-'));
  server = new S3rver({ port: 0, address: '127.0.0.1', directory: dir, silent: true });
  const { port } = await server.run();
  client = new S3Client({
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    // s3rver deletes the keys of one DeleteObjects in parallel and races removing their emptied folder (InternalError);
    // the SDK's default retries (3 attempts) absorb it, as they would a real S3 InternalError
  });
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  store = new S3ObjectStore(client, BUCKET);
});

afterAll(async () => {
  client?.destroy();
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('S3ObjectStore on s3rver', () => {
  it('puts, heads, gets and reads ranges', async () => {
    await store.put('t/a.json', '{"a":1}', { contentType: 'application/json', metadata: { certificateid: 'abc' } });
    await expect(store.head('t/a.json')).resolves.toEqual({
      size: 7,
      contentType: 'application/json',
      metadata: { certificateid: 'abc' },
    });
    await expect(store.get('t/a.json')).resolves.toEqual(Buffer.from('{"a":1}'));
    await expect(store.getRange('t/a.json', 1, 4)).resolves.toEqual(Buffer.from('"a"'));
  });

  it('answers absent objects with undefined (head) and NotFoundError (get, stream)', async () => {
    await expect(store.head('t/none')).resolves.toBeUndefined();
    await expect(store.get('t/none')).rejects.toBeInstanceOf(NotFoundError);
    await expect(store.getStream('t/none')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('uploads a 17 MiB stream as a multipart upload and streams it back', async () => {
    await expect(store.compose('t/big.zip', chunks(17, MiB), { contentType: 'application/zip' })).resolves.toEqual({
      size: 17 * MiB,
    });
    await expect(store.head('t/big.zip')).resolves.toMatchObject({ size: 17 * MiB, contentType: 'application/zip' });
    let size = 0;
    let last = -1;
    for await (const chunk of await store.getStream('t/big.zip')) {
      size += chunk.byteLength;
      last = chunk[chunk.byteLength - 1]!;
    }
    expect(size).toBe(17 * MiB);
    expect(last).toBe(16);
  });

  it('presigns a URL that downloads the object as an attachment', async () => {
    await store.put('t/p.txt', 'hello');
    const response = await fetch(await store.presignGet('t/p.txt', 60, 'hello.txt'));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-disposition')).toBe('attachment; filename="hello.txt"');
    await expect(response.text()).resolves.toBe('hello');
  });

  it('lists and deletes by prefix, absent keys included', async () => {
    const keys = Array.from({ length: 5 }, (_, i) => `d/${i}`);
    for (const key of keys) await store.put(key, key);
    await expect(store.list('d/')).resolves.toEqual(keys);
    await store.delete([...keys, 'd/absent']);
    await expect(store.list('d/')).resolves.toEqual([]);
  });
});
