import 'aws-sdk-client-mock-jest';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { ConflictError, NotFoundError, ValidationError } from '../../lambdas/core/errors';
import type { BatchTask, Clock } from '../../lambdas/core/ports';
import { DynamoTaskStore } from '../../lambdas/adapters/aws/dynamo-task-store';
import { TASK_TABLE } from '../../lambdas/adapters/aws/tables';
import { cmd, mockSdk } from './sdk-mock';
import { conditionFailed } from './dynamo-fake';

const TABLE = 'certflow-tasks-test';
const NOW = '2026-03-01T12:00:00.000Z';
const clock: Clock = { now: () => new Date(NOW) };
const docMock = mockSdk(DynamoDBDocumentClient);
const store = new DynamoTaskStore(new DynamoDBClient({ region: 'us-east-1' }), TABLE, clock);

const task: BatchTask = {
  taskId: 't1',
  supplierId: 'acme',
  status: 'pending',
  quantity: 250,
  chunkSize: 100,
  chunksTotal: 3,
  chunksPending: 3,
  createdAt: NOW,
  request: { quantity: 250 },
};

beforeEach(() => docMock.reset());

describe('TASK_TABLE', () => {
  it('is the single-table definition shared by CDK and the local runtime', () => {
    expect(TASK_TABLE).toEqual({
      tableName: 'certflow-tasks',
      partitionKey: { name: 'pk', type: 'S' },
      timeToLiveAttribute: 'ttl', // chunk leases an attempt could not give back
      globalSecondaryIndexes: [
        {
          indexName: 'byStatus',
          partitionKey: { name: 'gsi1pk', type: 'S' },
          sortKey: { name: 'createdAt', type: 'S' },
        },
      ],
    });
  });
});

describe('DynamoTaskStore.create', () => {
  it('puts the task item with its key and status index attribute, only if new', async () => {
    docMock.on(cmd(PutCommand)).resolves({});
    await store.create(task);
    expect(docMock).toHaveReceivedCommandWith(cmd(PutCommand), {
      TableName: TABLE,
      Item: { ...task, pk: 'task#t1', gsi1pk: 'pending' },
      ConditionExpression: 'attribute_not_exists(pk)',
    });
  });

  it('throws ConflictError TASK_EXISTS when the id exists', async () => {
    docMock.on(cmd(PutCommand)).rejects(conditionFailed());
    const caught = await store.create(task).catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(ConflictError);
    expect(caught).toMatchObject({ code: 'TASK_EXISTS', status: 409 });
  });
});

describe('DynamoTaskStore.get', () => {
  it('reads the item consistently and strips storage attributes', async () => {
    docMock
      .on(cmd(GetCommand))
      .resolves({ Item: { ...task, pk: 'task#t1', gsi1pk: 'pending', doneChunks: new Set([0]) } });
    await expect(store.get('t1')).resolves.toEqual(task);
    expect(docMock).toHaveReceivedCommandWith(cmd(GetCommand), {
      TableName: TABLE,
      Key: { pk: 'task#t1' },
      ConsistentRead: true,
    });
  });

  it('returns undefined for an unknown task', async () => {
    docMock.on(cmd(GetCommand)).resolves({});
    await expect(store.get('nope')).resolves.toBeUndefined();
  });
});

describe('DynamoTaskStore.claimIdempotencyKey', () => {
  it('writes the key only if it is new and returns undefined for a first claim', async () => {
    docMock.on(cmd(PutCommand)).resolves({});
    await expect(store.claimIdempotencyKey('acme', 'k-1', 't1', 'fp')).resolves.toBeUndefined();
    expect(docMock).toHaveReceivedCommandWith(cmd(PutCommand), {
      TableName: TABLE,
      Item: { pk: 'idem#acme#k-1', taskId: 't1', fingerprint: 'fp', createdAt: NOW },
      ConditionExpression: 'attribute_not_exists(pk)',
    });
    expect(docMock).not.toHaveReceivedCommand(cmd(GetCommand));
  });

  it('reads the first claim back when the key was used', async () => {
    docMock.on(cmd(PutCommand)).rejects(conditionFailed());
    docMock
      .on(cmd(GetCommand))
      .resolves({ Item: { pk: 'idem#acme#k-1', taskId: 't0', fingerprint: 'fp0', createdAt: NOW } });
    await expect(store.claimIdempotencyKey('acme', 'k-1', 't1', 'fp')).resolves.toEqual({
      taskId: 't0',
      fingerprint: 'fp0',
    });
    expect(docMock).toHaveReceivedCommandWith(cmd(GetCommand), {
      TableName: TABLE,
      Key: { pk: 'idem#acme#k-1' },
      ConsistentRead: true,
    });
  });

  it('lets other errors through', async () => {
    docMock.on(cmd(PutCommand)).rejects(new Error('ProvisionedThroughputExceeded'));
    await expect(store.claimIdempotencyKey('acme', 'k', 't1', 'fp')).rejects.toThrow('ProvisionedThroughputExceeded');
  });
});

describe('DynamoTaskStore.completeChunk', () => {
  it('is one conditional UpdateItem adding the chunk to the done set', async () => {
    docMock
      .on(cmd(UpdateCommand))
      .resolves({ Attributes: { chunksPending: 2, updatedAt: NOW, doneChunks: new Set([4]) } });
    await expect(store.completeChunk('t1', 4)).resolves.toBe(2);
    expect(docMock).toHaveReceivedCommandTimes(cmd(UpdateCommand), 1);
    expect(docMock.commandCalls(cmd(UpdateCommand))[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Key: { pk: 'task#t1' },
      UpdateExpression: 'SET chunksPending = chunksPending - :one, updatedAt = :now ADD doneChunks :idxSet',
      ConditionExpression: 'attribute_exists(pk) AND NOT contains(doneChunks, :idx)',
      ExpressionAttributeValues: { ':one': 1, ':now': NOW, ':idxSet': new Set([4]), ':idx': 4 },
      ReturnValues: 'UPDATED_NEW',
    });
  });

  it('adds the registered count when given', async () => {
    docMock.on(cmd(UpdateCommand)).resolves({ Attributes: { chunksPending: 0 } });
    await expect(store.completeChunk('t1', 0, 100)).resolves.toBe(0);
    expect(docMock).toHaveReceivedCommandWith(cmd(UpdateCommand), {
      UpdateExpression:
        'SET chunksPending = chunksPending - :one, updatedAt = :now ADD doneChunks :idxSet, registered :n',
      ExpressionAttributeValues: { ':one': 1, ':now': NOW, ':idxSet': new Set([0]), ':idx': 0, ':n': 100 },
    });
  });

  it('returns the current count for a replayed chunk without counting it twice', async () => {
    docMock.on(cmd(UpdateCommand)).rejects(conditionFailed());
    docMock
      .on(cmd(GetCommand))
      .resolves({ Item: { ...task, pk: 'task#t1', chunksPending: 1, doneChunks: new Set([0, 4]) } });
    await expect(store.completeChunk('t1', 4)).resolves.toBe(1);
    expect(docMock).toHaveReceivedCommandTimes(cmd(UpdateCommand), 1);
    expect(docMock).toHaveReceivedCommandWith(cmd(GetCommand), {
      TableName: TABLE,
      Key: { pk: 'task#t1' },
      ConsistentRead: true,
    });
  });

  it('throws NotFoundError TASK_NOT_FOUND when the task does not exist', async () => {
    docMock.on(cmd(UpdateCommand)).rejects(conditionFailed());
    docMock.on(cmd(GetCommand)).resolves({});
    const caught = await store.completeChunk('nope', 0).catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(NotFoundError);
    expect(caught).toMatchObject({ code: 'TASK_NOT_FOUND' });
  });

  it.each([
    ['error/negative', -1],
    ['error/fractional', 1.5],
  ])('%s chunk index is refused', async (_label, index) => {
    await expect(store.completeChunk('t1', index)).rejects.toBeInstanceOf(ValidationError);
    expect(docMock.calls()).toHaveLength(0);
  });
});

describe('DynamoTaskStore.isChunkDone', () => {
  it('reads doneChunks', async () => {
    docMock.on(cmd(GetCommand)).resolves({ Item: { doneChunks: new Set([1, 3]) } });
    await expect(store.isChunkDone('t1', 3)).resolves.toBe(true);
    await expect(store.isChunkDone('t1', 2)).resolves.toBe(false);
    expect(docMock).toHaveReceivedCommandWith(cmd(GetCommand), {
      TableName: TABLE,
      Key: { pk: 'task#t1' },
      ProjectionExpression: 'doneChunks',
      ConsistentRead: true,
    });
  });

  it('is false before any chunk is done (no set yet)', async () => {
    docMock.on(cmd(GetCommand)).resolves({ Item: {} });
    await expect(store.isChunkDone('t1', 0)).resolves.toBe(false);
  });
});

describe('DynamoTaskStore.setStatus', () => {
  it('updates status, the index attribute and updatedAt, only for an existing task', async () => {
    docMock.on(cmd(UpdateCommand)).resolves({});
    await store.setStatus('t1', 'in_progress');
    expect(docMock.commandCalls(cmd(UpdateCommand))[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Key: { pk: 'task#t1' },
      UpdateExpression: 'SET #status = :status, gsi1pk = :status, updatedAt = :now',
      ConditionExpression: 'attribute_exists(pk)',
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: { ':status': 'in_progress', ':now': NOW },
    });
  });

  it('sets the given fields, the error as a map', async () => {
    docMock.on(cmd(UpdateCommand)).resolves({});
    await store.setStatus('t1', 'failed', {
      error: { code: 'CA_NOT_FOUND', message: 'no CA' },
      completedAt: NOW,
    });
    expect(docMock).toHaveReceivedCommandWith(cmd(UpdateCommand), {
      UpdateExpression:
        'SET #status = :status, gsi1pk = :status, updatedAt = :now, #error = :error, #completedAt = :completedAt',
      ExpressionAttributeNames: { '#status': 'status', '#error': 'error', '#completedAt': 'completedAt' },
      ExpressionAttributeValues: {
        ':status': 'failed',
        ':now': NOW,
        ':error': { code: 'CA_NOT_FOUND', message: 'no CA' },
        ':completedAt': NOW,
      },
    });
  });

  it('throws NotFoundError for an unknown task', async () => {
    docMock.on(cmd(UpdateCommand)).rejects(conditionFailed());
    await expect(store.setStatus('nope', 'complete')).rejects.toMatchObject({ code: 'TASK_NOT_FOUND' });
  });
});

describe('DynamoTaskStore.listByStatus', () => {
  it('queries the byStatus index per status, follows pages and sorts oldest first', async () => {
    const item = (taskId: string, status: string, createdAt: string) => ({
      ...task,
      taskId,
      status,
      createdAt,
      pk: `task#${taskId}`,
      gsi1pk: status,
    });
    docMock
      .on(cmd(QueryCommand), { ExpressionAttributeValues: { ':status': 'pending' } })
      .resolvesOnce({ Items: [item('a', 'pending', '2026-01-03')], LastEvaluatedKey: { pk: 'task#a' } })
      .resolvesOnce({ Items: [item('b', 'pending', '2026-01-05')] });
    docMock
      .on(cmd(QueryCommand), { ExpressionAttributeValues: { ':status': 'in_progress' } })
      .resolves({ Items: [item('c', 'in_progress', '2026-01-01')] });

    const listed = await store.listByStatus(['pending', 'in_progress']);
    expect(listed.map((t) => t.taskId)).toEqual(['c', 'a', 'b']);
    expect(listed[0]).not.toHaveProperty('gsi1pk');
    expect(docMock).toHaveReceivedCommandTimes(cmd(QueryCommand), 3);
    expect(docMock).toHaveReceivedNthCommandWith(1, cmd(QueryCommand), {
      TableName: TABLE,
      IndexName: 'byStatus',
      KeyConditionExpression: 'gsi1pk = :status',
      ExpressionAttributeValues: { ':status': 'pending' },
    });
    expect(docMock).toHaveReceivedNthCommandWith(2, cmd(QueryCommand), { ExclusiveStartKey: { pk: 'task#a' } });
  });
});
