/**
 * The RecordBatchFailure Lambda (sfn-record-batch-failure), the Catch target of every workflow state, on awsBatchDeps
 * from real SDK clients whose `send` is mocked: no zip is kept, the task becomes failed with the parsed reason, and
 * Batch Failed is published.
 */
import 'aws-sdk-client-mock-jest';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { DeleteObjectCommand, DeleteObjectsCommand, S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { awsBatchDeps } from '../../lambdas/adapters/aws/bulk-deps';
import { BulkEnv, readEnv } from '../../lambdas/handlers/env';
import { createHandler } from '../../lambdas/handlers/sfn-record-batch-failure';
import { testClients, US_EAST_1_CONFIG } from './aws-clients';
import { callSequence, cmd, mockSdk } from './sdk-mock';
import { serveDoneShards } from './dynamo-fake';

const TABLE = 'certflow-tasks';
const BUCKET = 'certflow-batches';
const BUS = 'certflow-bus';
const docMock = mockSdk(DynamoDBDocumentClient);
const s3Mock = mockSdk(S3Client);
const ebMock = mockSdk(EventBridgeClient);
const MOCKS = { DynamoDB: docMock, S3: s3Mock, EventBridge: ebMock };

const clients = () => testClients(US_EAST_1_CONFIG);

const env = readEnv(BulkEnv, { TASK_TABLE_NAME: TABLE, BUCKET_NAME: BUCKET, EVENT_BUS_NAME: BUS });
const record = () => createHandler(awsBatchDeps(env, clients(), {}));

const sequence = (): string[] => callSequence(MOCKS);

const taskItem = (taskId: string) => ({
  pk: `task#${taskId}`,
  gsi1pk: 'in_progress',
  taskId,
  supplierId: 'acme',
  status: 'in_progress',
  quantity: 2500,
  chunkSize: 1000,
  chunksTotal: 3,
  createdAt: '2026-03-01T12:00:00.000Z',
  request: { keyType: 'ec-p256', register: false, includeCA: false, layout: 'certflow' },
});

/** What a Step Functions Catch (ResultPath $.error) holds after a Lambda task threw. */
const LAMBDA_CATCH = {
  Error: 'X',
  Cause: JSON.stringify({ errorType: 'X', errorMessage: 'boom', trace: ['X: boom', '    at handler (index.js:1:1)'] }),
};

beforeEach(() => {
  for (const mock of Object.values(MOCKS)) mock.reset();
  docMock.on(cmd(GetCommand)).resolves({ Item: taskItem('t-1') });
  docMock.on(cmd(UpdateCommand)).resolves({});
  serveDoneShards(docMock, { 't-1': { done: 2 } });
  s3Mock.on(cmd(DeleteObjectsCommand)).resolves({});
  ebMock.on(cmd(PutEventsCommand)).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'event-1' }] });
});

describe('RecordBatchFailure', () => {
  it("deletes the batch zip and the chunks' files, sets the task failed with the parsed error, publishes Batch Failed", async () => {
    const result = await record()({ taskId: 't-1', error: LAMBDA_CATCH });

    const error = { code: 'X', message: 'boom' };
    expect(result).toEqual({ taskId: 't-1', error });
    expect(sequence()).toEqual([
      'DynamoDB.Get',
      'DynamoDB.BatchGet',
      'S3.DeleteObjects',
      'S3.DeleteObjects',
      'DynamoDB.Update',
      'EventBridge.PutEvents',
    ]);
    expect(docMock.commandCalls(cmd(GetCommand))[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Key: { pk: 'task#t-1' },
      ConsistentRead: true,
    });
    expect(s3Mock.commandCalls(cmd(DeleteObjectsCommand))[0]!.args[0].input).toEqual({
      Bucket: BUCKET,
      Delete: { Objects: [{ Key: 'batches/t-1/certificates.zip' }], Quiet: true },
    });
    // the chunks' files (chunk zips and external issuers' progress hold private keys): five per chunk, absent or not
    const chunkFiles = s3Mock.commandCalls(cmd(DeleteObjectsCommand))[1]!.args[0].input.Delete!.Objects!;
    expect(chunkFiles.map((o) => o.Key)).toEqual(
      ['000000', '000001', '000002'].flatMap((n) =>
        ['zip', 'csv', 'certificates.pem', 'registered', 'progress.json'].map(
          (ext) => `batches/t-1/chunks/${n}.${ext}`,
        ),
      ),
    );
    expect(s3Mock).not.toHaveReceivedCommand(cmd(DeleteObjectCommand));

    const update = docMock.commandCalls(cmd(UpdateCommand))[0]!.args[0].input;
    expect(update).toEqual({
      TableName: TABLE,
      Key: { pk: 'task#t-1' },
      UpdateExpression:
        'SET #status = :status, gsi1pk = :status, updatedAt = :now, #error = :error, #completedAt = :completedAt',
      ConditionExpression: 'attribute_exists(pk)',
      ExpressionAttributeNames: { '#status': 'status', '#error': 'error', '#completedAt': 'completedAt' },
      ExpressionAttributeValues: {
        ':status': 'failed',
        ':now': expect.any(String),
        ':error': error,
        ':completedAt': expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      },
    });
    const failedAt = update.ExpressionAttributeValues![':completedAt'] as string;

    const entries = ebMock.commandCalls(cmd(PutEventsCommand))[0]!.args[0].input.Entries!;
    expect(entries).toEqual([
      { Source: 'certflow', DetailType: 'Batch Failed', Detail: expect.any(String), EventBusName: BUS },
    ]);
    expect(JSON.parse(entries[0]!.Detail!)).toEqual({ taskId: 't-1', supplierId: 'acme', error, failedAt });
  });

  it.each([
    [
      'ok/plain-text cause',
      { Error: 'States.Timeout', Cause: 'Task timed out' },
      { code: 'States.Timeout', message: 'Task timed out' },
    ],
    [
      'ok/a code in the JSON cause wins over Error',
      {
        Error: 'BatchIncompleteError',
        Cause: JSON.stringify({
          errorType: 'BatchIncompleteError',
          errorMessage: 'chunk 2 failed: boom',
          code: 'CHUNK_FAILED',
        }),
      },
      { code: 'CHUNK_FAILED', message: 'chunk 2 failed: boom' },
    ],
    ['ok/no error at all', undefined, { code: 'BATCH_FAILED', message: 'unknown failure' }],
  ])('%s', async (_name, catchValue, error) => {
    const result = await record()({ taskId: 't-1', ...(catchValue !== undefined ? { error: catchValue } : {}) });
    expect(result.error).toEqual(error);
    expect(docMock).toHaveReceivedCommandWith(cmd(UpdateCommand), {
      ExpressionAttributeValues: expect.objectContaining({ ':error': error }),
    });
  });

  it('reports the chunk error the workflow recorded on the task, not the Map\'s "a child failed"', async () => {
    docMock.on(cmd(GetCommand)).resolves({
      Item: { ...taskItem('t-1'), chunkFailure: { index: 7, error: JSON.stringify(LAMBDA_CATCH) } },
    });
    const mapError = {
      Error: 'States.ExceedToleratedFailureThreshold',
      Cause: 'The specified tolerated failure threshold was exceeded',
    };

    const result = await record()({ taskId: 't-1', error: mapError });

    const error = { code: 'CHUNK_FAILED', message: 'chunk 7 failed: boom' };
    expect(result.error).toEqual(error);
    expect(docMock).toHaveReceivedCommandWith(cmd(UpdateCommand), {
      ExpressionAttributeValues: expect.objectContaining({ ':error': error }),
    });
  });

  it('throws TASK_NOT_FOUND for an unknown task and touches nothing', async () => {
    docMock.on(cmd(GetCommand)).resolves({});
    await expect(record()({ taskId: 'nope', error: LAMBDA_CATCH })).rejects.toMatchObject({ code: 'TASK_NOT_FOUND' });
    expect(sequence()).toEqual(['DynamoDB.Get']);
  });

  it('fails (so that the state retries) when S3 refuses the delete, before changing the task', async () => {
    s3Mock.on(cmd(DeleteObjectsCommand)).resolves({
      Errors: [{ Key: 'batches/t-1/certificates.zip', Code: 'AccessDenied', Message: 'Access Denied' }],
    });
    await expect(record()({ taskId: 't-1', error: LAMBDA_CATCH })).rejects.toMatchObject({ name: 'ObjectDeleteError' });
    expect(sequence()).toEqual(['DynamoDB.Get', 'DynamoDB.BatchGet', 'S3.DeleteObjects']);
  });
});
