/**
 * DynamoTaskStore against a real DynamoDB wire-protocol server (dynalite, in memory, on 127.0.0.1): the same
 * server the local runtime uses. Checks what mocks cannot: expressions, number-set marshalling, the GSI.
 */
import { DescribeTableCommand, DynamoDBClient, GetItemCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { ConflictError, NotFoundError } from '../../lambdas/core/errors';
import type { BatchTask, Clock } from '../../lambdas/core/ports';
import { DynamoTaskStore } from '../../lambdas/adapters/aws/dynamo-task-store';
import { TASK_TABLE } from '../../lambdas/adapters/aws/tables';
import { type LocalDynamo, startDynalite } from '../helpers/dynalite';

let dynamo: LocalDynamo;
let client: DynamoDBClient;
let store: DynamoTaskStore;
let now = new Date('2026-03-01T12:00:00.000Z');
const clock: Clock = { now: () => now };

const task = (taskId: string, overrides: Partial<BatchTask> = {}): BatchTask => ({
  taskId,
  supplierId: 'acme',
  status: 'pending',
  quantity: 250,
  chunkSize: 100,
  chunksTotal: 3,
  chunksPending: 3,
  createdAt: '2026-03-01T12:00:00.000Z',
  request: { quantity: 250, certInfo: { commonName: '`acme-`${increment}AB01', country: 'DE' }, register: false },
  ...overrides,
});

beforeAll(async () => {
  dynamo = await startDynalite([TASK_TABLE]);
  client = dynamo.client;
  store = new DynamoTaskStore(client, TASK_TABLE.tableName, clock);
});

/** set before dynalite closes: a test that timed out stops its workers instead of writing to a closed server */
let closing = false;

afterAll(async () => {
  closing = true;
  await new Promise((resolve) => setTimeout(resolve, 50)); // requests in flight finish
  await dynamo?.close();
});

describe('DynamoTaskStore on dynalite', () => {
  it('creates the table from TASK_TABLE with the byStatus index', async () => {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: TASK_TABLE.tableName }));
    expect(Table?.KeySchema).toEqual([{ AttributeName: 'pk', KeyType: 'HASH' }]);
    expect(Table?.GlobalSecondaryIndexes?.[0]).toMatchObject({
      IndexName: 'byStatus',
      KeySchema: [
        { AttributeName: 'gsi1pk', KeyType: 'HASH' },
        { AttributeName: 'createdAt', KeyType: 'RANGE' },
      ],
      Projection: { ProjectionType: 'ALL' },
    });
  });

  it('creates a task and reads it back without storage attributes', async () => {
    await store.create(task('t-create'));
    await expect(store.get('t-create')).resolves.toEqual(task('t-create'));
    await expect(store.get('t-unknown')).resolves.toBeUndefined();
  });

  it('refuses to create a task id twice', async () => {
    await store.create(task('t-twice'));
    const caught = await store.create(task('t-twice', { quantity: 1 })).catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(ConflictError);
    expect(caught).toMatchObject({ code: 'TASK_EXISTS' });
    await expect(store.get('t-twice')).resolves.toMatchObject({ quantity: 250 });
  });

  it('claims an idempotency key once and returns the first claim afterwards', async () => {
    await expect(store.claimIdempotencyKey('acme', 'key-1', 't-first', 'fp-1')).resolves.toBeUndefined();
    await expect(store.claimIdempotencyKey('acme', 'key-1', 't-second', 'fp-2')).resolves.toEqual({
      taskId: 't-first',
      fingerprint: 'fp-1',
    });
    // scopes are separate
    await expect(store.claimIdempotencyKey('other', 'key-1', 't-third', 'fp-3')).resolves.toBeUndefined();
  });

  it('counts each chunk once, however often it is replayed', async () => {
    await store.create(task('t-chunks'));
    await expect(store.isChunkDone('t-chunks', 1)).resolves.toBe(false);
    await expect(store.completeChunk('t-chunks', 1, 100)).resolves.toBe(true);
    await expect(store.completeChunk('t-chunks', 1, 100)).resolves.toBe(false); // replay
    await expect(store.get('t-chunks')).resolves.toMatchObject({ chunksPending: 2, registered: 100 });
    await expect(store.isChunkDone('t-chunks', 1)).resolves.toBe(true);
    await expect(store.isChunkDone('t-chunks', 0)).resolves.toBe(false);
    await expect(store.completeChunk('t-chunks', 0, 100)).resolves.toBe(true);
    await expect(store.completeChunk('t-chunks', 2)).resolves.toBe(true);
    await expect(store.completeChunk('t-chunks', 0, 100)).resolves.toBe(false); // replay
    await expect(store.get('t-chunks')).resolves.toMatchObject({ chunksPending: 0, registered: 200 });

    // the task item holds no progress; the shard holds the offsets as a DynamoDB number set
    const { Item: taskItem } = await client.send(
      new GetItemCommand({ TableName: TASK_TABLE.tableName, Key: { pk: { S: 'task#t-chunks' } } }),
    );
    expect(Object.keys(taskItem ?? {}).sort()).not.toContain('chunksPending');
    const { Item } = await client.send(
      new GetItemCommand({ TableName: TASK_TABLE.tableName, Key: { pk: { S: 'task#t-chunks#done#0' } } }),
    );
    expect(Item?.done?.NS?.slice().sort()).toEqual(['0', '1', '2']);
    expect(Item?.doneCount).toEqual({ N: '3' });
    expect(Item?.registered).toEqual({ N: '200' });
  });

  it('counts concurrent completions of the same chunk once', async () => {
    await store.create(task('t-race', { chunksTotal: 2, chunksPending: 2 }));
    const results = await Promise.all(Array.from({ length: 5 }, () => store.completeChunk('t-race', 0, 7)));
    expect(results.filter(Boolean)).toHaveLength(1);
    await expect(store.get('t-race')).resolves.toMatchObject({ chunksPending: 1, registered: 7 });
  });

  it('records a chunk of an unknown task where no task reads it', async () => {
    await expect(store.completeChunk('t-missing', 0)).resolves.toBe(true);
    await expect(store.get('t-missing')).resolves.toBeUndefined();
    await expect(store.listByStatus(['pending', 'in_progress'])).resolves.not.toContainEqual(
      expect.objectContaining({ taskId: 't-missing' }),
    );
  });

  it('counts a 12,000-chunk batch exactly under replayed and interleaved completions, every item a few KB', async () => {
    const chunksTotal = 12_000;
    await store.create(task('t-big', { quantity: chunksTotal * 100, chunksTotal, chunksPending: chunksTotal }));
    // every chunk in an order that interleaves the shards (a stride coprime to 12,000), 8 at a time; every 20th chunk
    // is delivered twice at once, and every 20th (another residue) replayed after its first completion
    const order = Array.from({ length: chunksTotal }, (_, i) => (i * 7919) % chunksTotal);
    expect(new Set(order).size).toBe(chunksTotal);
    let counted = 0;
    const complete = async (indexes: number[]) => {
      let next = 0;
      let failure: unknown;
      const worker = async () => {
        while (next < indexes.length && failure === undefined && !closing) {
          const index = indexes[next++]!;
          const deliveries = index % 20 === 0 ? 2 : 1;
          const results = await Promise.all(
            Array.from({ length: deliveries }, () => store.completeChunk('t-big', index, 100)),
          );
          counted += results.filter(Boolean).length;
          if (index % 20 === 3 && (await store.completeChunk('t-big', index, 100))) counted++;
        }
      };
      // every worker stops at the first failure, so none writes after the test (and dynalite) ended
      await Promise.all(Array.from({ length: 8 }, () => worker().catch((e: unknown) => void (failure ??= e))));
      if (failure !== undefined) throw failure;
    };

    await complete(order.slice(0, 5_000));
    expect(counted).toBe(5_000);
    await expect(store.get('t-big')).resolves.toMatchObject({ chunksPending: 7_000, registered: 500_000 });
    await expect(store.isChunkDone('t-big', order[4_999]!)).resolves.toBe(true);
    await expect(store.isChunkDone('t-big', order[5_000]!)).resolves.toBe(false);

    await complete(order.slice(5_000));
    expect(counted).toBe(chunksTotal);
    await expect(store.get('t-big')).resolves.toMatchObject({
      chunksTotal,
      chunksPending: 0,
      registered: chunksTotal * 100,
    });
    await expect(store.isChunkDone('t-big', 11_999)).resolves.toBe(true);
    await expect(store.isChunkDone('t-big', 12_000)).resolves.toBe(false);
    // replays after the end change nothing
    const again = await Promise.all(order.slice(0, 200).map((index) => store.completeChunk('t-big', index, 100)));
    expect(again.some(Boolean)).toBe(false);
    await expect(store.get('t-big')).resolves.toMatchObject({ chunksPending: 0, registered: chunksTotal * 100 });

    // 12 shards of 1,000 chunks; no item of the task is more than a few KB (DynamoDB's item size: names + values)
    const items = await scanAll();
    const own = items.filter((i) => i.pk?.S === 'task#t-big' || i.pk?.S?.startsWith('task#t-big#'));
    expect(own.map((i) => i.pk!.S).sort()).toEqual(
      ['task#t-big', ...Array.from({ length: 12 }, (_, s) => `task#t-big#done#${s}`)].sort(),
    );
    for (const item of own) expect(itemSize(item)).toBeLessThan(4 * 1024);
  }, 180_000); // ~13,200 writes: 20–40 s on dynalite, more on a busy machine
  it('sets the status and its fields, and moves the task between status partitions', async () => {
    now = new Date('2026-03-01T13:00:00.000Z');
    await store.create(task('t-status', { createdAt: '2026-03-01T09:00:00.000Z' }));
    await store.setStatus('t-status', 'in_progress');
    await expect(store.get('t-status')).resolves.toMatchObject({
      status: 'in_progress',
      updatedAt: '2026-03-01T13:00:00.000Z',
    });
    await store.setStatus('t-status', 'failed', {
      error: { code: 'CA_NOT_FOUND', message: 'CA x not found' },
      completedAt: '2026-03-01T13:00:01.000Z',
    });
    await expect(store.get('t-status')).resolves.toMatchObject({
      status: 'failed',
      error: { code: 'CA_NOT_FOUND', message: 'CA x not found' },
      completedAt: '2026-03-01T13:00:01.000Z',
    });
    const caught = await store.setStatus('t-nope', 'complete').catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(NotFoundError);
    await expect(store.get('t-nope')).resolves.toBeUndefined(); // the update did not create an item
  });

  it('lists tasks by status, oldest first, across statuses', async () => {
    await store.create(task('l-3', { status: 'in_progress', createdAt: '2026-02-01T00:00:03.000Z' }));
    await store.create(task('l-1', { status: 'pending', createdAt: '2026-02-01T00:00:01.000Z' }));
    await store.create(task('l-2', { status: 'in_progress', createdAt: '2026-02-01T00:00:02.000Z' }));
    await store.create(task('l-done', { status: 'complete', createdAt: '2026-02-01T00:00:00.000Z' }));
    await store.setStatus('l-done', 'complete');

    const listed = await store.listByStatus(['pending', 'in_progress']);
    const ids = listed.map((t) => t.taskId).filter((id) => id.startsWith('l-'));
    expect(ids).toEqual(['l-1', 'l-2', 'l-3']);
    expect(listed.map((t) => t.createdAt)).toEqual([...listed.map((t) => t.createdAt)].sort());
    expect(listed.every((t) => !('pk' in t) && !('gsi1pk' in t))).toBe(true);
    const complete = await store.listByStatus(['complete']);
    expect(complete.map((t) => t.taskId)).toContain('l-done');
    expect(complete.map((t) => t.taskId)).not.toContain('l-1');
  });

  it('leases a chunk to one attempt until its deadline; the holder may renew, a failed holder gives it back', async () => {
    const start = now.getTime();
    expect(await store.claimChunk('t-lease', 4, 'attempt-a', start + 60_000)).toBe(true);
    expect(await store.claimChunk('t-lease', 4, 'attempt-b', start + 60_000)).toBe(false); // a concurrent delivery
    expect(await store.claimChunk('t-lease', 5, 'attempt-b', start + 60_000)).toBe(true); // another chunk
    expect(await store.claimChunk('t-lease', 4, 'attempt-a', start + 90_000)).toBe(true); // the holder again

    await store.releaseChunk('t-lease', 4, 'attempt-b'); // not the holder: changes nothing
    expect(await store.claimChunk('t-lease', 4, 'attempt-c', start + 60_000)).toBe(false);
    await store.releaseChunk('t-lease', 4, 'attempt-a');
    expect(await store.claimChunk('t-lease', 4, 'attempt-c', start + 60_000)).toBe(true);

    const saved = now;
    now = new Date(start + 61_000); // attempt-c died at its deadline (a Lambda timeout): the lease expired
    try {
      expect(await store.claimChunk('t-lease', 4, 'attempt-d', start + 120_000)).toBe(true);
    } finally {
      now = saved;
    }
    const { Item } = await client.send(
      new GetItemCommand({ TableName: TASK_TABLE.tableName, Key: { pk: { S: 'lease#t-lease#4' } } }),
    );
    expect(Item?.attemptId).toEqual({ S: 'attempt-d' });
    expect(Number(Item?.ttl?.N)).toBe(Math.ceil((start + 120_000) / 1000) + 86_400);
  });
});

async function scanAll(): Promise<Record<string, import('@aws-sdk/client-dynamodb').AttributeValue>[]> {
  const items: Record<string, import('@aws-sdk/client-dynamodb').AttributeValue>[] = [];
  let start: Record<string, import('@aws-sdk/client-dynamodb').AttributeValue> | undefined;
  do {
    const page = await client.send(
      new ScanCommand({ TableName: TASK_TABLE.tableName, ...(start ? { ExclusiveStartKey: start } : {}) }),
    );
    items.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start);
  return items;
}

/**
 * An item's size as DynamoDB bills it (approximately, from the documented rules): attribute names in UTF-8, strings
 * in UTF-8, a number ~1 byte per 2 significant digits plus 1, a set the sum of its members, 3 bytes per map or list.
 */
function itemSize(item: Record<string, import('@aws-sdk/client-dynamodb').AttributeValue>): number {
  const numberSize = (n: string) => Math.ceil(n.replace(/^-|\.|^0+|0+$/g, '').length / 2) + 1;
  const valueSize = (v: import('@aws-sdk/client-dynamodb').AttributeValue): number => {
    if (v.S !== undefined) return Buffer.byteLength(v.S);
    if (v.N !== undefined) return numberSize(v.N);
    if (v.NS !== undefined) return v.NS.reduce((sum, n) => sum + numberSize(n), 0);
    if (v.SS !== undefined) return v.SS.reduce((sum, x) => sum + Buffer.byteLength(x), 0);
    if (v.BOOL !== undefined || v.NULL !== undefined) return 1;
    if (v.M !== undefined) return 3 + itemSize(v.M);
    if (v.L !== undefined) return 3 + v.L.reduce((sum, x) => sum + 1 + valueSize(x), 0);
    return 0;
  };
  return Object.entries(item).reduce((sum, [name, v]) => sum + Buffer.byteLength(name) + valueSize(v), 0);
}
