/**
 * The AssembleZip Lambda (sfn-assemble-zip) on awsBatchDeps from real SDK clients whose `send` is mocked. S3 is an
 * in-memory bucket behind the mock, multipart uploads included; the chunk zips in it are made by the IssueChunk
 * handler itself (a real CA in the SSM/IoT mocks), or by ChunkPackager for a batch bigger than one upload part.
 */
import 'aws-sdk-client-mock-jest';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { IoTClient } from '@aws-sdk/client-iot';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { awsBatchDeps, awsChunkDeps, bulkConfig } from '../../lambdas/adapters/aws/bulk-deps';
import { ChunkPackager, MANIFEST_HEADER } from '../../lambdas/core/bulk/chunk-builder';
import { chunkFileKeys, chunkManifestKey, chunkZipKey, requestKey } from '../../lambdas/core/bulk/keys';
import { type BatchRequest, normalizeBatchRequest } from '../../lambdas/core/bulk/request';
import { createIntermediateCa, createRootCa, type CreatedCa } from '../../lambdas/core/pki';
import { BulkEnv, readEnv } from '../../lambdas/handlers/env';
import { createHandler } from '../../lambdas/handlers/sfn-assemble-zip';
import { createHandler as createIssueChunkHandler } from '../../lambdas/handlers/sfn-issue-chunk';
import { createHandler as createDeleteChunkFiles } from '../../lambdas/handlers/sfn-delete-chunk-files';
import { unzipList, unzipRead, unzipTest } from '../helpers/zip';
import { testClients, US_EAST_1_CONFIG } from './aws-clients';
import { serveIotRegisteredCa } from './ca-mocks';
import { type MultipartUpload, installBucket, type StoredObject } from './s3-fake';
import { callSequence, cmd, mockSdk } from './sdk-mock';
import { serveDoneShards } from './dynamo-fake';

const TABLE = 'certflow-tasks';
const BUCKET = 'certflow-batches';
const MiB = 1024 * 1024;

const s3Mock = mockSdk(S3Client);
const docMock = mockSdk(DynamoDBDocumentClient);
const ssmMock = mockSdk(SSMClient);
const iotMock = mockSdk(IoTClient);
const ebMock = mockSdk(EventBridgeClient);
const MOCKS = { S3: s3Mock, DynamoDB: docMock, SSM: ssmMock, IoT: iotMock, EventBridge: ebMock };

const clients = () => testClients(US_EAST_1_CONFIG);

const env = readEnv(BulkEnv, {
  TASK_TABLE_NAME: TABLE,
  BUCKET_NAME: BUCKET,
  EVENT_BUS_NAME: 'certflow-bus',
  CHUNK_SIZE: '2',
  MAX_CONCURRENCY: '100',
  MAX_QUANTITY: '1000000',
  DEFAULT_DAYS_EXPIRY: '365',
  ZIP_LEVEL: '0',
});
const assemble = (input: Parameters<ReturnType<typeof createHandler>>[0]) =>
  createHandler(awsBatchDeps(env, clients(), {}))(input);
const issueChunk = (taskId: string, index: number) =>
  createIssueChunkHandler(awsChunkDeps(env, clients()))({ taskId, index });

const sequence = (): string[] => callSequence(MOCKS);

// ---------------------------------------------------------------------------------------------------------------
// An in-memory bucket behind the S3 mock, with multipart uploads

const bucket = new Map<string, StoredObject>();
const uploads = new Map<string, MultipartUpload>();

// ---------------------------------------------------------------------------------------------------------------

let root: CreatedCa;
let intermediate: CreatedCa;
let caId: string;
const tempDirs: string[] = [];

beforeAll(async () => {
  const now = new Date();
  root = await createRootCa({ subject: { commonName: 'Acme Root' }, validity: { days: 3650 }, now });
  intermediate = await createIntermediateCa(root.issuer, {
    subject: { commonName: 'Acme Devices' },
    validity: { days: 1825 },
    now,
  });
  caId = intermediate.certificate.id;
});

afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

const taskItem = (taskId: string, fields: Record<string, unknown> = {}) => ({
  pk: `task#${taskId}`,
  gsi1pk: 'in_progress',
  taskId,
  supplierId: 'acme',
  status: 'in_progress',
  quantity: 5,
  chunkSize: 2,
  chunksTotal: 3,
  createdAt: '2026-03-01T12:00:00.000Z',
  request: { keyType: 'ec-p256', register: false, includeCA: false, layout: 'certflow' },
  ...fields,
});

beforeEach(() => {
  for (const mock of Object.values(MOCKS)) mock.reset();
  bucket.clear();
  uploads.clear();
  installBucket(s3Mock, bucket, { bucketName: BUCKET, uploads });
  docMock.on(cmd(UpdateCommand)).resolves({});
  progress.clear();
  serveDoneShards(docMock, (taskId) => progress.get(taskId));
  ebMock.on(cmd(PutEventsCommand)).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'event-1' }] });
  serveIotRegisteredCa(ssmMock, iotMock, caId, intermediate);
});

/** Chunks counted done per task (served as its done shard). */
const progress = new Map<string, { done: number }>();

/**
 * request.json as POST stores it, under a fresh task id; the task item as DynamoDB holds it, and its done shard
 * counting `done` of the three chunks.
 */
function givenBatch(quantity: number, task: Record<string, unknown> = {}, done = 3): { taskId: string } {
  const taskId = randomUUID();
  const request = normalizeBatchRequest(
    'acme',
    { type: 'certflow', caId },
    { quantity, certInfo: { commonName: '`dev-`${increment}100' } },
    bulkConfig(env),
    new Date(),
  );
  bucket.set(requestKey(taskId), { body: Buffer.from(JSON.stringify(request)), metadata: {} });
  docMock.on(cmd(GetCommand)).resolves({ Item: taskItem(taskId, { quantity, ...task }) });
  progress.set(taskId, { done });
  return { taskId };
}

function zipFile(zip: Buffer): string {
  const dir = mkdtempSync(join(tmpdir(), 'certflow-batch-'));
  tempDirs.push(dir);
  const file = join(dir, 'certificates.zip');
  writeFileSync(file, zip);
  return file;
}

const getInputs = () => s3Mock.commandCalls(cmd(GetObjectCommand)).map((c) => c.args[0].input);
const rangeOf = (taskId: string, index: number) => {
  const meta = bucket.get(chunkZipKey(taskId, index))!.metadata;
  return { entries: Number(meta['entries-length']), cd: Number(meta['central-directory-length']) };
};

describe('AssembleZip', () => {
  it('streams three chunk zips made by IssueChunk into one zip with manifest.csv, uploaded with one PutObject', async () => {
    const { taskId } = givenBatch(5);
    for (const index of [0, 1, 2]) await issueChunk(taskId, index);
    for (const mock of Object.values(MOCKS)) mock.resetHistory();

    const result = await assemble({ taskId, chunkResults: [{ index: 0 }, { index: 1 }, { index: 2 }] });

    const zipKey = `batches/${taskId}/certificates.zip`;
    const zip = bucket.get(zipKey)!.body;
    expect(result).toEqual({
      taskId,
      supplierId: 'acme',
      quantity: 5,
      chunksTotal: 3,
      zipKey,
      zipSize: zip.length,
      completedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    // request.json is already cached by this container (IssueChunk ran in it); a cold one would GetObject it first.
    // Each chunk zip's layout is read once (HeadObject), and chunk files are read a few ahead: the order of the reads
    // between the batch zip's HeadObject (not assembled before) and the PutObject is not fixed, what is read is.
    const calls = sequence();
    expect(calls.slice(0, 3)).toEqual(['DynamoDB.Get', 'DynamoDB.BatchGet', 'S3.HeadObject']);
    expect(calls.at(-1)).toBe('S3.PutObject');
    expect(calls.filter((c) => c === 'S3.HeadObject')).toHaveLength(4);
    expect(calls.filter((c) => c === 'S3.GetObject')).toHaveLength(9);
    expect(calls).toHaveLength(16);
    const heads = s3Mock.commandCalls(cmd(HeadObjectCommand)).map((c) => c.args[0].input.Key);
    expect(heads[0]).toBe(zipKey);
    expect(heads.slice(1).sort()).toEqual([0, 1, 2].map((i) => chunkZipKey(taskId, i)).sort());
    const ranges = [0, 1, 2].map((i) => rangeOf(taskId, i));
    const byKeyAndRange = (a: { Key?: string; Range?: string }, b: { Key?: string; Range?: string }) =>
      `${a.Key} ${a.Range}`.localeCompare(`${b.Key} ${b.Range}`);
    expect([...getInputs()].sort(byKeyAndRange)).toEqual(
      [
        ...ranges.map((r, i) => ({ Bucket: BUCKET, Key: chunkZipKey(taskId, i), Range: `bytes=0-${r.entries - 1}` })),
        ...[0, 1, 2].map((i) => ({ Bucket: BUCKET, Key: chunkManifestKey(taskId, i) })),
        ...ranges.map((r, i) => ({
          Bucket: BUCKET,
          Key: chunkZipKey(taskId, i),
          Range: `bytes=${r.entries}-${r.entries + r.cd - 1}`,
        })),
      ].sort(byKeyAndRange),
    );
    expect(s3Mock.commandCalls(cmd(PutObjectCommand))[0]!.args[0].input).toMatchObject({
      Bucket: BUCKET,
      Key: zipKey,
      ContentType: 'application/zip',
    });
    expect(s3Mock).not.toHaveReceivedCommand(cmd(CreateMultipartUploadCommand));
    expect(ssmMock).not.toHaveReceivedCommand(cmd(GetParameterCommand));

    const file = zipFile(zip);
    unzipTest(file);
    const names = ['dev-100', 'dev-101', 'dev-102', 'dev-103', 'dev-104'];
    expect(unzipList(file)).toEqual([
      ...names.flatMap((n) => [`${n}/certificate.pem`, `${n}/private.key`, `${n}/public.key`]),
      'manifest.csv',
    ]);
    const manifest = unzipRead(file, 'manifest.csv');
    expect(manifest.startsWith(MANIFEST_HEADER)).toBe(true);
    const chunkRows = [0, 1, 2].map((i) => bucket.get(chunkManifestKey(taskId, i))!.body.toString('utf8')).join('');
    expect(manifest).toBe(MANIFEST_HEADER + chunkRows);
    expect(
      manifest
        .trimEnd()
        .split('\n')
        .slice(1)
        .map((row) => row.split(',')[0]),
    ).toEqual(names);
  });

  it('uploads a batch bigger than one 8 MiB part with CreateMultipartUpload, UploadPart, CompleteMultipartUpload', async () => {
    const { taskId } = givenBatch(6);
    const request = JSON.parse(bucket.get(requestKey(taskId))!.body.toString('utf8')) as BatchRequest;
    // three chunks of two "certificates" of 1.6 MiB each (random text: stored as is): ~9.6 MiB in all
    for (const index of [0, 1, 2]) {
      const packager = new ChunkPackager(request, 0);
      for (const i of [index * 2, index * 2 + 1]) {
        packager.add(i, {
          commonName: `big-${i}`,
          certificateId: i.toString(16).padStart(64, '0'),
          serialNumber: (i + 1).toString(16),
          certificatePem: randomBytes(1.2 * MiB).toString('base64'),
        });
      }
      const chunk = packager.finish();
      bucket.set(chunkManifestKey(taskId, index), { body: Buffer.from(chunk.manifest), metadata: {} });
      bucket.set(chunkZipKey(taskId, index), {
        body: chunk.zip,
        contentType: 'application/zip',
        metadata: {
          'entries-length': String(chunk.entriesLength),
          'central-directory-length': String(chunk.centralDirectoryLength),
          'entry-count': String(chunk.entryCount),
        },
      });
    }

    const result = await assemble({ taskId, chunkResults: [{ index: 0 }, { index: 1 }, { index: 2 }] });

    const zipKey = `batches/${taskId}/certificates.zip`;
    const zip = bucket.get(zipKey)!.body;
    expect(zip.length).toBeGreaterThan(8 * MiB);
    expect(result.zipSize).toBe(zip.length);
    expect(s3Mock).not.toHaveReceivedCommandWith(cmd(PutObjectCommand), { Key: zipKey });
    expect(s3Mock.commandCalls(cmd(CreateMultipartUploadCommand))[0]!.args[0].input).toMatchObject({
      Bucket: BUCKET,
      Key: zipKey,
      ContentType: 'application/zip',
    });
    const parts = s3Mock.commandCalls(cmd(UploadPartCommand)).map((c) => c.args[0].input);
    expect(parts.map((p) => p.PartNumber).sort()).toEqual([1, 2]);
    expect(parts.every((p) => p.Bucket === BUCKET && p.Key === zipKey && p.UploadId === 'upload-1')).toBe(true);
    expect(uploads.get('upload-1')!.parts.get(1)!.length).toBe(8 * MiB);
    expect(s3Mock.commandCalls(cmd(CompleteMultipartUploadCommand))[0]!.args[0].input).toMatchObject({
      Bucket: BUCKET,
      Key: zipKey,
      UploadId: 'upload-1',
      MultipartUpload: {
        Parts: [
          { ETag: '"part-1"', PartNumber: 1 },
          { ETag: '"part-2"', PartNumber: 2 },
        ],
      },
    });
    expect(s3Mock).not.toHaveReceivedCommand(cmd(AbortMultipartUploadCommand));

    const file = zipFile(zip);
    unzipTest(file);
    expect(unzipList(file)).toEqual([...[0, 1, 2, 3, 4, 5].map((i) => `big-${i}/certificate.pem`), 'manifest.csv']);
    expect(unzipRead(file, 'manifest.csv').trimEnd().split('\n')).toHaveLength(7);
  });

  it('throws BatchIncompleteError with the failed chunk’s message and uploads nothing', async () => {
    const { taskId } = givenBatch(5);
    const chunkResults = [
      { index: 0 },
      {
        index: 1,
        failed: true,
        error: { Error: 'Error', Cause: JSON.stringify({ errorType: 'Error', errorMessage: 'boom', trace: [] }) },
      },
      { index: 2 },
    ];

    await expect(assemble({ taskId, chunkResults })).rejects.toMatchObject({
      name: 'BatchIncompleteError',
      code: 'CHUNK_FAILED',
      message: 'chunk 1 failed: boom',
    });
    expect(sequence()).toEqual(['DynamoDB.Get', 'DynamoDB.BatchGet']);
  });

  it('throws BatchIncompleteError CHUNKS_PENDING when the task still counts chunks, and uploads nothing', async () => {
    const { taskId } = givenBatch(5, {}, 2);

    await expect(assemble({ taskId, chunkResults: [{ index: 0 }, { index: 1 }, { index: 2 }] })).rejects.toMatchObject({
      name: 'BatchIncompleteError',
      code: 'CHUNKS_PENDING',
      message: '1 of 3 chunks are not done',
    });
    expect(sequence()).toEqual(['DynamoDB.Get', 'DynamoDB.BatchGet']);
  });

  it('throws BatchIncompleteError CHUNK_MISSING when a chunk zip is absent, and leaves no batch zip', async () => {
    const { taskId } = givenBatch(5);
    for (const index of [0, 1, 2]) await issueChunk(taskId, index);
    bucket.delete(chunkZipKey(taskId, 1));

    await expect(assemble({ taskId, chunkResults: [{ index: 0 }, { index: 1 }, { index: 2 }] })).rejects.toMatchObject({
      name: 'BatchIncompleteError',
      code: 'CHUNK_MISSING',
    });
    expect(bucket.has(`batches/${taskId}/certificates.zip`)).toBe(false);
    expect(s3Mock).not.toHaveReceivedCommand(cmd(CompleteMultipartUploadCommand));
  });

  it("answers a retried step from the batch zip once the chunks' files are deleted, without reading a chunk", async () => {
    const { taskId } = givenBatch(5);
    for (const index of [0, 1, 2]) await issueChunk(taskId, index);
    const chunkResults = [{ index: 0 }, { index: 1 }, { index: 2 }];
    const first = await assemble({ taskId, chunkResults });
    await createDeleteChunkFiles(awsBatchDeps(env, clients(), {}))({ taskId, chunksTotal: 3 });
    expect([...bucket.keys()].filter((k) => k.includes('/chunks/'))).toEqual([]);
    for (const mock of Object.values(MOCKS)) mock.resetHistory();

    const again = await assemble({ taskId, chunkResults });

    expect(again).toEqual({ ...first, completedAt: expect.any(String) });
    expect(sequence()).toEqual(['DynamoDB.Get', 'DynamoDB.BatchGet', 'S3.HeadObject']);
    expect(s3Mock.commandCalls(cmd(HeadObjectCommand))[0]!.args[0].input).toEqual({
      Bucket: BUCKET,
      Key: `batches/${taskId}/certificates.zip`,
    });
  });

  it('still refuses a batch whose chunk failed when a zip exists (the checks come first)', async () => {
    const { taskId } = givenBatch(5);
    bucket.set(`batches/${taskId}/certificates.zip`, { body: Buffer.from('PK'), metadata: {} });
    await expect(
      assemble({ taskId, chunkResults: [{ index: 0 }, { index: 1, failed: true, error: { Cause: 'boom' } }] }),
    ).rejects.toMatchObject({ name: 'BatchIncompleteError', code: 'CHUNK_FAILED' });
  });
});

describe('DeleteChunkFiles', () => {
  const deleteChunkFiles = (input: unknown) => createDeleteChunkFiles(awsBatchDeps(env, clients(), {}))(input);

  it("deletes every chunk's five files (present or not) in DeleteObjects of at most 1,000 keys, and keeps the rest", async () => {
    const taskId = randomUUID();
    const keep = [requestKey(taskId), `batches/${taskId}/certificates.zip`];
    for (const key of [...keep, chunkZipKey(taskId, 0), `batches/${taskId}/chunks/000249.progress.json`]) {
      bucket.set(key, { body: Buffer.from('x'), metadata: {} });
    }

    await expect(deleteChunkFiles({ taskId, chunksTotal: 250 })).resolves.toEqual({ taskId, deleted: 1250 });

    const calls = s3Mock.commandCalls(cmd(DeleteObjectsCommand)).map((c) => c.args[0].input);
    expect(calls.map((c) => c.Delete!.Objects!.length)).toEqual([1000, 250]);
    expect(calls.every((c) => c.Bucket === BUCKET && c.Delete!.Quiet === true)).toBe(true);
    const keys = calls.flatMap((c) => c.Delete!.Objects!.map((o) => o.Key!));
    expect(keys).toEqual(Array.from({ length: 250 }, (_, i) => chunkFileKeys(taskId, i)).flat());
    expect(keys.slice(0, 5)).toEqual([
      `batches/${taskId}/chunks/000000.zip`,
      `batches/${taskId}/chunks/000000.csv`,
      `batches/${taskId}/chunks/000000.certificates.pem`,
      `batches/${taskId}/chunks/000000.registered`,
      `batches/${taskId}/chunks/000000.progress.json`,
    ]);
    expect([...bucket.keys()].filter((k) => k.startsWith(`batches/${taskId}/`)).sort()).toEqual(keep.sort());
    expect(docMock.calls()).toHaveLength(0); // no table access
  });

  it('fails (so that the state retries) when S3 refuses a key', async () => {
    s3Mock.on(cmd(DeleteObjectsCommand)).resolves({ Errors: [{ Key: 'k', Code: 'AccessDenied', Message: 'no' }] });
    await expect(deleteChunkFiles({ taskId: 't', chunksTotal: 1 })).rejects.toMatchObject({
      name: 'ObjectDeleteError',
    });
  });

  it.each([
    ['error/no task id', { chunksTotal: 1 }],
    ['error/negative count', { taskId: 't', chunksTotal: -1 }],
  ])('%s is refused with INVALID_REQUEST before any call', async (_label, input) => {
    await expect(deleteChunkFiles(input)).rejects.toMatchObject({ name: 'ValidationError' });
    expect(s3Mock.calls()).toHaveLength(0);
  });
});
