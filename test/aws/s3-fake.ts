/**
 * An in-memory S3 bucket behind an S3Client mock: PutObject, GetObject (a `bytes=first-last` Range included),
 * HeadObject, ListObjectsV2 (one page, by prefix), DeleteObjects (absent keys deleted without complaint, as S3
 * does) and, when asked, multipart uploads. A request for a missing key fails as S3 does (NoSuchKey on Get,
 * NotFound on Head), so a handler reads back what it wrote and a replay meets what the first attempt left.
 */
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
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import type { MetadataBearer } from '@smithy/types';
import { sdkStreamMixin } from '@smithy/util-stream';
import type { AwsStub } from 'aws-sdk-client-mock';
import { cmd } from './sdk-mock';

export interface StoredObject {
  body: Buffer;
  contentType?: string;
  metadata: Record<string, string>;
}

export interface MultipartUpload {
  key: string;
  contentType?: string;
  parts: Map<number, Buffer>;
}

export interface ObjectInput {
  Key?: string;
  Body?: unknown;
  ContentType?: string;
  Metadata?: Record<string, string>;
  Range?: string;
  Prefix?: string;
  UploadId?: string;
  PartNumber?: number;
  MultipartUpload?: { Parts?: { PartNumber?: number }[] };
  CopySource?: string;
  CopySourceRange?: string;
  Delete?: { Objects?: { Key?: string }[] };
}

/** S3's smallest part but the last; the fake refuses to complete an upload with a smaller one, as S3 does. */
const MIN_PART_SIZE = 5 * 1024 * 1024;

/** The bytes of a request body: a string, a Uint8Array or a stream of them. */
export async function bytesOf(body: unknown): Promise<Buffer> {
  if (typeof body === 'string') return Buffer.from(body);
  if (body instanceof Uint8Array) return Buffer.from(body);
  const parts: Buffer[] = [];
  for await (const part of body as AsyncIterable<Uint8Array>) parts.push(Buffer.from(part));
  return Buffer.concat(parts);
}

const contentTypeOf = (contentType: string | undefined) => (contentType !== undefined ? { contentType } : {});

/**
 * Answers the object commands on `s3Mock` from `objects` (keyed by object key); with `multipart`, also the multipart
 * upload commands, the uploads in progress kept in `multipart.uploads`.
 */
export function installBucket(
  s3Mock: AwsStub<object, MetadataBearer, unknown>,
  objects: Map<string, StoredObject>,
  multipart?: { bucketName: string; uploads: Map<string, MultipartUpload> },
): void {
  s3Mock.on(cmd(PutObjectCommand)).callsFake(async (input: ObjectInput) => {
    objects.set(input.Key!, {
      body: await bytesOf(input.Body),
      ...contentTypeOf(input.ContentType),
      metadata: input.Metadata ?? {},
    });
    return { ETag: '"etag"' };
  });
  s3Mock.on(cmd(GetObjectCommand)).callsFake(async (input: ObjectInput) => {
    const object = objects.get(input.Key!);
    if (!object) {
      throw new NoSuchKey({ message: 'The specified key does not exist.', $metadata: { httpStatusCode: 404 } });
    }
    let body = object.body;
    if (input.Range !== undefined) {
      const range = /^bytes=(\d+)-(\d+)$/.exec(input.Range);
      if (!range) throw new Error(`the fake does not know the range ${input.Range}`);
      body = body.subarray(Number(range[1]), Number(range[2]) + 1);
    }
    return {
      Body: sdkStreamMixin(Readable.from([body])),
      ContentLength: body.length,
      ContentType: object.contentType,
      Metadata: object.metadata,
    };
  });
  s3Mock.on(cmd(HeadObjectCommand)).callsFake(async (input: ObjectInput) => {
    const object = objects.get(input.Key!);
    if (!object) throw new NotFound({ message: 'Not Found', $metadata: { httpStatusCode: 404 } });
    return { ContentLength: object.body.length, ContentType: object.contentType, Metadata: object.metadata };
  });
  s3Mock.on(cmd(ListObjectsV2Command)).callsFake(async (input: ObjectInput) => ({
    Contents: [...objects.keys()].filter((k) => k.startsWith(input.Prefix ?? '')).map((Key) => ({ Key })),
    IsTruncated: false,
  }));
  s3Mock.on(cmd(DeleteObjectsCommand)).callsFake(async (input: ObjectInput) => {
    const keys = (input.Delete?.Objects ?? []).map((o) => o.Key!);
    if (keys.length > 1000) throw new Error(`DeleteObjects takes at most 1,000 keys (got ${keys.length})`);
    for (const key of keys) objects.delete(key);
    return {};
  });
  if (!multipart) return;
  const { bucketName, uploads } = multipart;
  s3Mock.on(cmd(CreateMultipartUploadCommand)).callsFake(async (input: ObjectInput) => {
    const UploadId = `upload-${uploads.size + 1}`;
    uploads.set(UploadId, { key: input.Key!, ...contentTypeOf(input.ContentType), parts: new Map() });
    return { Bucket: bucketName, Key: input.Key, UploadId };
  });
  s3Mock.on(cmd(UploadPartCommand)).callsFake(async (input: ObjectInput) => {
    uploads.get(input.UploadId!)!.parts.set(input.PartNumber!, await bytesOf(input.Body));
    return { ETag: `"part-${input.PartNumber}"` };
  });
  s3Mock.on(cmd(UploadPartCopyCommand)).callsFake(async (input: ObjectInput) => {
    const [sourceBucket, ...sourceKey] = decodeURIComponent(input.CopySource!).split('/');
    if (sourceBucket !== bucketName) throw new Error(`the fake holds only ${bucketName}, not ${sourceBucket}`);
    const source = objects.get(sourceKey.join('/'));
    if (!source) {
      throw new NoSuchKey({ message: 'The specified key does not exist.', $metadata: { httpStatusCode: 404 } });
    }
    const range = /^bytes=(\d+)-(\d+)$/.exec(input.CopySourceRange ?? `bytes=0-${source.body.length - 1}`)!;
    uploads
      .get(input.UploadId!)!
      .parts.set(input.PartNumber!, source.body.subarray(Number(range[1]), Number(range[2]) + 1));
    return { CopyPartResult: { ETag: `"copy-${input.PartNumber}"` } };
  });
  s3Mock.on(cmd(CompleteMultipartUploadCommand)).callsFake(async (input: ObjectInput) => {
    const upload = uploads.get(input.UploadId!)!;
    const parts = (input.MultipartUpload?.Parts ?? []).map((p) => upload.parts.get(p.PartNumber!)!);
    if (parts.slice(0, -1).some((part) => part.length < MIN_PART_SIZE)) {
      throw Object.assign(new Error('Your proposed upload is smaller than the minimum allowed object size.'), {
        name: 'EntityTooSmall',
      });
    }
    objects.set(upload.key, { body: Buffer.concat(parts), ...contentTypeOf(upload.contentType), metadata: {} });
    return { Bucket: bucketName, Key: upload.key, ETag: '"multipart"' };
  });
  s3Mock.on(cmd(AbortMultipartUploadCommand)).resolves({});
}
