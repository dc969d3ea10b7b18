import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  type CompletedPart,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { NotFoundError, ValidationError } from '../../core/errors';
import type { ObjectHead, ObjectPiece, ObjectStore, PutOptions } from '../../core/ports';
import { awsErrorName, awsHttpStatus } from './sdk-errors';

/** Multipart part size (default): compose holds at most one part (and the piece in hand) whatever the object size. */
export const UPLOAD_PART_SIZE = 8 * 1024 * 1024;
/** S3's smallest part but the last (5 MiB): a range shorter than this cannot be an UploadPartCopy part on AWS. */
export const S3_MIN_PART_SIZE = 5 * 1024 * 1024;
/** S3's largest part number. */
export const S3_MAX_PARTS = 10_000;
/** UploadPartCopy requests compose() keeps in flight at once. */
export const COPY_CONCURRENCY = 4;
/** DeleteObjects accepts at most 1000 keys per request. */
export const DELETE_BATCH_SIZE = 1000;
/** SigV4 presigned URLs live at most 7 days. */
export const MAX_PRESIGN_SECONDS = 604_800;

/** S3 refused to delete some of the keys (access denied …); deleting an absent key is not an error. */
export class ObjectDeleteError extends Error {
  override readonly name = 'ObjectDeleteError';

  constructor(
    message: string,
    readonly failures: { key: string; code?: string; message?: string }[],
  ) {
    super(message);
  }
}

const isNotFound = (error: unknown): boolean => {
  const name = awsErrorName(error);
  return name === 'NoSuchKey' || name === 'NotFound' || awsHttpStatus(error) === 404;
};

/** `attachment; filename="…"`, with an RFC 6266/5987 `filename*` when the name is not plain ASCII. */
export function contentDisposition(downloadName: string): string {
  const ascii = downloadName.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_');
  const encoded = encodeURIComponent(downloadName).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  const plain = ascii === downloadName;
  return plain ? `attachment; filename="${ascii}"` : `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

/** ObjectStore on S3 (or any S3 wire-compatible server such as s3rver: give the client its endpoint). */
export interface S3ObjectStoreOptions {
  /**
   * The smallest part but the last the server takes, which decides which ranges compose() copies server-side:
   * S3_MIN_PART_SIZE on AWS (the default); 0 for a local server that has no minimum (s3rver).
   */
  minPartSize?: number;
  /**
   * Size of the parts compose() sends as bytes (default UPLOAD_PART_SIZE, 8 MiB); at least minPartSize. A local
   * server, with no minimum, takes smaller parts: less memory in flight at the end of a batch (each part is one
   * buffer here, and again in the server).
   */
  partSize?: number;
}

export class S3ObjectStore implements ObjectStore {
  private readonly minPartSize: number;
  private readonly partSize: number;

  constructor(
    private readonly s3: S3Client,
    readonly bucket: string,
    options: S3ObjectStoreOptions = {},
  ) {
    this.minPartSize = options.minPartSize ?? S3_MIN_PART_SIZE;
    this.partSize = options.partSize ?? UPLOAD_PART_SIZE;
    if (!Number.isSafeInteger(this.partSize) || this.partSize < Math.max(1, this.minPartSize)) {
      throw new RangeError(
        `partSize must be an integer of at least minPartSize (${this.minPartSize}): ${this.partSize}`,
      );
    }
  }

  async put(key: string, body: Buffer | string, options: PutOptions = {}): Promise<void> {
    await this.s3.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: body,
        ...(options.contentType !== undefined ? { ContentType: options.contentType } : {}),
        ...(options.metadata !== undefined ? { Metadata: options.metadata } : {}),
      }),
    );
  }

  async get(key: string): Promise<Buffer> {
    const output = await this.getObject(key);
    return Buffer.from(await output.Body!.transformToByteArray());
  }

  async getRange(key: string, start: number, end: number): Promise<Buffer> {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
      throw new ValidationError('INVALID_RANGE', `invalid byte range [${start}, ${end})`);
    }
    if (end === start) {
      await this.headOrThrow(key);
      return Buffer.alloc(0);
    }
    const output = await this.getObject(key, `bytes=${start}-${end - 1}`);
    return Buffer.from(await output.Body!.transformToByteArray());
  }

  async getStream(key: string): Promise<AsyncIterable<Uint8Array>> {
    const body: unknown = (await this.getObject(key)).Body;
    if (body !== null && typeof body === 'object' && Symbol.asyncIterator in body) {
      return body as AsyncIterable<Uint8Array>;
    }
    // Browser-style bodies (web ReadableStream): Node 20 can read those as async iterables too
    if (body instanceof ReadableStream) return Readable.fromWeb(body as never) as AsyncIterable<Uint8Array>;
    throw new Error(`S3 returned a body for ${key} that cannot be streamed`);
  }

  async head(key: string): Promise<ObjectHead | undefined> {
    try {
      const output = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return {
        size: output.ContentLength ?? 0,
        ...(output.ContentType !== undefined ? { contentType: output.ContentType } : {}),
        metadata: output.Metadata ?? {},
      };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /**
   * A multipart upload of the pieces: a range of at least minPartSize is an UploadPartCopy part (S3 copies it, no
   * bytes pass through here) when the bytes before it make a valid part (none, or at least minPartSize); every other
   * piece is sent as bytes, in parts of partSize (smaller ranges are read with a range GET). Parts sent as bytes go
   * one at a time, so memory holds one part; up to COPY_CONCURRENCY copied parts are in flight beside them (they hold
   * no bytes here, and S3 copies them in parallel). An object that fits in one part and copies nothing is one
   * PutObject. A failure aborts the upload once no part of it is in flight: nothing appears under `key`.
   */
  async compose(key: string, pieces: AsyncIterable<ObjectPiece>, options: PutOptions = {}): Promise<{ size: number }> {
    const objectParams = {
      Bucket: this.bucket,
      Key: key,
      ...(options.contentType !== undefined ? { ContentType: options.contentType } : {}),
      ...(options.metadata !== undefined ? { Metadata: options.metadata } : {}),
    };
    let uploadId: string | undefined;
    const parts: CompletedPart[] = [];
    /** the copied parts in flight; they never reject: the first failure is kept, and thrown by the loop */
    const copying = new Set<Promise<void>>();
    let copyFailure: { error: unknown } | undefined;
    const throwIfCopyFailed = (): void => {
      if (copyFailure) throw copyFailure.error;
    };
    let pending: Uint8Array[] = [];
    let pendingLength = 0;
    let size = 0;
    const takePending = (): Uint8Array => {
      const body = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingLength);
      pending = [];
      pendingLength = 0;
      return body;
    };
    /** the next part's number, the upload created first when this is the first part */
    const nextPart = async (): Promise<{ UploadId: string; PartNumber: number }> => {
      if (parts.length === S3_MAX_PARTS) {
        throw new ValidationError('OBJECT_TOO_LARGE', `${key} would need more than ${S3_MAX_PARTS} parts`);
      }
      uploadId ??= (await this.s3.send(new CreateMultipartUploadCommand(objectParams))).UploadId!;
      return { UploadId: uploadId, PartNumber: parts.length + 1 };
    };
    /** sends the pending bytes as one part (at most `limit` of them; the rest stay pending) */
    const flush = async (limit = Infinity): Promise<void> => {
      if (pendingLength === 0) return;
      const all = takePending();
      const body = all.length > limit ? all.subarray(0, limit) : all;
      if (body.length < all.length) {
        pending = [all.subarray(body.length)];
        pendingLength = all.length - body.length;
      }
      const part = await nextPart();
      const { ETag } = await this.s3.send(
        new UploadPartCommand({ Bucket: this.bucket, Key: key, ...part, Body: body }),
      );
      parts.push({ PartNumber: part.PartNumber, ETag });
    };
    const addBytes = async (bytes: Uint8Array): Promise<void> => {
      if (bytes.length === 0) return;
      pending.push(bytes);
      pendingLength += bytes.length;
      size += bytes.length;
      while (pendingLength >= this.partSize) await flush(this.partSize);
    };
    try {
      for await (const piece of pieces) {
        if (piece instanceof Uint8Array) {
          await addBytes(piece);
          continue;
        }
        const { key: source, start, end } = piece.copyFrom;
        if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
          throw new ValidationError('INVALID_RANGE', `invalid byte range [${start}, ${end}) of ${source}`);
        }
        const length = end - start;
        if (length === 0) continue;
        if (length < this.minPartSize || (pendingLength > 0 && pendingLength < this.minPartSize)) {
          await addBytes(await this.getRange(source, start, end));
          continue;
        }
        await flush();
        const part = await nextPart();
        parts.push({ PartNumber: part.PartNumber }); // its number is taken; the ETag comes with the copy's answer
        const slot = parts[parts.length - 1]!;
        while (copying.size >= COPY_CONCURRENCY) await Promise.race(copying);
        throwIfCopyFailed();
        const copy = Promise.resolve()
          .then(() =>
            this.s3.send(
              new UploadPartCopyCommand({
                Bucket: this.bucket,
                Key: key,
                ...part,
                CopySource: `${this.bucket}/${encodeURIComponent(source).replace(/%2F/g, '/')}`,
                CopySourceRange: `bytes=${start}-${end - 1}`,
              }),
            ),
          )
          .then(
            ({ CopyPartResult }) => {
              slot.ETag = CopyPartResult?.ETag;
            },
            (error: unknown) => {
              copyFailure ??= { error };
            },
          )
          .finally(() => copying.delete(copy));
        copying.add(copy);
        size += length;
        throwIfCopyFailed();
      }
      if (uploadId === undefined) {
        await this.s3.send(new PutObjectCommand({ ...objectParams, Body: takePending() }));
        return { size };
      }
      await flush();
      await Promise.all(copying);
      throwIfCopyFailed();
      await this.s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: parts },
        }),
      );
    } catch (error) {
      await Promise.allSettled(copying); // no part may land after the abort
      if (uploadId !== undefined) {
        await this.s3
          .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }))
          .catch(() => undefined); // the upload's own error is what matters
      }
      throw error;
    }
    return { size };
  }

  async presignGet(key: string, expiresInSeconds: number, downloadName?: string): Promise<string> {
    if (!Number.isInteger(expiresInSeconds) || expiresInSeconds < 1 || expiresInSeconds > MAX_PRESIGN_SECONDS) {
      throw new ValidationError('INVALID_EXPIRY', `expiresInSeconds must be from 1 to ${MAX_PRESIGN_SECONDS}`);
    }
    const command = new GetObjectCommand({
      Bucket: this.bucket,
      Key: key,
      ...(downloadName !== undefined ? { ResponseContentDisposition: contentDisposition(downloadName) } : {}),
    });
    return getSignedUrl(this.s3, command, { expiresIn: expiresInSeconds });
  }

  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.s3.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: prefix,
          ...(token !== undefined ? { ContinuationToken: token } : {}),
        }),
      );
      for (const object of page.Contents ?? []) if (object.Key !== undefined) keys.push(object.Key);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return keys;
  }

  async delete(keys: string[]): Promise<void> {
    const failures: ObjectDeleteError['failures'] = [];
    for (let i = 0; i < keys.length; i += DELETE_BATCH_SIZE) {
      const batch = keys.slice(i, i + DELETE_BATCH_SIZE);
      const output = await this.s3.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
        }),
      );
      for (const e of output.Errors ?? []) {
        failures.push({
          key: e.Key ?? '',
          ...(e.Code !== undefined ? { code: e.Code } : {}),
          ...(e.Message !== undefined ? { message: e.Message } : {}),
        });
      }
    }
    if (failures.length > 0) {
      throw new ObjectDeleteError(`S3 could not delete ${failures.length} of ${keys.length} objects`, failures);
    }
  }

  private async getObject(key: string, range?: string): Promise<GetObjectCommandOutput> {
    try {
      const output = await this.s3.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, ...(range !== undefined ? { Range: range } : {}) }),
      );
      if (!output.Body) throw new Error(`S3 returned no body for ${key}`);
      return output;
    } catch (error) {
      if (isNotFound(error)) throw this.notFound(key, error);
      if (awsErrorName(error) === 'InvalidRange') {
        throw new ValidationError('INVALID_RANGE', `range ${range ?? ''} is outside ${key}`, { cause: error });
      }
      throw error;
    }
  }

  private async headOrThrow(key: string): Promise<void> {
    if ((await this.head(key)) === undefined) throw this.notFound(key);
  }

  private notFound(key: string, cause?: unknown): NotFoundError {
    return new NotFoundError('OBJECT_NOT_FOUND', `object ${key} not found`, {
      ...(cause !== undefined ? { cause } : {}),
      details: { key },
    });
  }
}
