import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
  type ListObjectsV2CommandOutput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { S3ObjectStore } from '../../../lambdas/adapters/aws/s3-object-store';
import { createLocalS3Client, ensureBucket, startS3 } from '../../../local/runtime/s3-server';
import { LOCAL_AWS_CREDENTIALS, type LocalServer } from '../../../local/runtime/types';

const BUCKET = 'certflow-local';
const MiB = 1024 * 1024;

/** a Readable of `size` pseudo-random bytes in 64 KiB chunks, hashing what it emits */
function randomStream(size: number): { stream: Readable; sha256: () => string } {
  const hash = createHash('sha256');
  async function* chunks() {
    for (let sent = 0; sent < size;) {
      const chunk = randomBytes(Math.min(64 * 1024, size - sent));
      hash.update(chunk);
      sent += chunk.length;
      yield chunk;
    }
  }
  return { stream: Readable.from(chunks()), sha256: () => hash.digest('hex') };
}

describe('startS3', () => {
  let dataDir: string;
  let server: LocalServer;
  let s3: S3Client;

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'certflow-s3rver-'));
    server = await startS3({ dataDir });
    s3 = createLocalS3Client(server.endpoint);
    await ensureBucket(s3, BUCKET);
  });
  afterEach(async () => {
    s3.destroy();
    await server.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('listens on 127.0.0.1 on an ephemeral port and ensureBucket is idempotent', async () => {
    expect(server.endpoint).toBe(`http://127.0.0.1:${server.port}`);
    await ensureBucket(s3, BUCKET);
    await ensureBucket(s3, 'certflow-other');
    expect((await readdir(dataDir)).sort()).toEqual(['certflow-local', 'certflow-other']);
  });

  it('returns x-amz-meta-* metadata and the content type from HeadObject', async () => {
    await s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: 'batches/t1/manifest.json',
        Body: '{"ok":true}',
        ContentType: 'application/json',
        Metadata: { taskid: 't1', 'Chunk-Count': '3' },
      }),
    );
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'batches/t1/manifest.json' }));
    expect(head.ContentLength).toBe(11);
    expect(head.ContentType).toBe('application/json');
    // S3 lower-cases user metadata names; so does s3rver
    expect(head.Metadata).toEqual({ taskid: 't1', 'chunk-count': '3' });
  });

  it('answers a ranged GetObject with the bytes and Content-Range', async () => {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'range.txt', Body: '0123456789' }));
    const part = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'range.txt', Range: 'bytes=2-5' }));
    expect(await part.Body?.transformToString()).toBe('2345');
    expect(part.ContentRange).toBe('bytes 2-5/10');
    expect(part.ContentLength).toBe(4);
  });

  it('stores a ~20 MB multipart Upload from a Readable in 5 MB parts intact', async () => {
    const size = 20 * MiB + 12_345;
    const source = randomStream(size);
    const upload = new Upload({
      client: s3,
      params: {
        Bucket: BUCKET,
        Key: 'batches/t1/certificates.zip',
        Body: source.stream,
        ContentType: 'application/zip',
      },
      partSize: 5 * MiB,
      queueSize: 2,
    });
    const parts: number[] = [];
    upload.on('httpUploadProgress', (p) => p.part !== undefined && parts.push(p.part));
    await upload.done();
    expect(new Set(parts).size).toBe(5);

    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'batches/t1/certificates.zip' }));
    expect(head.ContentLength).toBe(size);
    expect(head.ContentType).toBe('application/zip');
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'batches/t1/certificates.zip' }));
    const hash = createHash('sha256');
    for await (const chunk of got.Body as AsyncIterable<Uint8Array>) hash.update(chunk);
    expect(hash.digest('hex')).toBe(source.sha256());
  });

  it('stores a PutObject stream body of unknown length verbatim (checksums WHEN_REQUIRED)', async () => {
    await s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: 'stream.txt',
        Body: Readable.from([Buffer.from('abc'), Buffer.from('def')]),
      }),
    );
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'stream.txt' }));
    expect(await got.Body?.transformToString()).toBe('abcdef');
  });

  it('incompatibility: with the SDK default checksums s3rver stores the aws-chunked framing', async () => {
    const defaultClient = new S3Client({
      endpoint: server.endpoint,
      region: 'us-east-1',
      credentials: LOCAL_AWS_CREDENTIALS,
      forcePathStyle: true,
    });
    try {
      await defaultClient.send(
        new PutObjectCommand({
          Bucket: BUCKET,
          Key: 'framed.txt',
          ContentLength: 6,
          Body: Readable.from([Buffer.from('abc'), Buffer.from('def')]),
        }),
      );
      const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'framed.txt' }));
      const stored = await got.Body?.transformToString();
      expect(stored).not.toBe('abcdef');
      expect(stored).toContain('x-amz-checksum-crc32');
    } finally {
      defaultClient.destroy();
    }
  });

  it('rejects an Upload with the source error and leaves nothing behind (AbortMultipartUpload emulated)', async () => {
    async function* broken() {
      yield randomBytes(6 * MiB);
      throw new Error('source broke');
    }
    const upload = new Upload({
      client: s3,
      params: { Bucket: BUCKET, Key: 'broken.zip', Body: Readable.from(broken()) },
      partSize: 5 * MiB,
    });
    await expect(upload.done()).rejects.toThrow('source broke');
    await expect(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'broken.zip' }))).rejects.toMatchObject({
      name: 'NotFound',
    });
    expect(await readdir(join(dataDir, BUCKET, '._S3rver_uploads'))).toEqual([]);
  });

  it('aborts a multipart upload explicitly, and answers NoSuchUpload for an unknown one', async () => {
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'm.bin' }));
    await s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: 'm.bin', UploadId, PartNumber: 1, Body: 'part' }));
    await s3.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: 'm.bin', UploadId }));
    expect(await readdir(join(dataDir, BUCKET, '._S3rver_uploads'))).toEqual([]);
    await expect(
      s3.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: 'm.bin', UploadId })),
    ).rejects.toMatchObject({ name: 'NoSuchUpload' });
  });

  it('copies byte ranges of objects into multipart parts (UploadPartCopy, emulated)', async () => {
    const a = randomBytes(300_000);
    const b = randomBytes(70_000);
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'src/a.bin', Body: a }));
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'src/b c+d.bin', Body: b }));
    // compose: copied ranges and bytes in between, with parts of any size as s3rver takes them
    const store = new S3ObjectStore(s3, BUCKET, { minPartSize: 0 });
    const sent: string[] = [];
    s3.middlewareStack.add(
      (next, context) => (args) => {
        sent.push(context.commandName as string);
        return next(args);
      },
      { step: 'initialize', name: 'recordCommands' },
    );
    async function* pieces() {
      yield Buffer.from('head');
      yield { copyFrom: { key: 'src/a.bin', start: 1000, end: 250_000 } };
      yield { copyFrom: { key: 'src/b c+d.bin', start: 0, end: b.length } };
      yield Buffer.from('tail');
    }
    await expect(store.compose('out/composed.bin', pieces(), { contentType: 'application/zip' })).resolves.toEqual({
      size: 8 + 249_000 + b.length,
    });
    expect(sent.filter((name) => name === 'UploadPartCopyCommand')).toHaveLength(2);
    expect(sent).not.toContain('GetObjectCommand');
    const out = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'out/composed.bin' }));
    expect(out.ContentType).toBe('application/zip');
    expect(out.ETag).toMatch(/^"[0-9a-f]{32}-4"$/); // 4 parts (head, 2 copies, tail): S3's multipart ETag, no second hash
    expect(out.ContentLength).toBe(8 + 249_000 + b.length);
    expect(Buffer.from(await out.Body!.transformToByteArray())).toEqual(
      Buffer.concat([Buffer.from('head'), a.subarray(1000, 250_000), b, Buffer.from('tail')]),
    );
    // errors as S3 answers them
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'out/x' }));
    const copy = (input: { CopySource: string; CopySourceRange?: string; UploadId?: string; PartNumber?: number }) =>
      s3.send(new UploadPartCopyCommand({ Bucket: BUCKET, Key: 'out/x', UploadId, PartNumber: 1, ...input }));
    await expect(copy({ CopySource: `${BUCKET}/src/none` })).rejects.toMatchObject({ name: 'NoSuchKey' });
    await expect(copy({ CopySource: `${BUCKET}/src/a.bin`, UploadId: 'ffff' })).rejects.toMatchObject({
      name: 'NoSuchUpload',
    });
    await expect(copy({ CopySource: `${BUCKET}/src/a.bin`, CopySourceRange: 'bytes=9-2' })).rejects.toMatchObject({
      name: 'InvalidArgument',
    });
    await expect(copy({ CopySource: `${BUCKET}/src/a.bin`, PartNumber: 10_001 })).rejects.toMatchObject({
      name: 'InvalidArgument',
    });
    await s3.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: 'out/x', UploadId }));

    // a copy source removed after its part was copied, before the completion, fails the completion (S3 would have
    // copied the bytes already)
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'src/gone.bin', Body: a }));
    const gone = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'out/gone.bin' }));
    const part = await s3.send(
      new UploadPartCopyCommand({
        Bucket: BUCKET,
        Key: 'out/gone.bin',
        UploadId: gone.UploadId,
        PartNumber: 1,
        CopySource: `${BUCKET}/src/gone.bin`,
        CopySourceRange: 'bytes=0-999',
      }),
    );
    await s3.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: [{ Key: 'src/gone.bin' }] } }));
    await expect(
      s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: BUCKET,
          Key: 'out/gone.bin',
          UploadId: gone.UploadId,
          MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.CopyPartResult?.ETag }] },
        }),
      ),
    ).rejects.toMatchObject({ name: 'InvalidPart' });
    await expect(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'out/gone.bin' }))).rejects.toMatchObject({
      name: 'NotFound',
    });
    // compose aborts the upload when a copy fails (here, a source that is gone before its copy)
    async function* fromMissing() {
      yield { copyFrom: { key: 'src/missing.bin', start: 0, end: 1000 } };
      yield Buffer.from('tail');
    }
    await expect(store.compose('out/missing.bin', fromMissing())).rejects.toMatchObject({ name: 'NoSuchKey' });
    await expect(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'out/missing.bin' }))).rejects.toMatchObject({
      name: 'NotFound',
    });
  });

  it('serves a presigned GET to plain fetch, honouring the response header overrides', async () => {
    await s3.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: 'zips/t1.zip', Body: 'zip-bytes', ContentType: 'application/zip' }),
    );
    const plain = await getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: 'zips/t1.zip' }), {
      expiresIn: 60,
    });
    expect(new URL(plain).host).toBe(`127.0.0.1:${server.port}`);
    const response = await fetch(plain);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('zip-bytes');
    expect(response.headers.get('content-type')).toBe('application/zip');

    const named = await getSignedUrl(
      s3,
      new GetObjectCommand({
        Bucket: BUCKET,
        Key: 'zips/t1.zip',
        ResponseContentDisposition: 'attachment; filename="batch-t1.zip"',
        ResponseContentType: 'application/octet-stream',
      }),
      { expiresIn: 60 },
    );
    const download = await fetch(named);
    expect(download.status).toBe(200);
    expect(await download.text()).toBe('zip-bytes');
    expect(download.headers.get('content-disposition')).toBe('attachment; filename="batch-t1.zip"');
    expect(download.headers.get('content-type')).toBe('application/octet-stream');
  });

  it('refuses an expired presigned URL (but, unlike S3, does not verify the signature)', async () => {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'a.txt', Body: 'a' }));
    const url = new URL(
      await getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: 'a.txt' }), { expiresIn: 60 }),
    );
    url.searchParams.set('X-Amz-Date', '20200101T000000Z');
    expect((await fetch(url)).status).toBe(403);
    const tampered = new URL(
      await getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: 'a.txt' }), { expiresIn: 60 }),
    );
    tampered.searchParams.set('X-Amz-Signature', '0'.repeat(64));
    expect((await fetch(tampered)).status).toBe(200);
  });

  it('lists with a prefix, pages with continuation tokens, and deletes in bulk', async () => {
    const keys = ['chunks/t1/0000.zip', 'chunks/t1/0001.zip', 'chunks/t1/0002.zip', 'chunks/t2/0000.zip', 'other.txt'];
    for (const key of keys) await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: key }));

    const t1 = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'chunks/t1/' }));
    expect(t1.Contents?.map((o) => o.Key)).toEqual(keys.slice(0, 3));
    expect(t1.KeyCount).toBe(3);
    expect(t1.IsTruncated).toBe(false);
    expect(t1.Contents?.[0]?.Size).toBe(keys[0]?.length);

    // s3rver alone answers 500 here (DES continuation tokens are gone from OpenSSL 3)
    const pages: ListObjectsV2CommandOutput[] = [];
    let token: string | undefined;
    do {
      const page = await s3.send(
        new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'chunks/', MaxKeys: 3, ContinuationToken: token }),
      );
      pages.push(page);
      token = page.NextContinuationToken;
    } while (token);
    expect(pages.map((p) => p.Contents?.map((o) => o.Key))).toEqual([keys.slice(0, 3), keys.slice(3, 4)]);
    expect(pages.map((p) => [p.KeyCount, p.IsTruncated])).toEqual([
      [3, true],
      [1, false],
    ]);

    const startAfter = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, StartAfter: 'chunks/t2/0000.zip' }));
    expect(startAfter.Contents?.map((o) => o.Key)).toEqual(['other.txt']);

    const byDirectory = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'chunks/', Delimiter: '/' }));
    expect(byDirectory.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['chunks/t1/', 'chunks/t2/']);

    const deleted = await s3.send(
      new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: keys.slice(0, 3).map((Key) => ({ Key })) } }),
    );
    expect(deleted.Deleted?.map((d) => d.Key).sort()).toEqual(keys.slice(0, 3));
    expect(deleted.Errors ?? []).toEqual([]);
    const rest = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET }));
    expect(rest.Contents?.map((o) => o.Key)).toEqual(keys.slice(3));
  });

  it('keeps objects across a restart on the same dataDir', async () => {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'persist.txt', Body: 'still here' }));
    s3.destroy();
    await server.close();
    server = await startS3({ dataDir });
    s3 = createLocalS3Client(server.endpoint);
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'persist.txt' }));
    expect(await got.Body?.transformToString()).toBe('still here');
  });
});
