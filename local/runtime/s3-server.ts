/**
 * s3rver (the S3 wire protocol on the file system) started in-process on 127.0.0.1, with a small compatibility layer
 * for what the AWS SDK v3 and lib-storage need and s3rver 3.7.1 gets wrong.
 *
 * Verified with @aws-sdk/client-s3 v3 (test/unit/local-runtime/s3-server.test.ts), and the workarounds:
 * - Clients must use path-style URLs (`forcePathStyle: true`), the endpoint on 127.0.0.1 (the server listens on the
 *   IPv4 loopback only, and `localhost` may resolve to ::1; s3rver also reads any host name other than an IP address,
 *   `localhost` or the machine's name as a virtual-hosted bucket), and the access key id `S3RVER` (any other is
 *   InvalidAccessKeyId). s3rver never checks SigV4 signatures (a tampered presigned URL still works; anonymous GETs
 *   work) but does check presigned URL expiry.
 * - The SDK's default flexible checksums (`requestChecksumCalculation: 'WHEN_SUPPORTED'`) send stream bodies with
 *   `aws-chunked` encoding and a trailing CRC32; s3rver does not decode it and STORES THE CHUNK FRAMING as the object
 *   (and a stream of unknown length fails in the SDK with `x-amz-decoded-content-length`). `createLocalS3Client`
 *   sets `requestChecksumCalculation` and `responseChecksumValidation` to `WHEN_REQUIRED`, which fixes both.
 * - AbortMultipartUpload (`DELETE /bucket/key?uploadId=…`) answers 405 MethodNotAllowed, so a lib-storage `Upload`
 *   whose source stream fails rejects with MethodNotAllowed instead of the stream's error. The layer below
 *   implements it (drops the stored parts, 204; NoSuchUpload 404 when unknown).
 * - ListObjectsV2 answers 500 whenever the listing is truncated (more than MaxKeys, 1000 by default): its
 *   continuation token is encrypted with DES, which OpenSSL 3 (Node ≥ 17) no longer provides. The layer below runs
 *   list-type=2 requests as s3rver's (marker-based) version 1 listing and renders the version 2 fields, with an
 *   opaque continuation token of its own.
 * - Not emulated (harmless here): multipart ETags are the MD5 of the whole object rather than `<md5>-<parts>`, and
 *   the 5 MiB minimum part size is not enforced.
 * - UploadPartCopy (`x-amz-copy-source` on a part) answers NotImplemented; the layer below implements it (the range
 *   is read from the source object's file into the part, no bytes through the client).
 * - s3rver's request logger runs even when it is silent (it formats every request and pipes every response body
 *   through a counting stream); the layer removes it.
 * - Honoured: `x-amz-meta-*` metadata (lower-cased, as S3 does), Range requests, presigned GETs with
 *   `ResponseContentDisposition` / `ResponseContentType` overrides, DeleteObjects, CopyObject.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  BucketAlreadyExists,
  BucketAlreadyOwnedByYou,
  CreateBucketCommand,
  HeadBucketCommand,
  NotFound,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import S3rver from 's3rver';
// s3rver's error type: thrown from its store, it answers with its code (anything else is a 500 InternalError)
// eslint-disable-next-line @typescript-eslint/no-require-imports
const S3rverError = require('s3rver/lib/models/error') as new (code: string, message: string) => Error;
import { LOCAL_AWS_CREDENTIALS, LOCAL_AWS_REGION, type LocalServer } from './types';

export interface S3ServerOptions {
  /** s3rver's data directory (created when missing): one folder per bucket, objects as files; survives restarts */
  dataDir: string;
}

export async function startS3(options: S3ServerOptions): Promise<LocalServer> {
  await mkdir(options.dataDir, { recursive: true });
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: options.dataDir });
  installCompatibilityLayer(server as unknown as KoaLike);
  const { port } = await server.run();
  let closing: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    close: () => (closing ??= server.close()),
  };
}

/**
 * An S3 client for a local endpoint: path-style, us-east-1, the `S3RVER` key, and checksums only where an operation
 * requires them (see the file header: s3rver stores aws-chunked bodies verbatim).
 */
export function createLocalS3Client(endpoint: string): S3Client {
  const client = new S3Client({
    endpoint,
    region: LOCAL_AWS_REGION,
    credentials: LOCAL_AWS_CREDENTIALS,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  // s3rver checks no signatures: skip hashing every body for SigV4 (as the SDK does over HTTPS), on loopback only
  client.middlewareStack.add(
    (next) => (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers) request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      return next(args);
    },
    { step: 'build', name: 'localUnsignedPayload' },
  );
  return client;
}

/** Creates the bucket unless it exists. */
export async function ensureBucket(client: S3Client, name: string): Promise<void> {
  try {
    await client.send(new HeadBucketCommand({ Bucket: name }));
    return;
  } catch (error) {
    if (!(
      error instanceof NotFound ||
      (error instanceof S3ServiceException && error.$metadata.httpStatusCode === 404)
    )) {
      throw error;
    }
  }
  try {
    await client.send(new CreateBucketCommand({ Bucket: name }));
  } catch (error) {
    // created concurrently (s3rver answers BucketAlreadyExists even to its only account)
    if (error instanceof BucketAlreadyOwnedByYou) return;
    if (error instanceof BucketAlreadyExists) {
      await client.send(new HeadBucketCommand({ Bucket: name }));
      return;
    }
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Compatibility layer: one Koa middleware placed just before s3rver's router (after its XML encoder, so it sees and
// sets `ctx.body` as the plain objects s3rver's controllers use).

interface KoaContext {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  headers: Record<string, string | string[] | undefined>;
  status: number;
  body: unknown;
  /** s3rver's FilesystemStore (app.context.store) */
  store: S3rverStore;
}
/** The part of s3rver 3.7.1's FilesystemStore the layer uses. */
interface S3rverStore {
  getObject(
    bucket: string,
    key: string,
    range?: { start: number; end: number },
  ): Promise<{ content: (NodeJS.ReadableStream & { destroy(): void }) | null; range?: unknown } | null>;
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  putMetadata(bucket: string, key: string, metadata: Record<string, unknown>, md5: string): Promise<void>;
  putObjectMultipart(
    bucket: string,
    uploadId: string,
    parts: { number: number; etag: string }[],
  ): Promise<{ md5: string; size: number }>;
}
type KoaMiddleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;
interface KoaLike {
  middleware: KoaMiddleware[];
  store: S3rverStore;
}

/** s3rver 3.7.1 registers: logger, XML encoder, Express mount interop, vhost, router. */
const S3RVER_MIDDLEWARE_COUNT = 5;
const TOKEN_PREFIX = 'certflow-local:';

function installCompatibilityLayer(app: KoaLike): void {
  if (!Array.isArray(app.middleware) || app.middleware.length !== S3RVER_MIDDLEWARE_COUNT) {
    throw new Error(
      `s3rver's middleware stack is not the one of s3rver 3.7.1 (${app.middleware?.length} entries): ` +
        'review local/runtime/s3-server.ts before upgrading s3rver',
    );
  }
  const compat: KoaMiddleware = async (ctx, next) => {
    const [bucket, ...keyParts] = ctx.path.replace(/^\//, '').split('/');
    const key = keyParts.join('/');
    if (ctx.method === 'DELETE' && bucket && key && typeof ctx.query.uploadId === 'string') {
      await abortMultipartUpload(ctx, bucket, ctx.query.uploadId);
      return;
    }
    if (
      ctx.method === 'PUT' &&
      bucket &&
      key &&
      typeof ctx.query.uploadId === 'string' &&
      ctx.headers['x-amz-copy-source'] !== undefined
    ) {
      await uploadPartCopy(ctx, bucket, ctx.query.uploadId);
      return;
    }
    if (ctx.method === 'GET' && bucket && !key && ctx.query['list-type'] === '2') {
      await listObjectsV2(ctx, next);
      return;
    }
    await next();
  };
  app.middleware.splice(S3RVER_MIDDLEWARE_COUNT - 1, 0, compat);
  // the server is silent, but s3rver's request logger (koa-logger) still formats two coloured lines per request and
  // pipes every streamed response body through a byte-counting stream: ~10 % of this server's CPU in a batch, and
  // one more copy of every download
  if (app.middleware[0]?.name !== 'logger') throw new Error("s3rver's first middleware is not its request logger");
  app.middleware.shift();
  completeWithCopiedParts(app.store);
}

function s3Error(ctx: KoaContext, status: number, code: string, message: string): void {
  ctx.status = status;
  ctx.body = { Error: { Code: code, Message: message } };
}

/** Whether the multipart upload exists: s3rver keeps its parts under <dataDir>/<bucket>/._S3rver_uploads/<id>/. */
async function uploadExists(store: S3rverStore, bucket: string, uploadId: string): Promise<boolean> {
  return (
    /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) &&
    /^[0-9a-f]+$/i.test(uploadId) &&
    stat(uploadDirOf(store, bucket, uploadId)).then(
      (s) => s.isDirectory(),
      () => false,
    )
  );
}

/** The directory of an upload's parts, as s3rver's own store names it. */
const uploadDirOf = (store: S3rverStore, bucket: string, uploadId: string): string =>
  join(store.getResourcePath(bucket, undefined, 'uploads'), uploadId);

/**
 * UploadPartCopy (`PUT /bucket/key?partNumber=N&uploadId=U` with `x-amz-copy-source` and an optional
 * `x-amz-copy-source-range: bytes=a-b`), which s3rver answers NotImplemented: the source object's bytes go straight
 * from its file into the part, as S3 copies server-side. As s3rver does for UploadPart, no minimum part size.
 */
async function uploadPartCopy(ctx: KoaContext, bucket: string, uploadId: string) {
  const partNumber = String(ctx.query.partNumber ?? '');
  if (!/^[1-9][0-9]{0,4}$/.test(partNumber) || Number(partNumber) > 10_000) {
    s3Error(ctx, 400, 'InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive');
    return;
  }
  if (!(await uploadExists(ctx.store, bucket, uploadId))) {
    s3Error(ctx, 404, 'NoSuchUpload', 'The specified upload does not exist.');
    return;
  }
  const source = decodeURIComponent(String(ctx.headers['x-amz-copy-source'])).replace(/^\//, '');
  const slash = source.indexOf('/');
  const [sourceBucket, sourceKey] = slash > 0 ? [source.slice(0, slash), source.slice(slash + 1)] : ['', ''];
  if (!sourceBucket || !sourceKey || sourceKey.includes('?')) {
    s3Error(ctx, 400, 'InvalidArgument', 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey');
    return;
  }
  const rangeHeader = ctx.headers['x-amz-copy-source-range'];
  let range: { start: number; end: number } | undefined;
  if (rangeHeader !== undefined) {
    const m = /^bytes=(\d+)-(\d+)$/.exec(String(rangeHeader));
    if (!m || Number(m[2]) < Number(m[1])) {
      s3Error(ctx, 400, 'InvalidArgument', 'The x-amz-copy-source-range value must be of the form bytes=first-last');
      return;
    }
    range = { start: Number(m[1]), end: Number(m[2]) };
  }
  const object = await ctx.store.getObject(sourceBucket, sourceKey, range);
  if (!object) {
    s3Error(ctx, 404, 'NoSuchKey', 'The specified key does not exist.');
    return;
  }
  object.content?.destroy(); // only the range is checked here: the bytes are read once, by CompleteMultipartUpload
  if (!object.content) {
    s3Error(ctx, 400, 'InvalidRange', 'The requested range is not satisfiable');
    return;
  }
  const path = ctx.store.getResourcePath(sourceBucket, sourceKey, 'object');
  const { size, mtimeMs } = await stat(path);
  const copy: CopiedPart = {
    path,
    start: range?.start ?? 0,
    end: range ? Math.min(range.end, size - 1) : size - 1,
    size,
    mtimeMs,
  };
  const uploadDir = uploadDirOf(ctx.store, bucket, uploadId);
  const body = JSON.stringify(copy);
  await writeFile(join(uploadDir, `${partNumber}${COPY_SUFFIX}`), body);
  await rm(join(uploadDir, partNumber), { force: true }); // the last write of a part number wins, as on S3
  const etag = createHash('md5').update(body).digest('hex');
  ctx.status = 200;
  ctx.body = { CopyPartResult: { LastModified: new Date().toISOString(), ETag: JSON.stringify(etag) } };
}

/** A part made by UploadPartCopy: a byte range [start, end] of an object file, as it was when the part was made. */
interface CopiedPart {
  path: string;
  start: number;
  end: number;
  size: number;
  mtimeMs: number;
}
const COPY_SUFFIX = '.certflow-copy.json';

/**
 * CompleteMultipartUpload of an upload with copied parts: the object is written once, from the copied ranges of
 * their source files and the uploaded parts' files, in part order (S3 copies at UploadPartCopy time; here a source
 * changed or removed since fails the completion with InvalidPart instead). Its ETag is S3's multipart ETag, the MD5
 * of the parts' MD5s and `-{count}`, so the object is not hashed again. Uploads without copied parts keep s3rver's
 * own completion.
 */
function completeWithCopiedParts(store: S3rverStore): void {
  const original = store.putObjectMultipart.bind(store);
  store.putObjectMultipart = async (bucket, uploadId, parts) => {
    const uploadDir = uploadDirOf(store, bucket, uploadId);
    const sorted = [...parts].sort((a, b) => a.number - b.number);
    const copies = await Promise.all(
      sorted.map((part) =>
        readFile(join(uploadDir, `${part.number}${COPY_SUFFIX}`), 'utf8').then(
          (text) => JSON.parse(text) as CopiedPart,
          () => undefined,
        ),
      ),
    );
    if (copies.every((copy) => copy === undefined)) return original(bucket, uploadId, parts);
    for (const copy of copies) {
      const now = copy && (await stat(copy.path).catch(() => undefined));
      if (copy && (!now || now.size !== copy.size || now.mtimeMs !== copy.mtimeMs)) {
        throw new S3rverError(
          'InvalidPart',
          'The source of a copied part changed or was removed before the upload completed (local emulation).',
        );
      }
    }
    const [key, metadata] = await Promise.all([
      readFile(join(uploadDir, 'key'), 'utf8'),
      readFile(join(uploadDir, 'metadata'), 'utf8').then((text) => JSON.parse(text) as Record<string, unknown>),
    ]);
    const objectPath = store.getResourcePath(bucket, key, 'object');
    await mkdir(dirname(objectPath), { recursive: true });
    // two buffers for every read, reused: a 156 MB batch zip would otherwise be 156 fresh 1 MiB buffers that wait for
    // a full collection (V8 counts them as external memory), on top of everything else at the end of a batch. While
    // one buffer is written, the next read fills the other.
    const buffers = [Buffer.allocUnsafeSlow(COPY_READ_SIZE), Buffer.allocUnsafeSlow(COPY_READ_SIZE)];
    let turn = 0;
    const out = await open(objectPath, 'w');
    let size = 0;
    let writing: Promise<unknown> = Promise.resolve();
    const md5s: Buffer[] = [];
    try {
      for (const [i, part] of sorted.entries()) {
        const copy = copies[i];
        const source = await open(copy ? copy.path : join(uploadDir, String(part.number)), 'r');
        try {
          let at = copy ? copy.start : 0;
          const end = copy ? copy.end + 1 : Infinity; // a copied range's end is inclusive
          while (at < end) {
            const buffer = buffers[turn]!;
            turn ^= 1;
            // this buffer's last write was awaited before the other buffer's read began (below)
            const { bytesRead } = await source.read(buffer, 0, Math.min(buffer.length, end - at), at);
            await writing;
            if (bytesRead === 0) break;
            writing = out.write(buffer, 0, bytesRead);
            writing.catch(() => undefined); // handled: its error is thrown where it is awaited
            at += bytesRead;
            size += bytesRead;
          }
        } finally {
          await writing.catch(() => undefined); // its error, if any, is thrown by the await below
          await source.close();
        }
        await writing;
        md5s.push(Buffer.from(part.etag.replace(/"/g, ''), 'hex'));
      }
    } finally {
      await writing.catch(() => undefined);
      await out.close();
    }
    const md5 = `${createHash('md5').update(Buffer.concat(md5s)).digest('hex')}-${sorted.length}`;
    await store.putMetadata(bucket, key, metadata, md5);
    await rm(uploadDir, { recursive: true, force: true });
    return { md5, size };
  };
}
/** Read size of the completion's file copies (streams default to 64 KiB). */
const COPY_READ_SIZE = 1024 * 1024;

async function abortMultipartUpload(ctx: KoaContext, bucket: string, uploadId: string) {
  if (!(await uploadExists(ctx.store, bucket, uploadId))) {
    s3Error(ctx, 404, 'NoSuchUpload', 'The specified upload does not exist.');
    return;
  }
  await rm(uploadDirOf(ctx.store, bucket, uploadId), { recursive: true, force: true });
  ctx.status = 204;
  ctx.body = null;
}

async function listObjectsV2(ctx: KoaContext, next: () => Promise<void>) {
  const { 'continuation-token': token, 'start-after': startAfter, ...rest } = ctx.query;
  let marker = typeof startAfter === 'string' ? startAfter : undefined;
  if (typeof token === 'string') {
    const decoded = Buffer.from(token, 'base64url').toString('utf8');
    if (!decoded.startsWith(TOKEN_PREFIX)) {
      s3Error(ctx, 400, 'InvalidArgument', 'The continuation token provided is incorrect');
      return;
    }
    marker = decoded.slice(TOKEN_PREFIX.length);
  }
  // run it as a version 1 listing: same store query, no DES token (and, as s3rver's V1, no Owner even if asked)
  const v1Query: Record<string, string | string[] | undefined> = { ...rest };
  delete v1Query['list-type'];
  delete v1Query['fetch-owner'];
  if (marker !== undefined) v1Query.marker = marker;
  ctx.query = v1Query;
  await next();

  const result = (ctx.body as { ListBucketResult?: Record<string, unknown> } | undefined)?.ListBucketResult;
  if (!result) return;
  const contents = (result.Contents ?? []) as { Key: string }[];
  const prefixes = (result.CommonPrefixes ?? []) as { Prefix: string }[];
  const last = [...contents.map((c) => c.Key), ...prefixes.map((p) => p.Prefix)].sort().pop();
  const { IsTruncated } = result;
  const others = { ...result };
  delete others.Marker;
  delete others.NextMarker;
  delete others.IsTruncated;
  ctx.body = {
    ListBucketResult: {
      ...others,
      ...(typeof token === 'string'
        ? { ContinuationToken: token }
        : marker !== undefined
          ? { StartAfter: marker }
          : {}),
      KeyCount: contents.length + prefixes.length,
      IsTruncated,
      ...(IsTruncated === true && last !== undefined
        ? { NextContinuationToken: Buffer.from(TOKEN_PREFIX + last, 'utf8').toString('base64url') }
        : {}),
    },
  };
}
