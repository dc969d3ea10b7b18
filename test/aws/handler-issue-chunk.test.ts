/**
 * The IssueChunk Lambda (sfn-issue-chunk) on AWS deps built by awsChunkDeps from real SDK clients whose `send` is
 * mocked. S3 is an in-memory bucket behind the mock (so a replayed chunk finds what the first attempt wrote); the
 * certflow CA is a real CA whose key the SSM mock serves, so certificates really get signed; ACM PCA and AWS IoT
 * sign with the same test CA inside their mocks.
 */
import 'aws-sdk-client-mock-jest';
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  randomUUID,
  X509Certificate,
} from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ACMPCAClient,
  DescribeCertificateAuthorityCommand,
  GetCertificateCommand,
  IssueCertificateCommand,
  RequestInProgressException,
} from '@aws-sdk/client-acm-pca';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import {
  CreateKeysAndCertificateCommand,
  DescribeCACertificateCommand,
  DescribeCertificateCommand,
  IoTClient,
  RegisterCertificateCommand,
  RegisterCertificateWithoutCACommand,
} from '@aws-sdk/client-iot';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { awsChunkDeps, awsPace, bulkConfig } from '../../lambdas/adapters/aws/bulk-deps';
import { requestKey } from '../../lambdas/core/bulk/keys';
import { normalizeBatchRequest } from '../../lambdas/core/bulk/request';
import {
  createIntermediateCa,
  createRootCa,
  type CreatedCa,
  issueFromCsr,
  issueLeaf,
  parseCertificate,
  parseCsr,
  privateKeyToPem,
  publicKeyToPem,
} from '../../lambdas/core/pki';
import type { SupplierCa } from '../../lambdas/core/ports';
import { BulkEnv, readEnv } from '../../lambdas/handlers/env';
import { createHandler } from '../../lambdas/handlers/sfn-issue-chunk';
import { buildInProcess } from '../../lambdas/core/bulk/chunk';
import { unzipList, unzipRead, unzipTest } from '../helpers/zip';
import { MemoryRateLimiter } from '../../lambdas/adapters/local/memory-rate-limiter';
import { isThrottlingError } from '../../lambdas/adapters/aws/sdk-errors';
import { createPace, resolveApiRates } from '../../lambdas/core/pacing';
import { testClients, US_EAST_1_CONFIG } from './aws-clients';
import { serveIotRegisteredCa } from './ca-mocks';
import { bytesOf, installBucket, type ObjectInput, type StoredObject } from './s3-fake';
import { callSequence, cmd, mockSdk } from './sdk-mock';

const TABLE = 'certflow-tasks';
const BUCKET = 'certflow-batches';
const BUS = 'certflow-bus';
const PCA_ARN = 'arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';

const s3Mock = mockSdk(S3Client);
const docMock = mockSdk(DynamoDBDocumentClient);
const ssmMock = mockSdk(SSMClient);
const iotMock = mockSdk(IoTClient);
const ebMock = mockSdk(EventBridgeClient);
const pcaMock = mockSdk(ACMPCAClient);
const MOCKS = { S3: s3Mock, DynamoDB: docMock, SSM: ssmMock, IoT: iotMock, EventBridge: ebMock, ACMPCA: pcaMock };

const clients = () => testClients(US_EAST_1_CONFIG);

/** What the BulkIssuance construct sets; ZIP_LEVEL is given here (its default is tested on its own below). */
const CDK_ENV = {
  TASK_TABLE_NAME: TABLE,
  BUCKET_NAME: BUCKET,
  EVENT_BUS_NAME: BUS,
  SUPPLIERS: '{}',
  CA_KEY_STORE: 'ssm',
  CHUNK_SIZE: '1000',
  MAX_CONCURRENCY: '100',
  MAX_QUANTITY: '1000000',
};
const env = readEnv(BulkEnv, { ...CDK_ENV, ZIP_LEVEL: '0', DEFAULT_DAYS_EXPIRY: '365' });
/** The backoff delays the pace slept (none really: the tests do not wait), in order. */
const backoffs: number[] = [];
/** Fresh deps per invocation, as a fresh Lambda container: nothing cached between attempts but the request. */
const issue = (input: { taskId: string; index: number }, chunkEnv: BulkEnv = env) => {
  const c = clients();
  const retry = { sleep: async (ms: number) => void backoffs.push(ms), random: () => 0.5 };
  return createHandler(awsChunkDeps(chunkEnv, c, awsPace(chunkEnv, c, { retry })))(input);
};

const sequence = (): string[] => callSequence(MOCKS);

// ---------------------------------------------------------------------------------------------------------------
// An in-memory bucket behind the S3 mock

const bucket = new Map<string, StoredObject>();

// ---------------------------------------------------------------------------------------------------------------
// The test CA, the request, the zip

let root: CreatedCa;
let intermediate: CreatedCa;
let caId: string;
const tempDirs: string[] = [];

beforeAll(async () => {
  const now = new Date();
  root = await createRootCa({
    subject: { commonName: 'Acme Root', organization: 'Acme' },
    validity: { days: 3650 },
    now,
  });
  intermediate = await createIntermediateCa(root.issuer, {
    subject: { commonName: 'Acme Devices', organization: 'Acme' },
    validity: { days: 1825 },
    now,
  });
  caId = intermediate.certificate.id;
});

afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  for (const mock of Object.values(MOCKS)) mock.reset();
  bucket.clear();
  backoffs.length = 0;
  installBucket(s3Mock, bucket);
  docMock.on(cmd(GetCommand)).resolves({ Item: {} });
  docMock.on(cmd(UpdateCommand)).resolves({});
  ebMock.on(cmd(PutEventsCommand)).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'event-1' }] });
  serveIotRegisteredCa(ssmMock, iotMock, caId, intermediate);
});

const certflowCa = (): SupplierCa => ({ type: 'certflow', caId });

/** Stores request.json as POST would (the same normalisation), under a fresh task id. */
function givenRequest(ca: SupplierCa, body: Record<string, unknown>, requestEnv: BulkEnv = env): { taskId: string } {
  const taskId = randomUUID();
  const request = normalizeBatchRequest('acme', ca, body, bulkConfig(requestEnv), new Date());
  bucket.set(requestKey(taskId), {
    body: Buffer.from(JSON.stringify(request)),
    contentType: 'application/json',
    metadata: {},
  });
  return { taskId };
}

const BODY = { quantity: 3, certInfo: { commonName: '`acme-`${increment}A0', organization: 'Acme', country: 'US' } };
const NAMES = ['acme-A0', 'acme-A1', 'acme-A2'];

function zipFile(zip: Buffer): string {
  const dir = mkdtempSync(join(tmpdir(), 'certflow-chunk-'));
  tempDirs.push(dir);
  const file = join(dir, 'chunk.zip');
  writeFileSync(file, zip);
  return file;
}

const putInputs = () => s3Mock.commandCalls(cmd(PutObjectCommand)).map((c) => c.args[0].input);

/** The Certificate Issued events sent, parsed. */
function issuedEvents(): { entry: Record<string, unknown>; detail: Record<string, unknown> }[] {
  return ebMock.commandCalls(cmd(PutEventsCommand)).flatMap((c) =>
    (c.args[0].input.Entries ?? []).map((entry) => ({
      entry: entry as Record<string, unknown>,
      detail: JSON.parse(entry.Detail ?? '{}') as Record<string, unknown>,
    })),
  );
}

const spki = (key: KeyObject | string): Buffer =>
  (typeof key === 'string' ? createPublicKey(key) : key).export({ type: 'spki', format: 'der' });

/** Checks each folder of a certflow-layout chunk zip: the certificate, its key pair, the CN. */
function checkZip(file: string, names: string[], issuerKey?: KeyObject) {
  unzipTest(file);
  const ids: string[] = [];
  for (const name of names) {
    const cert = new X509Certificate(unzipRead(file, `${name}/certificate.pem`));
    const privateKey = createPrivateKey(unzipRead(file, `${name}/private.key`));
    expect(cert.checkPrivateKey(privateKey)).toBe(true);
    expect(spki(unzipRead(file, `${name}/public.key`)).equals(spki(cert.publicKey))).toBe(true);
    expect(cert.subject.split('\n')).toContain(`CN=${name}`);
    if (issuerKey) expect(cert.verify(issuerKey)).toBe(true);
    ids.push(createHash('sha256').update(cert.raw).digest('hex'));
  }
  return ids;
}

// ---------------------------------------------------------------------------------------------------------------

describe('IssueChunk with a certflow CA (key in SSM, certificate in AWS IoT)', () => {
  it('reads the request, checks the chunk, loads the CA, writes manifest then zip, publishes, counts the chunk', async () => {
    const { taskId } = givenRequest(certflowCa(), BODY);

    const result = await issue({ taskId, index: 0 });

    expect(result).toEqual({ taskId, index: 0, count: 3, replayed: false });
    expect(sequence()).toEqual([
      'S3.GetObject',
      'DynamoDB.Get',
      'S3.HeadObject',
      'SSM.GetParameter', // key
      'SSM.GetParameter', // certificate (absent: a CDF CA)
      'SSM.GetParameter', // chain
      'IoT.DescribeCACertificate',
      'S3.PutObject',
      'S3.PutObject',
      'EventBridge.PutEvents',
      'DynamoDB.Update',
    ]);
    expect(s3Mock.commandCalls(cmd(GetObjectCommand))[0]!.args[0].input).toEqual({
      Bucket: BUCKET,
      Key: `batches/${taskId}/request.json`,
    });
    expect(docMock.commandCalls(cmd(GetCommand))[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Key: { pk: `task#${taskId}#done#0` },
      ProjectionExpression: 'done',
      ConsistentRead: true,
    });
    expect(s3Mock.commandCalls(cmd(HeadObjectCommand))[0]!.args[0].input).toEqual({
      Bucket: BUCKET,
      Key: `batches/${taskId}/chunks/000000.zip`,
    });
    expect(ssmMock.commandCalls(cmd(GetParameterCommand)).map((c) => c.args[0].input)).toEqual([
      { Name: `cdf-ca-key-${caId}`, WithDecryption: true },
      { Name: `cdf-ca-cert-${caId}` },
      { Name: `cdf-ca-chain-${caId}` },
    ]);
    expect(iotMock).toHaveReceivedCommandWith(cmd(DescribeCACertificateCommand), { certificateId: caId });

    const [manifest, zip] = putInputs();
    expect(manifest).toEqual({
      Bucket: BUCKET,
      Key: `batches/${taskId}/chunks/000000.csv`,
      Body: expect.any(String),
      ContentType: 'text/csv',
    });
    expect(zip).toEqual({
      Bucket: BUCKET,
      Key: `batches/${taskId}/chunks/000000.zip`,
      Body: expect.any(Buffer),
      ContentType: 'application/zip',
      Metadata: {
        'entries-length': expect.stringMatching(/^\d+$/),
        'central-directory-length': expect.stringMatching(/^\d+$/),
        'entry-count': '9',
      },
    });
    const body = zip!.Body as Buffer;
    const meta = zip!.Metadata!;
    // entries, central directory, then the 22-byte end record
    expect(Number(meta['entries-length']) + Number(meta['central-directory-length']) + 22).toBe(body.length);

    const file = zipFile(body);
    expect(unzipList(file)).toEqual(
      NAMES.flatMap((n) => [`${n}/certificate.pem`, `${n}/private.key`, `${n}/public.key`]),
    );
    const ids = checkZip(file, NAMES, createPublicKey(intermediate.privateKey));

    const rows = String(manifest!.Body).trimEnd().split('\n');
    expect(rows).toHaveLength(3);
    rows.forEach((row, i) => expect(row.split(',').slice(0, 3)).toEqual([NAMES[i], NAMES[i], ids[i]]));

    const [event, ...more] = issuedEvents();
    expect(more).toEqual([]);
    expect(event!.entry).toEqual({
      Source: 'certflow',
      DetailType: 'Certificate Issued',
      Detail: expect.any(String),
      EventBusName: BUS,
    });
    expect(event!.entry.Detail).not.toMatch(/BEGIN|PRIVATE KEY/);
    expect(event!.detail).toEqual({
      issuerId: caId,
      kind: 'device',
      origin: 'bulk',
      taskId,
      chunk: 0,
      supplierId: 'acme',
      certificates: NAMES.map((commonName, i) => ({
        certificateId: ids[i],
        serialNumber: expect.stringMatching(/^[0-9a-f]+$/),
        commonName,
        notBefore: expect.any(String),
        notAfter: expect.any(String),
      })),
    });

    expect(docMock.commandCalls(cmd(UpdateCommand))[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Key: { pk: `task#${taskId}#done#0` },
      UpdateExpression: 'SET updatedAt = :now ADD done :offsets, doneCount :one',
      ConditionExpression: 'NOT contains(done, :offset)',
      ExpressionAttributeValues: { ':now': expect.any(String), ':offsets': new Set([0]), ':one': 1, ':offset': 0 },
    });
  });

  it('registers each certificate with AWS IoT, with the CA certificate and the requested status', async () => {
    const { taskId } = givenRequest(certflowCa(), { ...BODY, register: true, certificateStatus: 'INACTIVE' });
    iotMock.on(cmd(RegisterCertificateCommand)).callsFake(async (input: { certificatePem?: string }) => {
      const id = parseCertificate(input.certificatePem!).id;
      return { certificateId: id, certificateArn: `arn:aws:iot:us-east-1:111122223333:cert/${id}` };
    });

    await issue({ taskId, index: 0 });

    expect(sequence()).toEqual([
      'S3.GetObject',
      'DynamoDB.Get',
      'S3.HeadObject',
      'SSM.GetParameter', // key
      'SSM.GetParameter', // certificate (absent: a CDF CA)
      'SSM.GetParameter', // chain
      'IoT.DescribeCACertificate',
      'S3.PutObject',
      'S3.PutObject',
      'S3.PutObject',
      'S3.GetObject', // registration progress of an earlier attempt (none)
      'DynamoDB.Update', // a slot of the shared RegisterCertificate rate
      'IoT.RegisterCertificate',
      'DynamoDB.Update',
      'IoT.RegisterCertificate',
      'DynamoDB.Update',
      'IoT.RegisterCertificate',
      'S3.PutObject', // 3 registered
      'EventBridge.PutEvents',
      'DynamoDB.Update',
    ]);
    // manifest, the certificates kept for a retry's registrations, then the zip (the commit point), the progress
    expect(putInputs().map((p) => p.Key)).toEqual([
      `batches/${taskId}/chunks/000000.csv`,
      `batches/${taskId}/chunks/000000.certificates.pem`,
      `batches/${taskId}/chunks/000000.zip`,
      `batches/${taskId}/chunks/000000.registered`,
    ]);
    expect(putInputs()[3]!.Body).toBe('3');
    const slots = docMock.commandCalls(cmd(UpdateCommand)).map((c) => c.args[0].input);
    expect(slots.slice(0, 3)).toEqual(
      [0, 1, 2].map(() => ({
        TableName: TABLE,
        Key: { pk: 'rate#iot:RegisterCertificate' },
        UpdateExpression: 'SET nextFree = :next',
        ConditionExpression: 'attribute_not_exists(nextFree) OR nextFree < :now',
        ExpressionAttributeValues: { ':next': expect.any(Number), ':now': expect.any(Number) },
      })),
    );
    slots.slice(0, 3).forEach((slot) => {
      const values = slot.ExpressionAttributeValues as Record<string, number>;
      expect(values[':next']! - values[':now']!).toBe(100); // 10 TPS, AWS's default
    });
    const file = zipFile(putInputs()[2]!.Body as Buffer);
    expect(iotMock.commandCalls(cmd(RegisterCertificateCommand)).map((c) => c.args[0].input)).toEqual(
      NAMES.map((n) => ({
        certificatePem: unzipRead(file, `${n}/certificate.pem`),
        caCertificatePem: intermediate.certificate.pem,
        status: 'INACTIVE',
      })),
    );
    expect(iotMock).not.toHaveReceivedCommand(cmd(RegisterCertificateWithoutCACommand));
    const update = docMock.commandCalls(cmd(UpdateCommand)).at(-1)!.args[0].input;
    expect(update.UpdateExpression).toBe('SET updatedAt = :now ADD done :offsets, doneCount :one, registered :n');
    expect(update.ExpressionAttributeValues).toMatchObject({ ':n': 3 });
  });

  it('on a replay whose zip exists, signs nothing: re-publishes the events from the manifest and counts the chunk', async () => {
    const { taskId } = givenRequest(certflowCa(), BODY);
    await issue({ taskId, index: 0 });
    const firstEvents = issuedEvents().map((e) => e.detail);
    const zipBefore = bucket.get(`batches/${taskId}/chunks/000000.zip`)!.body;
    for (const mock of Object.values(MOCKS)) mock.resetHistory();

    const result = await issue({ taskId, index: 0 });

    expect(result).toEqual({ taskId, index: 0, count: 3, replayed: true });
    // request.json is cached by the container; a cold container would GetObject it first
    expect(sequence()).toEqual([
      'DynamoDB.Get',
      'S3.HeadObject',
      'S3.GetObject',
      'EventBridge.PutEvents',
      'DynamoDB.Update',
    ]);
    expect(s3Mock.commandCalls(cmd(GetObjectCommand))[0]!.args[0].input).toEqual({
      Bucket: BUCKET,
      Key: `batches/${taskId}/chunks/000000.csv`,
    });
    expect(ssmMock).not.toHaveReceivedCommand(cmd(GetParameterCommand));
    expect(s3Mock).not.toHaveReceivedCommand(cmd(PutObjectCommand));
    expect(bucket.get(`batches/${taskId}/chunks/000000.zip`)!.body.equals(zipBefore)).toBe(true);
    expect(issuedEvents().map((e) => e.detail)).toEqual(firstEvents);
    expect(docMock).toHaveReceivedCommandWith(cmd(UpdateCommand), {
      Key: { pk: `task#${taskId}#done#0` },
      ExpressionAttributeValues: { ':now': expect.any(String), ':offsets': new Set([0]), ':one': 1, ':offset': 0 },
    });
  });

  it('does nothing more for a chunk the task already counts done', async () => {
    const { taskId } = givenRequest(certflowCa(), BODY);
    docMock.on(cmd(GetCommand)).resolves({ Item: { done: new Set([0, 1]) } });

    const result = await issue({ taskId, index: 0 });

    expect(result).toEqual({ taskId, index: 0, count: 3, replayed: true });
    expect(sequence()).toEqual(['S3.GetObject', 'DynamoDB.Get']);
  });

  it('rejects an invalid input with INVALID_REQUEST before any AWS call', async () => {
    await expect(issue({ taskId: 'x', index: -1 })).rejects.toMatchObject({
      name: 'ValidationError',
      code: 'INVALID_REQUEST',
    });
    expect(sequence()).toEqual([]);
  });

  // Regression (was a bug in lambdas/core/bulk/chunk.ts, signChunk): registration happens after the chunk zip is written, and the
  // replay path (zip found by HeadObject) skipped it, completing the chunk with certificates never registered.
  it('retries a throttled RegisterCertificate with jittered backoff, each retry on a new slot of the rate', async () => {
    const { taskId } = givenRequest(certflowCa(), { ...BODY, register: true });
    let calls = 0;
    iotMock.on(cmd(RegisterCertificateCommand)).callsFake(async (input: { certificatePem?: string }) => {
      if (++calls === 2 || calls === 3) {
        throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $metadata: {} });
      }
      const id = parseCertificate(input.certificatePem!).id;
      return { certificateId: id, certificateArn: `arn:aws:iot:us-east-1:111122223333:cert/${id}` };
    });

    await expect(issue({ taskId, index: 0 })).resolves.toMatchObject({ count: 3, replayed: false });

    expect(calls).toBe(5); // 3 certificates, the second throttled twice
    expect(backoffs).toEqual([50, 100]); // full jitter (random 0.5) of 100 ms, then 200 ms
    const registerSlots = docMock
      .commandCalls(cmd(UpdateCommand))
      .filter((c) => c.args[0].input.Key?.pk === 'rate#iot:RegisterCertificate');
    expect(registerSlots).toHaveLength(5);
    const update = docMock.commandCalls(cmd(UpdateCommand)).at(-1)!.args[0].input;
    expect(update.ExpressionAttributeValues).toMatchObject({ ':n': 3 });
  });

  it('replays a chunk whose registrations ran out of retries: registers only the rest, each certificate once', async () => {
    const { taskId } = givenRequest(certflowCa(), { ...BODY, quantity: 30, register: true });
    const registered = new Map<string, number>();
    let calls = 0;
    let throttleFrom = 28; // the 28th call and the next 7 (8 attempts in all) are throttled: the attempt fails
    iotMock.on(cmd(RegisterCertificateCommand)).callsFake(async (input: { certificatePem?: string }) => {
      calls++;
      if (calls >= throttleFrom && calls < throttleFrom + 8) {
        throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $metadata: {} });
      }
      const id = parseCertificate(input.certificatePem!).id;
      if (registered.has(id)) {
        throw Object.assign(new Error('already registered'), { name: 'ResourceAlreadyExistsException', $metadata: {} });
      }
      registered.set(id, (registered.get(id) ?? 0) + 1);
      return { certificateId: id, certificateArn: `arn:aws:iot:us-east-1:111122223333:cert/${id}` };
    });
    await expect(issue({ taskId, index: 0 })).rejects.toMatchObject({ name: 'ThrottlingException' });
    expect(registered.size).toBe(27);
    expect(bucket.get(`batches/${taskId}/chunks/000000.registered`)!.body.toString()).toBe('27');
    const taskUpdates = () =>
      docMock.commandCalls(cmd(UpdateCommand)).filter((c) => c.args[0].input.Key?.pk === `task#${taskId}#done#0`);
    expect(taskUpdates()).toHaveLength(0); // the chunk is not counted done
    throttleFrom = Infinity;
    iotMock.resetHistory();

    await issue({ taskId, index: 0 }); // Step Functions' retry of the same chunk

    const file = zipFile(bucket.get(`batches/${taskId}/chunks/000000.zip`)!.body);
    const ids = unzipList(file)
      .filter((n) => n.endsWith('/certificate.pem'))
      .map((n) => parseCertificate(unzipRead(file, n)).id);
    expect(ids).toHaveLength(30);
    expect([...registered.keys()].sort()).toEqual([...ids].sort());
    expect([...registered.values()].every((n) => n === 1)).toBe(true);
    // only certificates 28-30 were sent again: none already registered for sure
    expect(iotMock.commandCalls(cmd(RegisterCertificateCommand))).toHaveLength(3);
    expect(iotMock).not.toHaveReceivedCommand(cmd(DescribeCertificateCommand));
    expect(taskUpdates()).toHaveLength(1);
    expect(taskUpdates()[0]!.args[0].input.ExpressionAttributeValues).toMatchObject({ ':n': 30, ':offset': 0 });
  });

  it('signs a chunk delivered twice at once only once: the second delivery is refused while the first holds the lease', async () => {
    const { taskId } = givenRequest(certflowCa(), { ...BODY, register: true });
    iotMock.on(cmd(RegisterCertificateCommand)).callsFake(async (input: { certificatePem?: string }) => {
      const id = parseCertificate(input.certificatePem!).id;
      return { certificateId: id, certificateArn: `arn:aws:iot:us-east-1:111122223333:cert/${id}` };
    });
    // the lease item, as DynamoDB's conditional writes would keep it
    let lease: { attemptId: string; expiresAt: number } | undefined;
    docMock
      .on(cmd(PutCommand))
      .callsFake(
        async (input: { Item?: Record<string, unknown>; ExpressionAttributeValues?: Record<string, unknown> }) => {
          const now = input.ExpressionAttributeValues![':now'] as number;
          if (lease && lease.expiresAt >= now && lease.attemptId !== input.Item!.attemptId) {
            throw Object.assign(new Error('The conditional request failed'), {
              name: 'ConditionalCheckFailedException',
              $metadata: {},
            });
          }
          lease = { attemptId: input.Item!.attemptId as string, expiresAt: input.Item!.expiresAt as number };
          return {};
        },
      );
    docMock
      .on(cmd(UpdateCommand))
      .callsFake(async (input: { Key?: { pk?: string }; ExpressionAttributeValues?: Record<string, unknown> }) => {
        if (input.Key?.pk === `lease#${taskId}#0`) {
          if (lease && lease.attemptId === input.ExpressionAttributeValues![':attempt']) lease.expiresAt = 0;
          return {};
        }
        return {};
      });
    const context = { getRemainingTimeInMillis: () => 55_000 };
    const c = clients();
    const handler = createHandler(awsChunkDeps(env, c, awsPace(env, c)));

    const outcomes = await Promise.allSettled([
      handler({ taskId, index: 0 }, context),
      handler({ taskId, index: 0 }, context),
    ]);

    const refused = outcomes.filter((o) => o.status === 'rejected');
    expect(refused).toHaveLength(1);
    expect((refused[0] as PromiseRejectedResult).reason).toMatchObject({
      name: 'TransientChunkError',
      code: 'CHUNK_BUSY',
    });
    expect(outcomes.find((o) => o.status === 'fulfilled')).toMatchObject({ value: { replayed: false, count: 3 } });
    expect(lease?.expiresAt).toBe(0); // given back when the chunk was done

    // the workflow's retry of the refused delivery finds the chunk signed: bookkeeping only
    await expect(handler({ taskId, index: 0 }, context)).resolves.toMatchObject({ replayed: true });

    const zips = putInputs().filter((p) => p.Key === `batches/${taskId}/chunks/000000.zip`);
    expect(zips).toHaveLength(1);
    expect(iotMock.commandCalls(cmd(RegisterCertificateCommand))).toHaveLength(3);
    const leases = docMock.commandCalls(cmd(PutCommand)).map((call) => call.args[0].input);
    expect(leases[0]).toEqual({
      TableName: TABLE,
      Item: {
        pk: `lease#${taskId}#0`,
        attemptId: expect.any(String),
        expiresAt: expect.any(Number),
        ttl: expect.any(Number),
      },
      ConditionExpression: 'attribute_not_exists(pk) OR expiresAt < :now OR attemptId = :attempt',
      ExpressionAttributeValues: { ':now': expect.any(Number), ':attempt': leases[0]!.Item!.attemptId },
    });
    const { expiresAt } = leases[0]!.Item as { expiresAt: number };
    const { ':now': claimedAt } = leases[0]!.ExpressionAttributeValues as { ':now': number };
    expect(expiresAt - claimedAt).toBeGreaterThanOrEqual(55_000 - 50); // the invocation's deadline
    expect(expiresAt - claimedAt).toBeLessThanOrEqual(55_000 + 1000);
  });

  it('paces the registrations of concurrent chunks on one shared schedule (20 TPS: 50 ms apart across chunks)', async () => {
    const small = readEnv(BulkEnv, { ...CDK_ENV, CHUNK_SIZE: '3', API_RATES: '{"iot:RegisterCertificate":20}' });
    const { taskId } = givenRequest(certflowCa(), { ...BODY, quantity: 12, register: true }, small);
    const at: number[] = [];
    iotMock.on(cmd(RegisterCertificateCommand)).callsFake(async (input: { certificatePem?: string }) => {
      at.push(performance.now());
      const id = parseCertificate(input.certificatePem!).id;
      return { certificateId: id, certificateArn: `arn:aws:iot:us-east-1:111122223333:cert/${id}` };
    });
    // one schedule for every chunk, as the task-table item is on AWS (the in-memory limiter of the local runtime)
    const pace = createPace({
      limiter: new MemoryRateLimiter(resolveApiRates(small.API_RATES)),
      isThrottling: isThrottlingError,
    });
    const handler = createHandler(awsChunkDeps(small, clients(), pace));

    const began = performance.now();
    await Promise.all([0, 1, 2, 3].map((index) => handler({ taskId, index })));

    // the k-th call of all chunks together starts no earlier than its slot, k × 50 ms after the first (a call can
    // be late — signing blocks the event loop — never early); four limiters of their own would call 4 at once
    expect(at).toHaveLength(12);
    at.sort((x, y) => x - y).forEach((t, k) => expect(t - began).toBeGreaterThanOrEqual(k * 50 - 2));
  });

  // Regression (was a bug in lambdas/handlers/env.ts): zod 4's `.default('0')` returns the string '0' without running the transform, so
  // without ZIP_LEVEL (the BulkIssuance construct does not set it) zipLevel is '0' and ZipChunkBuilder's checkLevel
  // throws "RangeError: deflate level must be 0-9: 0": every chunk of every batch fails.
  it("releases a built chunk's zip once it is stored, before the events and the count (a runtime reuses its memory)", async () => {
    const { taskId } = givenRequest(certflowCa(), BODY);
    const c = clients();
    const deps = awsChunkDeps(env, c, awsPace(env, c));
    let releasedAfter: string[] | undefined;
    const handler = createHandler({
      ...deps,
      build: async (job) => ({
        ...(await buildInProcess(deps.caKeys)(job)),
        release: () => void (releasedAfter ??= sequence()),
      }),
    });
    await handler({ taskId, index: 0 });
    expect(releasedAfter?.at(-1)).toBe('S3.PutObject');
    expect(putInputs().at(-1)?.Key).toBe(`batches/${taskId}/chunks/000000.zip`);
    expect(sequence().slice(releasedAfter!.length)).toEqual(['EventBridge.PutEvents', 'DynamoDB.Update']);
  });

  it('signs a chunk with the environment the CDK construct sets (ZIP_LEVEL left to its default)', async () => {
    const { taskId } = givenRequest(certflowCa(), BODY);
    await expect(issue({ taskId, index: 0 }, readEnv(BulkEnv, CDK_ENV))).resolves.toMatchObject({ count: 3 });
  });
});

describe('IssueChunk with an ACM PCA supplier', () => {
  /**
   * ACM PCA as documented: IssueCertificate returns an ARN (the same one again for an idempotency token seen in the
   * last 5 minutes); GetCertificate answers RequestInProgressException until it has signed (here: the first poll).
   * The test CA signs the CSR.
   */
  function givenPca(
    options: {
      inProgressPolls?: number;
      throttlePolls?: (poll: number) => boolean;
      failPolls?: (poll: number) => boolean;
    } = {},
  ) {
    const byToken = new Map<string, string>();
    const csrByArn = new Map<string, Buffer>();
    const certByArn = new Map<string, string>();
    let polls = 0;
    pcaMock.on(cmd(DescribeCertificateAuthorityCommand)).resolves({
      CertificateAuthority: {
        Arn: PCA_ARN,
        Status: 'ACTIVE',
        CertificateAuthorityConfiguration: {
          KeyAlgorithm: 'EC_prime256v1',
          SigningAlgorithm: 'SHA256WITHECDSA',
          Subject: { CommonName: 'Acme PCA' },
        },
      },
    });
    pcaMock
      .on(cmd(IssueCertificateCommand))
      .callsFake(async (input: { Csr?: Uint8Array; IdempotencyToken?: string }) => {
        const known = input.IdempotencyToken !== undefined ? byToken.get(input.IdempotencyToken) : undefined;
        if (known) return { CertificateArn: known };
        const arn = `${PCA_ARN}/certificate/${byToken.size + 1}`;
        csrByArn.set(arn, Buffer.from(input.Csr!));
        if (input.IdempotencyToken !== undefined) byToken.set(input.IdempotencyToken, arn);
        return { CertificateArn: arn };
      });
    pcaMock.on(cmd(GetCertificateCommand)).callsFake(async (input: { CertificateArn?: string }) => {
      polls++;
      if (polls <= (options.inProgressPolls ?? 0)) {
        throw new RequestInProgressException({ message: 'The request is in progress', $metadata: {} });
      }
      if (options.failPolls?.(polls)) {
        throw Object.assign(new Error('internal failure'), { name: 'InternalFailureException', $metadata: {} });
      }
      if (options.throttlePolls?.(polls)) {
        throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $metadata: {} });
      }
      const arn = input.CertificateArn!;
      let pem = certByArn.get(arn);
      if (!pem) {
        const csr = parseCsr(csrByArn.get(arn)!.toString('utf8')); // the SDK sends the PEM text as bytes
        pem = (
          await issueFromCsr(intermediate.issuer, csr, { profile: 'device', validity: { days: 365 }, now: new Date() })
        ).pem;
        certByArn.set(arn, pem);
      }
      return { Certificate: pem, CertificateChain: intermediate.certificate.pem };
    });
    return { certificatesBilled: () => csrByArn.size };
  }

  const PCA: SupplierCa = { type: 'acm-pca', arn: PCA_ARN };
  const PCA_BODY = { quantity: 2, certInfo: { commonName: '`acme-`${increment}A0', organization: 'Acme' } };
  const token = (taskId: string, i: number) => createHash('sha256').update(`${taskId}:${i}`).digest('hex').slice(0, 36);

  it('describes the CA once, issues each CSR with a per-certificate token, polls GetCertificate until signed', async () => {
    const { taskId } = givenRequest(PCA, PCA_BODY);
    givenPca({ inProgressPolls: 1 });

    const result = await issue({ taskId, index: 0 });

    expect(result).toEqual({ taskId, index: 0, count: 2, replayed: false });
    expect(sequence()).toEqual([
      'S3.GetObject',
      'DynamoDB.Get',
      'S3.HeadObject',
      'S3.GetObject', // progress of an earlier attempt (none)
      'S3.PutObject', // the device keys, saved before anything is billed
      'ACMPCA.DescribeCertificateAuthority',
      'DynamoDB.Update', // each ACM PCA call takes a slot of its shared rate first
      'ACMPCA.IssueCertificate',
      'DynamoDB.Update',
      'ACMPCA.GetCertificate',
      'DynamoDB.Update',
      'ACMPCA.GetCertificate',
      'DynamoDB.Update',
      'ACMPCA.IssueCertificate',
      'DynamoDB.Update',
      'ACMPCA.GetCertificate',
      'S3.PutObject',
      'S3.PutObject',
      'EventBridge.PutEvents',
      'DynamoDB.Update',
    ]);
    expect(pcaMock).toHaveReceivedCommandWith(cmd(DescribeCertificateAuthorityCommand), {
      CertificateAuthorityArn: PCA_ARN,
    });
    const issues = pcaMock.commandCalls(cmd(IssueCertificateCommand)).map((c) => c.args[0].input);
    issues.forEach((input, i) => {
      expect(input).toEqual({
        CertificateAuthorityArn: PCA_ARN,
        Csr: expect.anything(),
        SigningAlgorithm: 'SHA256WITHECDSA',
        Validity: { Type: 'DAYS', Value: 365 },
        IdempotencyToken: token(taskId, i), // `${taskId}:${i}` is 38 characters: hashed to 36
      });
      expect(input.IdempotencyToken!.length).toBeLessThanOrEqual(36);
      const csr = parseCsr(Buffer.from(input.Csr!).toString('utf8'));
      expect(csr.commonName).toBe(`acme-A${i}`);
      expect(csr.subject).toContain('O=Acme');
    });
    expect(new Set(issues.map((i) => i.IdempotencyToken)).size).toBe(2);
    expect(pcaMock.commandCalls(cmd(GetCertificateCommand)).map((c) => c.args[0].input)).toEqual([
      { CertificateAuthorityArn: PCA_ARN, CertificateArn: `${PCA_ARN}/certificate/1` },
      { CertificateAuthorityArn: PCA_ARN, CertificateArn: `${PCA_ARN}/certificate/1` },
      { CertificateAuthorityArn: PCA_ARN, CertificateArn: `${PCA_ARN}/certificate/2` },
    ]);
    expect(ssmMock).not.toHaveReceivedCommand(cmd(GetParameterCommand));
    expect(
      docMock
        .commandCalls(cmd(UpdateCommand))
        .map((c) => c.args[0].input.Key?.pk)
        .slice(0, 5),
    ).toEqual([
      'rate#acm-pca:IssueCertificate',
      'rate#acm-pca:GetCertificate',
      'rate#acm-pca:GetCertificate',
      'rate#acm-pca:IssueCertificate',
      'rate#acm-pca:GetCertificate',
    ]);

    const file = zipFile(putInputs()[2]!.Body as Buffer);
    const ids = checkZip(file, ['acme-A0', 'acme-A1'], createPublicKey(intermediate.privateKey));
    const [event] = issuedEvents();
    expect(event!.detail).toMatchObject({
      issuerId: PCA_ARN,
      certificates: [{ certificateId: ids[0] }, { certificateId: ids[1] }],
    });
    expect(event!.entry.Detail).not.toMatch(/BEGIN|PRIVATE KEY/);
  });

  // Regression (was a bug in lambdas/adapters/aws/external-issuers.ts, AcmPcaDeviceIssuer.issue): a retried chunk made a NEW key and
  // CSR but sent the same IdempotencyToken (`taskId:index`): ACM PCA answered with the certificate of the FIRST CSR,
  // so the zip paired it with a key it does not certify. The keys are now saved before anything is requested.
  it('replays an ACM PCA chunk whose GetCertificate ran out of retries: no certificate requested or billed twice', async () => {
    const { taskId } = givenRequest(PCA, { ...PCA_BODY, quantity: 3 });
    let throttling = true;
    givenPca({ throttlePolls: (poll) => throttling && poll >= 2 }); // certificate 2 cannot be fetched
    await expect(issue({ taskId, index: 0 })).rejects.toMatchObject({ name: 'ThrottlingException' });
    expect(backoffs).toHaveLength(7); // 8 attempts
    expect(pcaMock.commandCalls(cmd(IssueCertificateCommand))).toHaveLength(2);
    throttling = false;
    pcaMock.resetHistory();

    await issue({ taskId, index: 0 }); // Step Functions' retry, seconds later

    // certificate 1 came from the saved progress, certificate 2 by its saved ARN, only certificate 3 was requested
    expect(pcaMock.commandCalls(cmd(IssueCertificateCommand)).map((c) => c.args[0].input.IdempotencyToken)).toEqual([
      token(taskId, 2),
    ]);
    expect(pcaMock.commandCalls(cmd(GetCertificateCommand)).map((c) => c.args[0].input.CertificateArn)).toEqual([
      `${PCA_ARN}/certificate/2`,
      `${PCA_ARN}/certificate/3`,
    ]);
    const file = zipFile(bucket.get(`batches/${taskId}/chunks/000000.zip`)!.body);
    const serials = new Set<string>();
    for (const name of ['acme-A0', 'acme-A1', 'acme-A2']) {
      const cert = new X509Certificate(unzipRead(file, `${name}/certificate.pem`));
      expect(cert.checkPrivateKey(createPrivateKey(unzipRead(file, `${name}/private.key`)))).toBe(true);
      expect(cert.subject.split('\n')).toContain(`CN=${name}`);
      serials.add(cert.serialNumber);
    }
    expect(serials.size).toBe(3);
  });

  it('replays an ACM PCA chunk that stopped before saving an ARN: same key and token, one certificate billed', async () => {
    const { taskId } = givenRequest(PCA, PCA_BODY);
    let crash = true;
    const pca = givenPca({ failPolls: () => crash });
    // the attempt dies without saving more than the keys (as a Lambda timeout would)
    const progressKey = `batches/${taskId}/chunks/000000.progress.json`;
    s3Mock.on(cmd(PutObjectCommand), { Key: progressKey }).callsFake(async (input: ObjectInput) => {
      if (crash && bucket.has(progressKey)) throw new Error('Task timed out');
      bucket.set(progressKey, { body: await bytesOf(input.Body), metadata: {} });
      return { ETag: '"etag"' };
    });
    await expect(issue({ taskId, index: 0 })).rejects.toMatchObject({ name: 'InternalFailureException' });
    const keysSaved = JSON.parse(bucket.get(progressKey)!.body.toString()) as {
      certificates: Record<string, { privateKeyPem?: string; certificateArn?: string }>;
    };
    expect(Object.keys(keysSaved.certificates)).toEqual(['0', '1']);
    expect(keysSaved.certificates['0']!.certificateArn).toBeUndefined();
    crash = false;
    pcaMock.resetHistory();

    await issue({ taskId, index: 0 });

    // certificate 1 requested again with its token: ACM PCA answers the first request's certificate (same key)
    expect(pcaMock.commandCalls(cmd(IssueCertificateCommand)).map((c) => c.args[0].input.IdempotencyToken)).toEqual([
      token(taskId, 0),
      token(taskId, 1),
    ]);
    expect(pca.certificatesBilled()).toBe(2);
    const file = zipFile(bucket.get(`batches/${taskId}/chunks/000000.zip`)!.body);
    for (const name of ['acme-A0', 'acme-A1']) {
      const cert = new X509Certificate(unzipRead(file, `${name}/certificate.pem`));
      expect(cert.checkPrivateKey(createPrivateKey(unzipRead(file, `${name}/private.key`)))).toBe(true);
      const key = createPrivateKey(unzipRead(file, `${name}/private.key`)).export({ type: 'pkcs8', format: 'pem' });
      expect(Object.values(keysSaved.certificates).map((c) => c.privateKeyPem)).toContain(key);
    }
  });
});

describe('IssueChunk with the AwsIotDefault supplier', () => {
  /** AWS IoT's CreateKeysAndCertificate, its CA played by the test CA */
  async function createKeysAndCertificate() {
    const leaf = await issueLeaf(intermediate.issuer, {
      profile: 'device',
      subject: { commonName: 'AWS IoT Certificate' },
      validity: { days: 365 },
      now: new Date(),
    });
    return {
      certificateArn: `arn:aws:iot:us-east-1:111122223333:cert/${leaf.certificate.id}`,
      certificateId: leaf.certificate.id,
      certificatePem: leaf.certificate.pem,
      keyPair: { PrivateKey: privateKeyToPem(leaf.privateKey), PublicKey: publicKeyToPem(leaf.publicKey) },
    };
  }

  it('has AWS IoT create each key and certificate, inactive, and registers nothing more', async () => {
    const { taskId } = givenRequest({ type: 'aws-iot' }, { ...BODY, quantity: 2, register: true });
    iotMock.on(cmd(CreateKeysAndCertificateCommand)).callsFake(createKeysAndCertificate);

    const result = await issue({ taskId, index: 0 });

    expect(result).toEqual({ taskId, index: 0, count: 2, replayed: false });
    expect(sequence()).toEqual([
      'S3.GetObject',
      'DynamoDB.Get',
      'S3.HeadObject',
      'S3.GetObject', // progress of an earlier attempt (none)
      'DynamoDB.Update',
      'IoT.CreateKeysAndCertificate',
      'DynamoDB.Update',
      'IoT.CreateKeysAndCertificate',
      'S3.PutObject',
      'S3.PutObject',
      'EventBridge.PutEvents',
      'DynamoDB.Update',
    ]);
    expect(iotMock.commandCalls(cmd(CreateKeysAndCertificateCommand)).map((c) => c.args[0].input)).toEqual([
      { setAsActive: false },
      { setAsActive: false },
    ]);
    expect(iotMock).not.toHaveReceivedCommand(cmd(RegisterCertificateCommand));
    expect(iotMock).not.toHaveReceivedCommand(cmd(RegisterCertificateWithoutCACommand));

    const file = zipFile(putInputs()[1]!.Body as Buffer);
    unzipTest(file);
    const certs = ['acme-A0', 'acme-A1'].map((n) => new X509Certificate(unzipRead(file, `${n}/certificate.pem`)));
    ['acme-A0', 'acme-A1'].forEach((n, i) =>
      expect(certs[i]!.checkPrivateKey(createPrivateKey(unzipRead(file, `${n}/private.key`)))).toBe(true),
    );
    const [event] = issuedEvents();
    expect(event!.detail).toMatchObject({
      issuerId: 'aws-iot',
      certificates: [{ commonName: 'acme-A0' }, { commonName: 'acme-A1' }],
    });
    expect(docMock.commandCalls(cmd(UpdateCommand))[0]!.args[0].input.UpdateExpression).not.toContain('registered');
  });

  it('replays a chunk that failed half way without creating its first certificates again', async () => {
    const { taskId } = givenRequest({ type: 'aws-iot' }, { ...BODY, quantity: 3 });
    let created = 0;
    let failAt: number | undefined = 3; // the third creation fails for good (not throttling)
    iotMock.on(cmd(CreateKeysAndCertificateCommand)).callsFake(async () => {
      if (++created === failAt) {
        throw Object.assign(new Error('internal failure'), { name: 'InternalFailureException', $metadata: {} });
      }
      return createKeysAndCertificate();
    });
    await expect(issue({ taskId, index: 0 })).rejects.toMatchObject({ name: 'InternalFailureException' });
    failAt = undefined;
    iotMock.resetHistory();

    await issue({ taskId, index: 0 });

    // only the third certificate was created on the retry; the zip has the first two from the saved progress
    expect(iotMock.commandCalls(cmd(CreateKeysAndCertificateCommand))).toHaveLength(1);
    const file = zipFile(bucket.get(`batches/${taskId}/chunks/000000.zip`)!.body);
    const ids = new Set<string>();
    for (const name of ['acme-A0', 'acme-A1', 'acme-A2']) {
      const cert = new X509Certificate(unzipRead(file, `${name}/certificate.pem`));
      expect(cert.checkPrivateKey(createPrivateKey(unzipRead(file, `${name}/private.key`)))).toBe(true);
      ids.add(cert.fingerprint256);
    }
    expect(ids.size).toBe(3);
  });
});
