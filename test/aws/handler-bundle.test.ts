/**
 * The Lambda entry points themselves (`handler`: middy, env check at cold start, Powertools context), with the
 * environment in process.env as Lambda sets it and the SDK mocked. process.env is restored after each test.
 * Order matters within a module: a handler builds its deps once, on its first successful invocation.
 */
import 'aws-sdk-client-mock-jest';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { Context } from 'aws-lambda';
import { handler as apiHandler } from '../../lambdas/handlers/api-bulk-certificates';
import { handler as planChunksHandler } from '../../lambdas/handlers/sfn-plan-chunks';
import { cmd, mockSdk } from './sdk-mock';
import { serveDoneShards } from './dynamo-fake';

const docMock = mockSdk(DynamoDBDocumentClient);

const context: Context = {
  callbackWaitsForEmptyEventLoop: true,
  functionName: 'certflow-PlanChunks',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:111122223333:function:certflow-PlanChunks',
  memoryLimitInMB: '256',
  awsRequestId: 'c6af9ac6-7b61-11e6-9a41-93e812345678',
  logGroupName: '/aws/lambda/certflow-PlanChunks',
  logStreamName: '2026/03/01/[$LATEST]0123456789abcdef',
  getRemainingTimeInMillis: () => 30_000,
  done: () => undefined,
  fail: () => undefined,
  succeed: () => undefined,
};

const LAMBDA_ENV = {
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'x',
  AWS_SECRET_ACCESS_KEY: 'y',
  TASK_TABLE_NAME: 'certflow-tasks-prod',
  BUCKET_NAME: 'certflow-batches-prod',
  EVENT_BUS_NAME: 'certflow-bus',
  SUPPLIERS: '{}',
  CA_KEY_STORE: 'ssm',
  CHUNK_SIZE: '1000',
  MAX_CONCURRENCY: '25',
  MAX_QUANTITY: '1000000',
};

/** The API function also serves the CA hierarchy. */
const API_ENV = {
  ...LAMBDA_ENV,
  INVENTORY_TABLE_NAME: 'certflow-inventory-prod',
  CA_TABLE_NAME: 'certflow-cas-prod',
  REVOKE_ISSUED_STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:111122223333:stateMachine:certflow-revoke-issued',
};

const saved = new Map<string, string | undefined>();
/** Sets (or, for undefined, removes) variables of process.env until the end of the test. */
function setEnv(vars: Record<string, string | undefined>): void {
  for (const [name, value] of Object.entries(vars)) {
    if (!saved.has(name)) saved.set(name, process.env[name]);
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
}

afterEach(() => {
  for (const [name, value] of saved) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  saved.clear();
});

beforeEach(() => {
  docMock.reset();
  docMock.on(cmd(UpdateCommand)).resolves({});
  serveDoneShards(docMock, {});
  docMock.on(cmd(GetCommand)).resolves({
    Item: {
      pk: 'task#t-1',
      gsi1pk: 'pending',
      taskId: 't-1',
      supplierId: 'acme',
      status: 'pending',
      quantity: 2500,
      chunkSize: 1000,
      chunksTotal: 3,
      chunksPending: 3,
      createdAt: '2026-03-01T12:00:00.000Z',
      request: { keyType: 'ec-p256', register: false, includeCA: false, layout: 'certflow' },
    },
  });
});

describe('sfn-plan-chunks handler', () => {
  it('rejects the invocation with "invalid environment" naming a missing variable, before any AWS call', async () => {
    setEnv({ ...LAMBDA_ENV, TASK_TABLE_NAME: undefined });

    const invocation = planChunksHandler({ taskId: 't-1' }, context);

    await expect(invocation).rejects.toThrow(/^invalid environment: .*TASK_TABLE_NAME/);
    expect(docMock.calls()).toHaveLength(0);
  });

  it('returns the plan once the environment is complete, on the table it names', async () => {
    setEnv(LAMBDA_ENV);

    const result = await planChunksHandler({ taskId: 't-1' }, context);

    expect(result).toEqual({ taskId: 't-1', chunksTotal: 3, chunks: [0, 1, 2], maxConcurrency: 25 });
    expect(docMock.commandCalls(cmd(GetCommand))[0]!.args[0].input).toEqual({
      TableName: 'certflow-tasks-prod',
      Key: { pk: 'task#t-1' },
      ConsistentRead: true,
    });
    expect(docMock).toHaveReceivedCommandWith(cmd(UpdateCommand), {
      TableName: 'certflow-tasks-prod',
      Key: { pk: 'task#t-1' },
      ExpressionAttributeValues: { ':status': 'in_progress', ':now': expect.any(String) },
    });
  });
});

describe('api-bulk-certificates handler', () => {
  const event = { httpMethod: 'GET', resource: '/certificates/{taskId}/task', pathParameters: { taskId: 't-1' } };

  it('rejects the invocation naming BULK_STATE_MACHINE_ARN when it is missing', async () => {
    setEnv({ ...LAMBDA_ENV, BULK_STATE_MACHINE_ARN: undefined });
    await expect(apiHandler(event as never, context)).rejects.toThrow(/^invalid environment: .*BULK_STATE_MACHINE_ARN/);
    expect(docMock.calls()).toHaveLength(0);
  });

  it('rejects the invocation when SUPPLIERS names an ACM PCA CA by a malformed ARN', async () => {
    setEnv({
      ...API_ENV,
      BULK_STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:111122223333:stateMachine:certflow-bulk-issuance',
      // ACM PCA CA ids are UUIDs: `…/abc` is refused when the container starts, not when a batch reaches it
      SUPPLIERS: JSON.stringify({
        acme: { type: 'acm-pca', arn: 'arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/abc' },
      }),
    });
    await expect(apiHandler(event as never, context)).rejects.toThrow(/^invalid supplier configuration:\nSUPPLIERS:/);
  });

  it('answers a request once the environment is complete', async () => {
    setEnv({
      ...API_ENV,
      BULK_STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:111122223333:stateMachine:certflow-bulk-issuance',
    });
    const result = await apiHandler(event as never, context);
    expect(result.statusCode).toBe(200);
    expect(JSON.parse(result.body)).toMatchObject({ taskId: 't-1', status: 'pending', chunksTotal: 3 });
  });
});
