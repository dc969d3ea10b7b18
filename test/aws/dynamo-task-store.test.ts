import 'aws-sdk-client-mock-jest';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { ConflictError, ValidationError } from '../../lambdas/core/errors';
import type { BatchTask, Clock } from '../../lambdas/core/ports';
import { DONE_SHARD_SIZE, DynamoTaskStore } from '../../lambdas/adapters/aws/dynamo-task-store';
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
  it('puts the task item with its key and status index attribute, only if new; the shards keep the counts', async () => {
    docMock.on(cmd(PutCommand)).resolves({});
    await store.create({ ...task, registered: 0 });
    const { chunksPending: _pending, ...stored } = task;
    void _pending;
    expect(docMock.commandCalls(cmd(PutCommand))[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Item: { ...stored, pk: 'task#t1', gsi1pk: 'pending' },
      ConditionExpression: 'attribute_not_exists(pk)',
    });
    expect(docMock.calls()).toHaveLength(1);
  });

  it('throws ConflictError TASK_EXISTS when the id exists', async () => {
    docMock.on(cmd(PutCommand)).rejects(conditionFailed());
    const caught = await store.create(task).catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(ConflictError);
    expect(caught).toMatchObject({ code: 'TASK_EXISTS', status: 409 });
  });
});

describe('DynamoTaskStore.get', () => {
  const { chunksPending: _pending, ...stored } = task;
  void _pending;

  it('reads the item consistently, then sums its done shards (chunksPending, registered)', async () => {
    docMock.on(cmd(GetCommand)).resolves({ Item: { ...stored, pk: 'task#t1', gsi1pk: 'pending' } });
    docMock.on(cmd(BatchGetCommand)).resolves({
      Responses: { [TABLE]: [{ pk: 'task#t1#done#0', doneCount: 2, registered: 150 }] },
    });
    await expect(store.get('t1')).resolves.toEqual({ ...task, chunksPending: 1, registered: 150 });
    expect(docMock).toHaveReceivedCommandWith(cmd(GetCommand), {
      TableName: TABLE,
      Key: { pk: 'task#t1' },
      ConsistentRead: true,
    });
    expect(docMock.commandCalls(cmd(BatchGetCommand))[0]!.args[0].input).toEqual({
      RequestItems: {
        [TABLE]: {
          Keys: [{ pk: 'task#t1#done#0' }],
          ConsistentRead: true,
          ProjectionExpression: 'pk, doneCount, registered',
        },
      },
    });
  });

  it('shows every chunk pending and no registered count while no shard exists', async () => {
    docMock.on(cmd(GetCommand)).resolves({ Item: { ...stored, pk: 'task#t1', gsi1pk: 'pending' } });
    docMock.on(cmd(BatchGetCommand)).resolves({ Responses: { [TABLE]: [] } });
    await expect(store.get('t1')).resolves.toEqual(task);
  });

  it('reads 100 shards per BatchGetItem and asks again for unprocessed keys', async () => {
    const chunksTotal = 250 * DONE_SHARD_SIZE; // 250 shards
    docMock.on(cmd(GetCommand)).resolves({ Item: { ...stored, chunksTotal, pk: 'task#t1', gsi1pk: 'in_progress' } });
    const shard = (n: number) => ({ pk: `task#t1#done#${n}`, doneCount: 10 });
    docMock
      .on(cmd(BatchGetCommand))
      .resolvesOnce({
        Responses: { [TABLE]: [shard(0), shard(1)] },
        UnprocessedKeys: { [TABLE]: { Keys: [{ pk: 'task#t1#done#99' }] } },
      })
      .resolvesOnce({ Responses: { [TABLE]: [shard(99)] } })
      .resolvesOnce({ Responses: { [TABLE]: [shard(100)] } })
      .resolves({ Responses: { [TABLE]: [] } });
    await expect(store.get('t1')).resolves.toMatchObject({ chunksTotal, chunksPending: chunksTotal - 40 });
    const keys = docMock.commandCalls(cmd(BatchGetCommand)).map((c) => c.args[0].input.RequestItems![TABLE]!.Keys!);
    expect(keys.map((k) => k.length)).toEqual([100, 1, 100, 50]);
    expect(keys[0]![0]).toEqual({ pk: 'task#t1#done#0' });
    expect(keys[1]).toEqual([{ pk: 'task#t1#done#99' }]);
    expect(keys[3]![49]).toEqual({ pk: 'task#t1#done#249' });
  });

  it('reads the counts of a task an older version stored (doneChunks on the task item) where no shard has more', async () => {
    const legacy = {
      ...task,
      pk: 'task#t1',
      gsi1pk: 'complete',
      status: 'complete',
      chunksPending: 0,
      registered: 250,
    };
    docMock.on(cmd(GetCommand)).resolves({ Item: { ...legacy, doneChunks: new Set([0, 1, 2]) } });
    docMock.on(cmd(BatchGetCommand)).resolves({ Responses: { [TABLE]: [] } });
    await expect(store.get('t1')).resolves.toEqual({ ...task, status: 'complete', chunksPending: 0, registered: 250 });

    // resumed under this version: chunk 1 and 2 redone into the shard, chunk 0 still only in the old set
    docMock.on(cmd(GetCommand)).resolves({ Item: { ...legacy, chunksPending: 2, doneChunks: new Set([0]) } });
    docMock.on(cmd(BatchGetCommand)).resolves({
      Responses: { [TABLE]: [{ pk: 'task#t1#done#0', doneCount: 2, registered: 200 }] },
    });
    await expect(store.get('t1')).resolves.toMatchObject({ chunksPending: 1, registered: 250 });
  });

  it('returns undefined for an unknown task', async () => {
    docMock.on(cmd(GetCommand)).resolves({});
    await expect(store.get('nope')).resolves.toBeUndefined();
    expect(docMock).not.toHaveReceivedCommand(cmd(BatchGetCommand));
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
  it("is one conditional UpdateItem on the chunk's done shard, adding its offset and counting it", async () => {
    docMock.on(cmd(UpdateCommand)).resolves({});
    await expect(store.completeChunk('t1', 4)).resolves.toBe(true);
    expect(docMock.calls()).toHaveLength(1);
    expect(docMock.commandCalls(cmd(UpdateCommand))[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Key: { pk: 'task#t1#done#0' },
      UpdateExpression: 'SET updatedAt = :now ADD done :offsets, doneCount :one',
      ConditionExpression: 'NOT contains(done, :offset)',
      ExpressionAttributeValues: { ':now': NOW, ':offsets': new Set([4]), ':one': 1, ':offset': 4 },
    });
  });

  it('puts chunk 12,345 in shard 12 at offset 345, with its registered count', async () => {
    docMock.on(cmd(UpdateCommand)).resolves({});
    await expect(store.completeChunk('t1', 12_345, 100)).resolves.toBe(true);
    expect(docMock.commandCalls(cmd(UpdateCommand))[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Key: { pk: 'task#t1#done#12' },
      UpdateExpression: 'SET updatedAt = :now ADD done :offsets, doneCount :one, registered :n',
      ConditionExpression: 'NOT contains(done, :offset)',
      ExpressionAttributeValues: { ':now': NOW, ':offsets': new Set([345]), ':one': 1, ':offset': 345, ':n': 100 },
    });
  });

  it('answers false for a replayed chunk, with no other call (nothing counted twice)', async () => {
    docMock.on(cmd(UpdateCommand)).rejects(conditionFailed());
    await expect(store.completeChunk('t1', 4)).resolves.toBe(false);
    expect(docMock.calls()).toHaveLength(1);
  });

  it('lets other errors through', async () => {
    docMock.on(cmd(UpdateCommand)).rejects(new Error('ProvisionedThroughputExceeded'));
    await expect(store.completeChunk('t1', 4)).rejects.toThrow('ProvisionedThroughputExceeded');
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
  it("reads the done set of the chunk's shard", async () => {
    docMock.on(cmd(GetCommand)).resolves({ Item: { done: new Set([1, 3]) } });
    await expect(store.isChunkDone('t1', 2003)).resolves.toBe(true);
    await expect(store.isChunkDone('t1', 2002)).resolves.toBe(false);
    expect(docMock).toHaveReceivedCommandWith(cmd(GetCommand), {
      TableName: TABLE,
      Key: { pk: 'task#t1#done#2' },
      ProjectionExpression: 'done',
      ConsistentRead: true,
    });
  });

  it('is false before any chunk of the shard is done (no shard yet)', async () => {
    docMock.on(cmd(GetCommand)).resolves({});
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

    docMock.on(cmd(BatchGetCommand)).resolves({
      Responses: { [TABLE]: [{ pk: 'task#a#done#0', doneCount: 3 }] },
    });

    const listed = await store.listByStatus(['pending', 'in_progress']);
    expect(listed.map((t) => t.taskId)).toEqual(['c', 'a', 'b']);
    expect(listed.map((t) => t.chunksPending)).toEqual([3, 0, 3]);
    // one BatchGetItem for the three tasks' shards
    expect(docMock.commandCalls(cmd(BatchGetCommand)).map((c) => c.args[0].input.RequestItems![TABLE]!.Keys)).toEqual([
      [{ pk: 'task#a#done#0' }, { pk: 'task#b#done#0' }, { pk: 'task#c#done#0' }],
    ]);
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
