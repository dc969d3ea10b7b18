import 'aws-sdk-client-mock-jest';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  NotFound,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { sdkStreamMixin } from '@smithy/util-stream';
import { NotFoundError, ValidationError } from '../../lambdas/core/errors';
import {
  contentDisposition,
  COPY_CONCURRENCY,
  ObjectDeleteError,
  S3ObjectStore,
} from '../../lambdas/adapters/aws/s3-object-store';
import { cmd, mockSdk } from './sdk-mock';

const BUCKET = 'certflow-objects';
const MiB = 1024 * 1024;
const s3Mock = mockSdk(S3Client);
const client = new S3Client({
  region: 'eu-west-1',
  credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
});
const store = new S3ObjectStore(client, BUCKET);

const body = (...chunks: (string | Buffer)[]) =>
  sdkStreamMixin(Readable.from(chunks.map((c) => Buffer.from(c)))) as never;

async function* chunks(count: number, size: number, failAfter?: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < count; i++) {
    if (failAfter !== undefined && i === failAfter) throw new Error('source broke');
    yield Buffer.alloc(size, i % 256);
  }
}

const noSuchKey = () => new NoSuchKey({ message: 'The specified key does not exist.', $metadata: {} });

beforeEach(() => s3Mock.reset());

describe('S3ObjectStore.put', () => {
  it('sends PutObject with the content type and metadata', async () => {
    s3Mock.on(cmd(PutObjectCommand)).resolves({});
    await store.put('batches/t1/chunk-0.json', '{"a":1}', {
      contentType: 'application/json',
      metadata: { certificateid: 'abc' },
    });
    expect(s3Mock).toHaveReceivedCommandTimes(cmd(PutObjectCommand), 1);
    expect(s3Mock).toHaveReceivedCommandWith(cmd(PutObjectCommand), {
      Bucket: BUCKET,
      Key: 'batches/t1/chunk-0.json',
      Body: '{"a":1}',
      ContentType: 'application/json',
      Metadata: { certificateid: 'abc' },
    });
  });

  it('leaves ContentType and Metadata out when not given', async () => {
    s3Mock.on(cmd(PutObjectCommand)).resolves({});
    await store.put('k', Buffer.from('x'));
    expect(s3Mock.commandCalls(cmd(PutObjectCommand))[0]!.args[0].input).toEqual({
      Bucket: BUCKET,
      Key: 'k',
      Body: Buffer.from('x'),
    });
  });
});

describe('S3ObjectStore.get', () => {
  it('returns the object bytes', async () => {
    s3Mock.on(cmd(GetObjectCommand), { Bucket: BUCKET, Key: 'a/b' }).resolves({ Body: body('hel', 'lo') });
    await expect(store.get('a/b')).resolves.toEqual(Buffer.from('hello'));
  });

  it.each([
    ['NoSuchKey', noSuchKey()],
    [
      '404 without a modelled name',
      new S3ServiceException({ name: 'Unknown', $fault: 'client', $metadata: { httpStatusCode: 404 } }),
    ],
  ])('maps %s to NotFoundError OBJECT_NOT_FOUND', async (_label, error) => {
    s3Mock.on(cmd(GetObjectCommand)).rejects(error);
    const caught = await store.get('missing').catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(NotFoundError);
    expect(caught).toMatchObject({ code: 'OBJECT_NOT_FOUND', status: 404, details: { key: 'missing' } });
  });

  it('lets other errors through unchanged', async () => {
    const denied = new S3ServiceException({
      name: 'AccessDenied',
      $fault: 'client',
      $metadata: { httpStatusCode: 403 },
    });
    s3Mock.on(cmd(GetObjectCommand)).rejects(denied);
    await expect(store.get('k')).rejects.toBe(denied);
  });
});

describe('S3ObjectStore.getRange', () => {
  it('asks for bytes start to end-1 (HTTP ranges are inclusive)', async () => {
    s3Mock.on(cmd(GetObjectCommand)).resolves({ Body: body('23456') });
    await expect(store.getRange('zip', 2, 7)).resolves.toEqual(Buffer.from('23456'));
    expect(s3Mock).toHaveReceivedCommandWith(cmd(GetObjectCommand), { Bucket: BUCKET, Key: 'zip', Range: 'bytes=2-6' });
  });

  it('maps NoSuchKey to NotFoundError', async () => {
    s3Mock.on(cmd(GetObjectCommand)).rejects(noSuchKey());
    await expect(store.getRange('zip', 0, 10)).rejects.toMatchObject({ code: 'OBJECT_NOT_FOUND' });
  });

  it('answers an empty range without a GetObject, after checking that the object exists', async () => {
    s3Mock.on(cmd(HeadObjectCommand)).resolves({ ContentLength: 10 });
    await expect(store.getRange('zip', 4, 4)).resolves.toEqual(Buffer.alloc(0));
    expect(s3Mock).not.toHaveReceivedCommand(cmd(GetObjectCommand));
  });

  it.each([
    ['error/negative start', -1, 3],
    ['error/end before start', 5, 3],
    ['error/fractional', 0.5, 3],
  ])('%s is refused', async (_label, start, end) => {
    await expect(store.getRange('zip', start, end)).rejects.toBeInstanceOf(ValidationError);
    expect(s3Mock.calls()).toHaveLength(0);
  });
});

describe('S3ObjectStore.getStream', () => {
  it('returns the body as an async iterable of chunks', async () => {
    s3Mock.on(cmd(GetObjectCommand)).resolves({ Body: body('ab', 'cd', 'ef') });
    const stream = await store.getStream('zip');
    const parts: Buffer[] = [];
    for await (const chunk of stream) parts.push(Buffer.from(chunk));
    expect(Buffer.concat(parts).toString()).toBe('abcdef');
  });

  it('throws NotFoundError before any chunk when the object is absent', async () => {
    s3Mock.on(cmd(GetObjectCommand)).rejects(noSuchKey());
    await expect(store.getStream('zip')).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe('S3ObjectStore.head', () => {
  it('returns size, content type and metadata', async () => {
    s3Mock
      .on(cmd(HeadObjectCommand), { Bucket: BUCKET, Key: 'certificates/thing-1.zip' })
      .resolves({ ContentLength: 1234, ContentType: 'application/zip', Metadata: { certificateid: 'abc' } });
    await expect(store.head('certificates/thing-1.zip')).resolves.toEqual({
      size: 1234,
      contentType: 'application/zip',
      metadata: { certificateid: 'abc' },
    });
  });

  it('returns undefined for NotFound', async () => {
    s3Mock
      .on(cmd(HeadObjectCommand))
      .rejects(new NotFound({ message: 'Not Found', $metadata: { httpStatusCode: 404 } }));
    await expect(store.head('nope')).resolves.toBeUndefined();
  });

  it('rethrows other errors', async () => {
    s3Mock.on(cmd(HeadObjectCommand)).rejects(new Error('socket hang up'));
    await expect(store.head('k')).rejects.toThrow('socket hang up');
  });
});

describe('S3ObjectStore.compose of a byte stream', () => {
  it('sends a small stream as one PutObject of the whole content', async () => {
    s3Mock.on(cmd(PutObjectCommand)).resolves({ ETag: '"e"' });
    const result = await store.compose('batches/t1/all.zip', chunks(3, 1000), { contentType: 'application/zip' });
    expect(result).toEqual({ size: 3000 });
    expect(s3Mock).not.toHaveReceivedCommand(cmd(CreateMultipartUploadCommand));
    expect(s3Mock).toHaveReceivedCommandWith(cmd(PutObjectCommand), {
      Bucket: BUCKET,
      Key: 'batches/t1/all.zip',
      ContentType: 'application/zip',
    });
    const sent = s3Mock.commandCalls(cmd(PutObjectCommand))[0]!.args[0].input.Body as Buffer;
    expect(sent).toHaveLength(3000);
  });

  it('streams a large object as 8 MiB parts and completes the multipart upload', async () => {
    s3Mock.on(cmd(CreateMultipartUploadCommand)).resolves({ UploadId: 'up-1' });
    s3Mock
      .on(cmd(UploadPartCommand))
      .callsFake((input: { PartNumber: number }) => ({ ETag: `"etag-${input.PartNumber}"` }));
    s3Mock.on(cmd(CompleteMultipartUploadCommand)).resolves({ Location: 'x' });

    const result = await store.compose('batches/t1/all.zip', chunks(17, MiB), {
      contentType: 'application/zip',
      metadata: { taskid: 't1' },
    });

    expect(result).toEqual({ size: 17 * MiB });
    expect(s3Mock).toHaveReceivedCommandWith(cmd(CreateMultipartUploadCommand), {
      Bucket: BUCKET,
      Key: 'batches/t1/all.zip',
      ContentType: 'application/zip',
      Metadata: { taskid: 't1' },
    });
    const parts = s3Mock.commandCalls(cmd(UploadPartCommand)).map((c) => c.args[0].input);
    expect(parts.map((p) => [p.PartNumber, (p.Body as Buffer).length]).sort((a, b) => a[0]! - b[0]!)).toEqual([
      [1, 8 * MiB],
      [2, 8 * MiB],
      [3, MiB],
    ]);
    expect(parts.every((p) => p.UploadId === 'up-1' && p.Key === 'batches/t1/all.zip')).toBe(true);
    expect(s3Mock).toHaveReceivedCommandWith(cmd(CompleteMultipartUploadCommand), {
      Bucket: BUCKET,
      Key: 'batches/t1/all.zip',
      UploadId: 'up-1',
      MultipartUpload: {
        Parts: [
          expect.objectContaining({ PartNumber: 1, ETag: '"etag-1"' }),
          expect.objectContaining({ PartNumber: 2, ETag: '"etag-2"' }),
          expect.objectContaining({ PartNumber: 3, ETag: '"etag-3"' }),
        ],
      },
    });
    expect(s3Mock).not.toHaveReceivedCommand(cmd(AbortMultipartUploadCommand));
    expect(s3Mock).not.toHaveReceivedCommand(cmd(PutObjectCommand));
  });

  it('sends parts of the size the store is given (a local server: 1 MiB), and refuses one below minPartSize', async () => {
    s3Mock.on(cmd(CreateMultipartUploadCommand)).resolves({ UploadId: 'up-2' });
    s3Mock
      .on(cmd(UploadPartCommand))
      .callsFake((input: { PartNumber: number }) => ({ ETag: `"etag-${input.PartNumber}"` }));
    s3Mock.on(cmd(CompleteMultipartUploadCommand)).resolves({ Location: 'x' });
    const local = new S3ObjectStore(client, BUCKET, { minPartSize: 0, partSize: MiB });

    expect(await local.compose('batches/t2/all.zip', chunks(5, 700 * 1024))).toEqual({ size: 3500 * 1024 });

    const sizes = s3Mock
      .commandCalls(cmd(UploadPartCommand))
      .map((c) => [c.args[0].input.PartNumber, (c.args[0].input.Body as Buffer).length]);
    expect(sizes.sort((a, b) => a[0]! - b[0]!)).toEqual([
      [1, MiB],
      [2, MiB],
      [3, MiB],
      [4, 3500 * 1024 - 3 * MiB],
    ]);
    expect(() => new S3ObjectStore(client, BUCKET, { partSize: 4 * MiB })).toThrow(/at least minPartSize/);
    expect(() => new S3ObjectStore(client, BUCKET, { minPartSize: 0, partSize: 0 })).toThrow(RangeError);
  });

  it('aborts the multipart upload when a part fails, and never completes it', async () => {
    s3Mock.on(cmd(CreateMultipartUploadCommand)).resolves({ UploadId: 'up-2' });
    s3Mock.on(cmd(UploadPartCommand)).callsFake((input: { PartNumber: number }) => {
      if (input.PartNumber === 2) throw new Error('part 2 failed');
      return { ETag: '"e"' };
    });
    s3Mock.on(cmd(AbortMultipartUploadCommand)).resolves({});

    await expect(store.compose('big.zip', chunks(17, MiB))).rejects.toThrow('part 2 failed');
    expect(s3Mock).toHaveReceivedCommandWith(cmd(AbortMultipartUploadCommand), {
      Bucket: BUCKET,
      Key: 'big.zip',
      UploadId: 'up-2',
    });
    expect(s3Mock).not.toHaveReceivedCommand(cmd(CompleteMultipartUploadCommand));
  });

  it('aborts the multipart upload when the source stream fails half way', async () => {
    s3Mock.on(cmd(CreateMultipartUploadCommand)).resolves({ UploadId: 'up-3' });
    s3Mock.on(cmd(UploadPartCommand)).resolves({ ETag: '"e"' });
    s3Mock.on(cmd(AbortMultipartUploadCommand)).resolves({});

    await expect(store.compose('big.zip', chunks(20, MiB, 10))).rejects.toThrow('source broke');
    expect(s3Mock).toHaveReceivedCommandWith(cmd(AbortMultipartUploadCommand), { UploadId: 'up-3', Key: 'big.zip' });
    expect(s3Mock).not.toHaveReceivedCommand(cmd(CompleteMultipartUploadCommand));
    expect(s3Mock).not.toHaveReceivedCommand(cmd(PutObjectCommand));
  });

  it('writes nothing when a small source fails before its end', async () => {
    await expect(store.compose('small.zip', chunks(3, 10, 2))).rejects.toThrow('source broke');
    expect(s3Mock.calls()).toHaveLength(0);
  });
});

describe('S3ObjectStore.presignGet', () => {
  it('signs a GetObject URL with the expiry and an attachment file name', async () => {
    const url = new URL(await store.presignGet('batches/t1/all.zip', 3600, 'certificates-t1.zip'));
    expect(url.hostname).toBe(`${BUCKET}.s3.eu-west-1.amazonaws.com`);
    expect(url.pathname).toBe('/batches/t1/all.zip');
    expect(url.searchParams.get('X-Amz-Expires')).toBe('3600');
    expect(url.searchParams.get('X-Amz-Credential')).toMatch(/^AKIDEXAMPLE\//);
    expect(url.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
    expect(url.searchParams.get('response-content-disposition')).toBe('attachment; filename="certificates-t1.zip"');
    expect(s3Mock.calls()).toHaveLength(0); // presigning sends nothing
  });

  it('leaves Content-Disposition alone without a download name', async () => {
    const url = new URL(await store.presignGet('k', 300));
    expect(url.searchParams.has('response-content-disposition')).toBe(false);
    expect(url.searchParams.get('X-Amz-Expires')).toBe('300');
  });

  it('refuses expiries SigV4 cannot sign', async () => {
    await expect(store.presignGet('k', 0)).rejects.toMatchObject({ code: 'INVALID_EXPIRY' });
    await expect(store.presignGet('k', 604_801)).rejects.toMatchObject({ code: 'INVALID_EXPIRY' });
  });
});

describe('contentDisposition', () => {
  it.each([
    ['ok/plain', 'a.zip', 'attachment; filename="a.zip"'],
    ['ok/quotes are replaced', 'a"b.zip', `attachment; filename="a_b.zip"; filename*=UTF-8''a%22b.zip`],
    [
      'ok/non-ASCII gets filename*',
      'zertifikäte.zip',
      `attachment; filename="zertifik_te.zip"; filename*=UTF-8''zertifik%C3%A4te.zip`,
    ],
  ])('%s', (_label, name, expected) => {
    expect(contentDisposition(name)).toBe(expected);
  });
});

describe('S3ObjectStore.list', () => {
  it('follows continuation tokens until the listing is complete', async () => {
    s3Mock
      .on(cmd(ListObjectsV2Command), { Bucket: BUCKET, Prefix: 'batches/t1/' })
      .resolvesOnce({
        Contents: [{ Key: 'batches/t1/a' }, { Key: 'batches/t1/b' }],
        IsTruncated: true,
        NextContinuationToken: 'tok-1',
      })
      .resolvesOnce({ Contents: [{ Key: 'batches/t1/c' }], IsTruncated: false });
    await expect(store.list('batches/t1/')).resolves.toEqual(['batches/t1/a', 'batches/t1/b', 'batches/t1/c']);
    expect(s3Mock).toHaveReceivedCommandTimes(cmd(ListObjectsV2Command), 2);
    expect(s3Mock).toHaveReceivedNthCommandWith(1, cmd(ListObjectsV2Command), {
      Bucket: BUCKET,
      Prefix: 'batches/t1/',
    });
    expect(s3Mock.commandCalls(cmd(ListObjectsV2Command))[0]!.args[0].input).not.toHaveProperty('ContinuationToken');
    expect(s3Mock).toHaveReceivedNthCommandWith(2, cmd(ListObjectsV2Command), {
      Bucket: BUCKET,
      Prefix: 'batches/t1/',
      ContinuationToken: 'tok-1',
    });
  });

  it('returns an empty list for an empty prefix', async () => {
    s3Mock.on(cmd(ListObjectsV2Command)).resolves({ KeyCount: 0, IsTruncated: false });
    await expect(store.list('none/')).resolves.toEqual([]);
  });
});

describe('S3ObjectStore.delete', () => {
  it('deletes in batches of at most 1000 keys', async () => {
    s3Mock.on(cmd(DeleteObjectsCommand)).resolves({});
    const keys = Array.from({ length: 2500 }, (_, i) => `k/${i}`);
    await store.delete(keys);
    const batches = s3Mock.commandCalls(cmd(DeleteObjectsCommand)).map((c) => c.args[0].input);
    expect(batches.map((b) => b.Delete!.Objects!.length)).toEqual([1000, 1000, 500]);
    expect(batches.flatMap((b) => b.Delete!.Objects!.map((o) => o.Key))).toEqual(keys);
    expect(s3Mock).toHaveReceivedCommandWith(cmd(DeleteObjectsCommand), {
      Bucket: BUCKET,
      Delete: { Objects: expect.arrayContaining([{ Key: 'k/0' }]), Quiet: true },
    });
  });

  it('sends nothing for no keys', async () => {
    await store.delete([]);
    expect(s3Mock.calls()).toHaveLength(0);
  });

  it('reports the keys S3 refused to delete', async () => {
    s3Mock
      .on(cmd(DeleteObjectsCommand))
      .resolves({ Errors: [{ Key: 'k/1', Code: 'AccessDenied', Message: 'Access Denied' }] });
    const caught = await store.delete(['k/0', 'k/1']).catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(ObjectDeleteError);
    expect(caught).toMatchObject({
      name: 'ObjectDeleteError',
      failures: [{ key: 'k/1', code: 'AccessDenied', message: 'Access Denied' }],
    });
  });
});

describe('S3ObjectStore.compose', () => {
  const copy = (key: string, start: number, end: number) => ({ copyFrom: { key, start, end } });
  async function* of(...pieces: (Uint8Array | ReturnType<typeof copy>)[]) {
    yield* pieces;
  }
  const sequence = () =>
    s3Mock.calls().map((c) => {
      const { constructor, input } = c.args[0] as unknown as { constructor: { name: string }; input: object };
      return [constructor.name.replace(/Command$/, ''), input] as const;
    });

  beforeEach(() => {
    s3Mock.on(cmd(CreateMultipartUploadCommand)).resolves({ UploadId: 'up-c' });
    s3Mock
      .on(cmd(UploadPartCommand))
      .callsFake((input: { PartNumber: number }) => ({ ETag: `"p${input.PartNumber}"` }));
    s3Mock
      .on(cmd(UploadPartCopyCommand))
      .callsFake((input: { PartNumber: number }) => ({ CopyPartResult: { ETag: `"c${input.PartNumber}"` } }));
    s3Mock.on(cmd(CompleteMultipartUploadCommand)).resolves({});
    s3Mock.on(cmd(GetObjectCommand)).callsFake((input: { Range: string }) => {
      const [, first, last] = /^bytes=(\d+)-(\d+)$/.exec(input.Range)!;
      return { Body: body(Buffer.alloc(Number(last) - Number(first) + 1, 7)) };
    });
  });

  it('copies ranges of at least 5 MiB with UploadPartCopy and sends the bytes around them as parts', async () => {
    const result = await store.compose(
      'batches/t1/all.zip',
      of(
        copy('batches/t1/chunks/0.zip', 0, 6 * MiB),
        copy('batches/t1/chunks/1 a+b.zip', 0, 5 * MiB),
        Buffer.alloc(100),
      ),
      { contentType: 'application/zip' },
    );
    expect(result).toEqual({ size: 11 * MiB + 100 });
    expect(sequence()).toEqual([
      ['CreateMultipartUpload', { Bucket: BUCKET, Key: 'batches/t1/all.zip', ContentType: 'application/zip' }],
      [
        'UploadPartCopy',
        {
          Bucket: BUCKET,
          Key: 'batches/t1/all.zip',
          UploadId: 'up-c',
          PartNumber: 1,
          CopySource: `${BUCKET}/batches/t1/chunks/0.zip`,
          CopySourceRange: `bytes=0-${6 * MiB - 1}`,
        },
      ],
      [
        'UploadPartCopy',
        expect.objectContaining({
          PartNumber: 2,
          CopySource: `${BUCKET}/batches/t1/chunks/1%20a%2Bb.zip`,
          CopySourceRange: `bytes=0-${5 * MiB - 1}`,
        }),
      ],
      ['UploadPart', expect.objectContaining({ UploadId: 'up-c', PartNumber: 3 })],
      [
        'CompleteMultipartUpload',
        {
          Bucket: BUCKET,
          Key: 'batches/t1/all.zip',
          UploadId: 'up-c',
          MultipartUpload: {
            Parts: [
              { PartNumber: 1, ETag: '"c1"' },
              { PartNumber: 2, ETag: '"c2"' },
              { PartNumber: 3, ETag: '"p3"' },
            ],
          },
        },
      ],
    ]);
  });

  it('reads ranges that cannot be parts (too small, or after too few bytes) and sends them in 8 MiB parts', async () => {
    const result = await store.compose(
      'z',
      of(Buffer.alloc(MiB), copy('c/0', 0, 6 * MiB), copy('c/1', 10, 2 * MiB + 10), copy('c/2', 0, 0)),
    );
    expect(result).toEqual({ size: 9 * MiB });
    const names = sequence().map(([name]) => name);
    // 1 MiB of bytes first, so the 6 MiB range cannot be a part of its own: both ranges are read, then 8 MiB go out
    expect(names).toEqual([
      'GetObject',
      'GetObject',
      'CreateMultipartUpload',
      'UploadPart',
      'UploadPart',
      'CompleteMultipartUpload',
    ]);
    expect(s3Mock).toHaveReceivedCommandWith(cmd(GetObjectCommand), { Key: 'c/0', Range: `bytes=0-${6 * MiB - 1}` });
    expect(s3Mock).toHaveReceivedCommandWith(cmd(GetObjectCommand), { Key: 'c/1', Range: `bytes=10-${2 * MiB + 9}` });
    const parts = s3Mock.commandCalls(cmd(UploadPartCommand)).map((c) => (c.args[0].input.Body as Buffer).length);
    expect(parts).toEqual([8 * MiB, MiB]);
  });

  it('sends what fits in one part and copies nothing as one PutObject', async () => {
    s3Mock.on(cmd(PutObjectCommand)).resolves({});
    await expect(store.compose('small.zip', of(Buffer.from('ab'), copy('c/0', 0, 3)))).resolves.toEqual({ size: 5 });
    expect(sequence().map(([name]) => name)).toEqual(['GetObject', 'PutObject']);
    expect(s3Mock.commandCalls(cmd(PutObjectCommand))[0]!.args[0].input.Body).toEqual(
      Buffer.from([0x61, 0x62, 7, 7, 7]),
    );
  });

  it('copies ranges of any size when the store allows small parts (s3rver)', async () => {
    const local = new S3ObjectStore(client, BUCKET, { minPartSize: 0 });
    await local.compose('z', of(copy('c/0', 0, 10), Buffer.from('x'), copy('c/1', 5, 6)));
    expect(sequence().map(([name]) => name)).toEqual([
      'CreateMultipartUpload',
      'UploadPartCopy',
      'UploadPart',
      'UploadPartCopy',
      'CompleteMultipartUpload',
    ]);
  });

  it('keeps up to COPY_CONCURRENCY copies in flight, and completes with the parts in order once all are answered', async () => {
    const local = new S3ObjectStore(client, BUCKET, { minPartSize: 0 });
    let inFlight = 0;
    let most = 0;
    const answers: (() => void)[] = [];
    s3Mock.on(cmd(UploadPartCopyCommand)).callsFake((input: { PartNumber: number }) => {
      inFlight++;
      most = Math.max(most, inFlight);
      return new Promise((resolve) =>
        answers.push(() => {
          inFlight--;
          resolve({ CopyPartResult: { ETag: `"c${input.PartNumber}"` } });
        }),
      );
    });
    // answer the copies newest first, whenever the store waits
    const answering = setInterval(() => answers.pop()?.(), 2);
    try {
      const pieces = Array.from({ length: 7 }, (_, i) => copy(`c/${i}`, 0, 10));
      await expect(local.compose('z', of(...pieces))).resolves.toEqual({ size: 70 });
    } finally {
      clearInterval(answering);
    }
    expect(most).toBe(COPY_CONCURRENCY);
    const complete = s3Mock.commandCalls(cmd(CompleteMultipartUploadCommand));
    expect(complete).toHaveLength(1);
    expect(complete[0]!.args[0].input.MultipartUpload!.Parts).toEqual(
      [1, 2, 3, 4, 5, 6, 7].map((n) => ({ PartNumber: n, ETag: `"c${n}"` })),
    );
  });

  it('aborts only once the copies in flight are answered when one of them fails', async () => {
    const local = new S3ObjectStore(client, BUCKET, { minPartSize: 0 });
    const order: string[] = [];
    s3Mock.on(cmd(UploadPartCopyCommand)).callsFake(async (input: { PartNumber: number }) => {
      // the first copy fails while the two after it are still being copied
      await new Promise((r) => setTimeout(r, input.PartNumber === 1 ? 5 : 30));
      if (input.PartNumber === 1) throw noSuchKey();
      order.push(`copied ${input.PartNumber}`);
      return { CopyPartResult: { ETag: `"c${input.PartNumber}"` } };
    });
    s3Mock.on(cmd(AbortMultipartUploadCommand)).callsFake(async () => {
      order.push('abort');
      return {};
    });
    await expect(
      local.compose('z', of(copy('c/0', 0, 10), copy('c/1', 0, 10), copy('c/2', 0, 10))),
    ).rejects.toMatchObject({ name: 'NoSuchKey' });
    expect(order).toEqual(['copied 2', 'copied 3', 'abort']);
    expect(s3Mock).not.toHaveReceivedCommand(cmd(CompleteMultipartUploadCommand));
  });

  it('aborts the upload when a copy fails, and refuses an invalid range before sending anything', async () => {
    s3Mock.on(cmd(UploadPartCopyCommand)).rejects(noSuchKey());
    s3Mock.on(cmd(AbortMultipartUploadCommand)).resolves({});
    await expect(store.compose('z', of(copy('c/none', 0, 6 * MiB)))).rejects.toMatchObject({ name: 'NoSuchKey' });
    expect(s3Mock).toHaveReceivedCommandWith(cmd(AbortMultipartUploadCommand), {
      Bucket: BUCKET,
      Key: 'z',
      UploadId: 'up-c',
    });
    expect(s3Mock).not.toHaveReceivedCommand(cmd(CompleteMultipartUploadCommand));
    s3Mock.resetHistory();
    await expect(store.compose('z', of(copy('c/0', 5, 2)))).rejects.toMatchObject({ code: 'INVALID_RANGE' });
    expect(s3Mock.calls()).toHaveLength(0);
  });
});
