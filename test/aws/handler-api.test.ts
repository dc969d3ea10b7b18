/**
 * The bulk-issuance REST API Lambda (api-bulk-certificates) on AWS deps built by awsBatchDeps from real SDK clients
 * whose `send` is mocked: the exact S3 / DynamoDB / Step Functions commands and inputs behind each response.
 */
import 'aws-sdk-client-mock-jest';
import { Readable } from 'node:stream';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { sdkStreamMixin } from '@smithy/util-stream';
import type { APIGatewayProxyResult } from 'aws-lambda';
import { awsBatchDeps } from '../../lambdas/adapters/aws/bulk-deps';
import { createHandler } from '../../lambdas/handlers/api-bulk-certificates';
import { BulkApiEnv, readEnv } from '../../lambdas/handlers/env';
import { CDF_MEDIA_TYPE } from '../../lambdas/handlers/http';
import { apiEvent, type ApiEventOptions } from './api-events';
import { testClients, US_EAST_1_CONFIG } from './aws-clients';
import { callSequence, cmd, mockSdk } from './sdk-mock';
import { conditionFailed, serveDoneShards } from './dynamo-fake';

const TABLE = 'certflow-tasks';
const BUCKET = 'certflow-batches';
const STATE_MACHINE = 'arn:aws:states:us-east-1:111122223333:stateMachine:certflow-bulk-issuance';
const CA_ID = 'acme-devices-ca';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const s3Mock = mockSdk(S3Client);
const docMock = mockSdk(DynamoDBDocumentClient);
const sfnMock = mockSdk(SFNClient);
const ebMock = mockSdk(EventBridgeClient);
const MOCKS = { S3: s3Mock, DynamoDB: docMock, SFN: sfnMock, EventBridge: ebMock };

const clients = () => testClients(US_EAST_1_CONFIG);

/** The variables the BulkIssuance construct sets (DEFAULT_DAYS_EXPIRY and ZIP_LEVEL are left to their defaults). */
const env = readEnv(BulkApiEnv, {
  TASK_TABLE_NAME: TABLE,
  BUCKET_NAME: BUCKET,
  EVENT_BUS_NAME: 'certflow-bus',
  BULK_STATE_MACHINE_ARN: STATE_MACHINE,
  SUPPLIERS: JSON.stringify({ acme: { type: 'certflow', caId: CA_ID } }),
  CA_KEY_STORE: 'ssm',
  CHUNK_SIZE: '100',
  MAX_CONCURRENCY: '100',
  MAX_QUANTITY: '1000000',
  DEFAULT_CERT_INFO: JSON.stringify({ organization: 'Acme' }),
});

const logger = { error: jest.fn() };
const api = () => createHandler(awsBatchDeps(env, clients(), {}), logger);

/** Every SDK call of every mock, in the order they were made, as `Service.Operation`. */
const sequence = (): string[] => callSequence(MOCKS);

const post = (body: unknown, headers: Record<string, string> = {}, supplierId = 'acme') =>
  apiEvent('POST', '/supplier/{supplierId}/certificates', `/supplier/${supplierId}/certificates`, {
    pathParameters: { supplierId },
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });

const getTaskEvent = (taskId: string, headers: Record<string, string> = {}) =>
  apiEvent('GET', '/certificates/{taskId}/task', `/certificates/${taskId}/task`, {
    pathParameters: { taskId },
    headers,
  });

const getDownloadEvent = (taskId: string, options: Omit<ApiEventOptions, 'pathParameters'> = {}) =>
  apiEvent('GET', '/certificates/{taskId}', `/certificates/${taskId}`, { pathParameters: { taskId }, ...options });

const bodyOf = (result: APIGatewayProxyResult): Record<string, unknown> =>
  JSON.parse(result.body) as Record<string, unknown>;

const BODY = { quantity: 3, certInfo: { commonName: '`acme-`${increment}A0', country: 'US' } };

/**
 * The stored task item (as DynamoDB holds it) for GET tests; its done shards (served in beforeEach) count one chunk
 * done, three for `t-2` … `t-4` (complete), and 100 certificates registered for `t-r`.
 */
const taskItem = (taskId: string, fields: Record<string, unknown> = {}) => ({
  pk: `task#${taskId}`,
  gsi1pk: fields.status ?? 'in_progress',
  taskId,
  supplierId: 'acme',
  status: 'in_progress',
  quantity: 250,
  chunkSize: 100,
  chunksTotal: 3,
  createdAt: '2026-03-01T12:00:00.000Z',
  request: { keyType: 'ec-p256', register: false, includeCA: false, layout: 'certflow' },
  ...fields,
});

const doneOf = (taskId: string) =>
  ['t-2', 't-3', 't-4'].includes(taskId) ? { done: 3 } : taskId === 't-r' ? { done: 1, registered: 100 } : { done: 1 };

beforeEach(() => {
  for (const mock of Object.values(MOCKS)) mock.reset();
  logger.error.mockReset();
  s3Mock.on(cmd(PutObjectCommand)).resolves({});
  docMock.on(cmd(PutCommand)).resolves({});
  docMock.on(cmd(UpdateCommand)).resolves({});
  serveDoneShards(docMock, doneOf);
  sfnMock.on(cmd(StartExecutionCommand)).resolves({ executionArn: 'arn:exec', startDate: new Date() });
});

describe('POST /supplier/{supplierId}/certificates', () => {
  it('stores the request in S3, puts a pending task only if new, starts the execution named by the task id', async () => {
    const result = await api()(post(BODY));

    expect(result.statusCode).toBe(202);
    const taskId = String(bodyOf(result).taskId);
    expect(taskId).toMatch(UUID);
    expect(bodyOf(result)).toEqual({ taskId, status: 'pending' });
    expect(result.headers).toEqual({
      'content-type': 'application/json',
      location: `/certificates/${taskId}`,
      'x-taskid': taskId,
    });
    expect(sequence()).toEqual(['S3.PutObject', 'DynamoDB.Put', 'SFN.StartExecution']);

    const put = s3Mock.commandCalls(cmd(PutObjectCommand))[0]!.args[0].input;
    expect(put).toEqual({
      Bucket: BUCKET,
      Key: `batches/${taskId}/request.json`,
      Body: expect.any(String),
      ContentType: 'application/json',
    });
    const request = JSON.parse(String(put.Body)) as Record<string, unknown>;
    expect(request).toEqual({
      supplierId: 'acme',
      ca: { type: 'certflow', caId: CA_ID },
      quantity: 3,
      keyType: 'ec-p256',
      register: false,
      certificateStatus: 'ACTIVE',
      layout: 'certflow',
      includeCA: false,
      daysExpiry: expect.anything(), // see the it.failing test below: a string when DEFAULT_DAYS_EXPIRY is unset
      notBefore: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      notAfter: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      subject: { organization: 'Acme', country: 'US' },
      commonName: { generator: 'increment', prefix: 'acme-', start: 'A0' },
      uniqueNames: true,
      chunkSize: 100,
    });
    const days = (Date.parse(String(request.notAfter)) - Date.parse(String(request.notBefore))) / 86_400_000;
    expect(Math.round(days)).toBe(365);

    expect(docMock.commandCalls(cmd(PutCommand))[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Item: {
        pk: `task#${taskId}`,
        gsi1pk: 'pending',
        taskId,
        supplierId: 'acme',
        status: 'pending',
        quantity: 3,
        chunkSize: 100,
        chunksTotal: 1,
        createdAt: expect.any(String),
        request: { ca: 'certflow', keyType: 'ec-p256', register: false, includeCA: false, layout: 'certflow' },
      },
      ConditionExpression: 'attribute_not_exists(pk)',
    });
    expect(sfnMock.commandCalls(cmd(StartExecutionCommand))[0]!.args[0].input).toEqual({
      stateMachineArn: STATE_MACHINE,
      name: taskId,
      input: JSON.stringify({ taskId }),
    });
  });

  // Regression (was a bug in lambdas/handlers/env.ts): zod 4's `.default()` returns the default as the parsed value without running the
  // transform, so positiveInt(365) yields the string '365' when DEFAULT_DAYS_EXPIRY is unset; request.json then
  // stores "daysExpiry": "365" (the arithmetic on it still works only through string-to-number coercion).
  // `.prefault(String(fallback))`, or a numeric default, would fix it.
  it('stores the default daysExpiry as the number 365 when DEFAULT_DAYS_EXPIRY is unset', async () => {
    await api()(post(BODY));
    const put = s3Mock.commandCalls(cmd(PutObjectCommand))[0]!.args[0].input;
    expect((JSON.parse(String(put.Body)) as { daysExpiry: unknown }).daysExpiry).toBe(365);
  });

  it('puts the API Gateway stage in front of the location', async () => {
    const event = post(BODY);
    event.requestContext.path = `/prod${event.path}`;
    const result = await api()(event);
    expect(result.headers?.location).toBe(`/prod/certificates/${String(bodyOf(result).taskId)}`);
  });

  it('answers with CDF’s media type when the client accepts it', async () => {
    const result = await api()(post(BODY, { accept: CDF_MEDIA_TYPE }));
    expect(result.statusCode).toBe(202);
    expect(result.headers?.['content-type']).toBe(CDF_MEDIA_TYPE);
  });

  it('answers 415 to Accept: text/html without calling AWS', async () => {
    const result = await api()(post(BODY, { accept: 'text/html' }));
    expect(result.statusCode).toBe(415);
    expect(bodyOf(result)).toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE' });
    expect(sequence()).toEqual([]);
  });

  it('answers 404 SUPPLIER_NOT_FOUND for an unknown supplier without calling AWS', async () => {
    const result = await api()(post(BODY, {}, 'globex'));
    expect(result.statusCode).toBe(404);
    expect(bodyOf(result)).toMatchObject({ code: 'SUPPLIER_NOT_FOUND' });
    expect(sequence()).toEqual([]);
  });

  it.each([
    ['error/quantity below 1', { quantity: 0 }, 'quantity'],
    ['error/unknown certInfo field', { quantity: 1, certInfo: { colour: 'red' } }, 'certInfo'],
    ['error/daysExpiry above 825', { quantity: 1, certInfo: { daysExpiry: 900 } }, 'certInfo.daysExpiry'],
    ['error/no quantity', {}, 'quantity'],
  ])('%s → 400 INVALID_REQUEST naming the field, no AWS call', async (_name, body, field) => {
    const result = await api()(post(body));
    expect(result.statusCode).toBe(400);
    const error = bodyOf(result);
    expect(error).toMatchObject({ code: 'INVALID_REQUEST', details: { field } });
    expect(String(error.message).startsWith(`${field}:`)).toBe(true);
    expect(sequence()).toEqual([]);
  });

  it('marks the task failed and answers 500 INTERNAL_ERROR when StartExecution fails', async () => {
    const denied = Object.assign(new Error('not authorized to perform states:StartExecution'), {
      name: 'AccessDeniedException',
      $metadata: { httpStatusCode: 400 },
    });
    sfnMock.on(cmd(StartExecutionCommand)).rejects(denied);

    const result = await api()(post(BODY));

    expect(result.statusCode).toBe(500);
    expect(bodyOf(result)).toEqual({ code: 'INTERNAL_ERROR', message: 'certflow could not complete the request' });
    expect(sequence()).toEqual(['S3.PutObject', 'DynamoDB.Put', 'SFN.StartExecution', 'DynamoDB.Update']);
    const taskId = String(docMock.commandCalls(cmd(PutCommand))[0]!.args[0].input.Item?.taskId);
    expect(docMock.commandCalls(cmd(UpdateCommand))[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Key: { pk: `task#${taskId}` },
      UpdateExpression: 'SET #status = :status, gsi1pk = :status, updatedAt = :now, #error = :error',
      ConditionExpression: 'attribute_exists(pk)',
      ExpressionAttributeNames: { '#status': 'status', '#error': 'error' },
      ExpressionAttributeValues: {
        ':status': 'failed',
        ':now': expect.any(String),
        ':error': { code: 'WORKFLOW_START_FAILED', message: 'the batch workflow could not be started' },
      },
    });
    expect(logger.error).toHaveBeenCalledWith('unhandled error', { error: expect.any(Error) });
  });

  it('treats ExecutionAlreadyExists as started (202)', async () => {
    sfnMock
      .on(cmd(StartExecutionCommand))
      .rejects(Object.assign(new Error('execution exists'), { name: 'ExecutionAlreadyExists' }));
    const result = await api()(post(BODY));
    expect(result.statusCode).toBe(202);
    expect(docMock).not.toHaveReceivedCommand(cmd(UpdateCommand));
  });

  describe('with an Idempotency-Key', () => {
    const KEY = 'order-42';
    const idemPk = `idem#acme#${KEY}`;

    /** The first POST: returns its task id and the idempotency and task items it stored. */
    async function firstPost() {
      const result = await api()(post(BODY, { 'Idempotency-Key': KEY }));
      expect(result.statusCode).toBe(202);
      expect(sequence()).toEqual(['DynamoDB.Put', 'S3.PutObject', 'DynamoDB.Put', 'SFN.StartExecution']);
      const [idem, task] = docMock.commandCalls(cmd(PutCommand)).map((c) => c.args[0].input);
      return { taskId: String(bodyOf(result).taskId), idem: idem!, task: task! };
    }

    /** DynamoDB as the first POST left it: the key's conditional put fails, GetItem reads back what was stored. */
    function givenKeyClaimed(idemItem: Record<string, unknown>, taskItemStored: Record<string, unknown>) {
      for (const mock of Object.values(MOCKS)) mock.reset();
      docMock.on(cmd(PutCommand)).rejects(conditionFailed());
      docMock.on(cmd(GetCommand), { Key: { pk: idemPk } }).resolves({ Item: idemItem });
      docMock.on(cmd(GetCommand), { Key: { pk: String(taskItemStored.pk) } }).resolves({ Item: taskItemStored });
      serveDoneShards(docMock, {});
    }

    it('claims the key with a conditional put of the task id and request fingerprint', async () => {
      const { taskId, idem } = await firstPost();
      expect(idem).toEqual({
        TableName: TABLE,
        Item: {
          pk: idemPk,
          taskId,
          fingerprint: expect.stringMatching(/^[0-9a-f]{64}$/),
          createdAt: expect.any(String),
        },
        ConditionExpression: 'attribute_not_exists(pk)',
      });
    });

    it('answers a repeated identical POST with the same task and does not start the workflow again', async () => {
      const first = await firstPost();
      givenKeyClaimed(first.idem.Item!, first.task.Item!);

      const result = await api()(post(BODY, { 'idempotency-key': KEY }));

      expect(result.statusCode).toBe(202);
      expect(bodyOf(result)).toEqual({ taskId: first.taskId, status: 'pending' });
      expect(result.headers?.['x-taskid']).toBe(first.taskId);
      expect(sequence()).toEqual(['DynamoDB.Put', 'DynamoDB.Get', 'DynamoDB.Get', 'DynamoDB.BatchGet']);
      expect(docMock.commandCalls(cmd(GetCommand)).map((c) => c.args[0].input)).toEqual([
        { TableName: TABLE, Key: { pk: idemPk }, ConsistentRead: true },
        { TableName: TABLE, Key: { pk: `task#${first.taskId}` }, ConsistentRead: true },
      ]);
      expect(sfnMock).not.toHaveReceivedCommand(cmd(StartExecutionCommand));
      expect(s3Mock).not.toHaveReceivedCommand(cmd(PutObjectCommand));
    });

    it('answers 409 IDEMPOTENCY_KEY_REUSED to a different body with the same key', async () => {
      const first = await firstPost();
      givenKeyClaimed(first.idem.Item!, first.task.Item!);

      const result = await api()(post({ ...BODY, quantity: 4 }, { 'Idempotency-Key': KEY }));

      expect(result.statusCode).toBe(409);
      expect(bodyOf(result)).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });
      expect(sequence()).toEqual(['DynamoDB.Put', 'DynamoDB.Get']);
    });
  });
});

describe('GET /certificates/{taskId}/task', () => {
  it('reads the task item by its key and shows the task view', async () => {
    docMock.on(cmd(GetCommand)).resolves({ Item: taskItem('t-1') });

    const result = await api()(getTaskEvent('t-1'));

    expect(result.statusCode).toBe(200);
    expect(docMock.commandCalls(cmd(GetCommand))[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Key: { pk: 'task#t-1' },
      ConsistentRead: true,
    });
    expect(bodyOf(result)).toEqual({
      taskId: 't-1',
      supplierId: 'acme',
      status: 'in_progress',
      quantity: 250,
      chunksPending: 2,
      chunksTotal: 3,
      createdAt: '2026-03-01T12:00:00.000Z',
      batchDate: Date.parse('2026-03-01T12:00:00.000Z'),
    });
    expect(sequence()).toEqual(['DynamoDB.Get', 'DynamoDB.BatchGet']);
  });

  it('shows how far registration got, "registered of registrationTotal", for a batch that registers', async () => {
    const request = { ca: 'certflow', keyType: 'ec-p256', register: true, includeCA: false, layout: 'certflow' };
    docMock.on(cmd(GetCommand)).resolves({ Item: taskItem('t-r', { request }) });
    expect(bodyOf(await api()(getTaskEvent('t-r')))).toMatchObject({ registered: 100, registrationTotal: 250 });

    docMock.on(cmd(GetCommand)).resolves({ Item: taskItem('t-0', { request }) }); // no chunk finished yet
    expect(bodyOf(await api()(getTaskEvent('t-0')))).toMatchObject({ registered: 0, registrationTotal: 250 });

    // AWS IoT's own CA registers as it issues: nothing separate to report
    const iot = { ...request, ca: 'aws-iot' };
    docMock.on(cmd(GetCommand)).resolves({ Item: taskItem('t-i', { request: iot }) });
    expect(bodyOf(await api()(getTaskEvent('t-i')))).not.toHaveProperty('registrationTotal');
  });

  it('answers 404 TASK_NOT_FOUND for an unknown task', async () => {
    docMock.on(cmd(GetCommand)).resolves({});
    const result = await api()(getTaskEvent('nope', { accept: CDF_MEDIA_TYPE }));
    expect(result.statusCode).toBe(404);
    expect(result.headers?.['content-type']).toBe(CDF_MEDIA_TYPE);
    expect(bodyOf(result)).toMatchObject({ code: 'TASK_NOT_FOUND' });
  });
});

describe('GET /certificates/{taskId}', () => {
  const zipKey = (taskId: string) => `batches/${taskId}/certificates.zip`;
  const complete = (taskId: string, zipSize: number) =>
    taskItem(taskId, {
      status: 'complete',
      gsi1pk: 'complete',
      zipKey: zipKey(taskId),
      zipSize,
      completedAt: '2026-03-01T12:05:00.000Z',
    });
  const EMPTY_ZIP = Buffer.from('504b0506000000000000000000000000000000000000', 'hex');

  it('returns a small zip in the body, base64, after a GetObject of the zip key', async () => {
    docMock.on(cmd(GetCommand)).resolves({ Item: complete('t-2', EMPTY_ZIP.length) });
    s3Mock.on(cmd(GetObjectCommand)).resolves({ Body: sdkStreamMixin(Readable.from([EMPTY_ZIP])) as never });

    const result = await api()(getDownloadEvent('t-2', { headers: { accept: 'application/zip' } }));

    expect(sequence()).toEqual(['DynamoDB.Get', 'DynamoDB.BatchGet', 'S3.GetObject']);
    expect(s3Mock.commandCalls(cmd(GetObjectCommand))[0]!.args[0].input).toEqual({
      Bucket: BUCKET,
      Key: zipKey('t-2'),
    });
    expect(result).toEqual({
      statusCode: 200,
      headers: {
        'content-type': 'application/zip',
        'content-disposition': 'attachment; filename="certificates-t-2.zip"',
      },
      body: EMPTY_ZIP.toString('base64'),
      isBase64Encoded: true,
    });
  });

  it('redirects (302) to a presigned URL of the zip, valid one hour, when the zip is large', async () => {
    docMock.on(cmd(GetCommand)).resolves({ Item: complete('t-3', 5 * 1024 * 1024) });

    const result = await api()(getDownloadEvent('t-3'));

    expect(result.statusCode).toBe(302);
    const url = new URL(String(result.headers?.location));
    expect(url.protocol).toBe('https:');
    expect(url.host).toBe(`${BUCKET}.s3.us-east-1.amazonaws.com`);
    expect(url.pathname).toBe(`/${zipKey('t-3')}`);
    expect(url.searchParams.get('X-Amz-Expires')).toBe('3600');
    expect(url.searchParams.get('X-Amz-Credential')).toMatch(/^x\/\d{8}\/us-east-1\/s3\/aws4_request$/);
    expect(url.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
    expect(url.searchParams.get('response-content-disposition')).toBe('attachment; filename="certificates-t-3.zip"');
    expect(sequence()).toEqual(['DynamoDB.Get', 'DynamoDB.BatchGet']); // presigning is local: no S3 call
  });

  it('lists the one presigned URL of the batch zip with ?downloadtype=signedUrl (the chunk zips are deleted)', async () => {
    docMock.on(cmd(GetCommand)).resolves({ Item: complete('t-4', 1000) });

    const result = await api()(getDownloadEvent('t-4', { query: { downloadtype: 'signedUrl' } }));

    expect(result.statusCode).toBe(200);
    expect(result.headers?.['content-type']).toBe('application/json');
    const urls = (JSON.parse(result.body) as string[]).map((u) => new URL(u));
    expect(urls.map((u) => u.pathname)).toEqual(['/batches/t-4/certificates.zip']);
    expect(urls[0]!.searchParams.get('response-content-disposition')).toBe(
      'attachment; filename="certificates-t-4.zip"',
    );
    expect(urls[0]!.searchParams.get('X-Amz-Expires')).toBe('3600');
    expect(sequence()).toEqual(['DynamoDB.Get', 'DynamoDB.BatchGet']);
  });

  it('answers 409 BATCH_FAILED for a failed batch', async () => {
    const error = { code: 'CHUNK_FAILED', message: 'chunk 1 failed: boom' };
    docMock.on(cmd(GetCommand)).resolves({ Item: taskItem('t-5', { status: 'failed', gsi1pk: 'failed', error }) });

    const result = await api()(getDownloadEvent('t-5', { headers: { accept: 'application/zip' } }));

    expect(result.statusCode).toBe(409);
    expect(result.headers?.['content-type']).toBe('application/json');
    expect(bodyOf(result)).toEqual({
      code: 'BATCH_FAILED',
      message: 'the batch failed: chunk 1 failed: boom',
      details: { error },
    });
    expect(s3Mock).not.toHaveReceivedCommand(cmd(GetObjectCommand));
  });

  it('answers 303 to the task resource, behind the stage prefix, while the batch runs', async () => {
    docMock.on(cmd(GetCommand)).resolves({ Item: taskItem('x') });

    const result = await api()(getDownloadEvent('x', { stage: '/prod' }));

    expect(result.statusCode).toBe(303);
    expect(result.headers?.location).toBe('/prod/certificates/x/task');
    expect(bodyOf(result)).toMatchObject({ taskId: 'x', status: 'in_progress', chunksPending: 2 });
    expect(sequence()).toEqual(['DynamoDB.Get', 'DynamoDB.BatchGet']);
  });
});
