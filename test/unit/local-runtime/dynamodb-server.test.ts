import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ConditionalCheckFailedException,
  DescribeTableCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { createLocalDynamoDbClient, ensureTable, startDynamoDb } from '../../../local/runtime/dynamodb-server';
import type { TableDefinition } from '../../../local/runtime/types';

const certificates: TableDefinition = {
  tableName: 'certflow-certificates',
  partitionKey: { name: 'pk', type: 'S' },
  sortKey: { name: 'sk', type: 'S' },
  globalSecondaryIndexes: [
    { indexName: 'byThing', partitionKey: { name: 'thingName', type: 'S' }, sortKey: { name: 'issuedAt', type: 'N' } },
  ],
};

describe('startDynamoDb', () => {
  let dataDir: string;

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'certflow-dynalite-'));
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  async function withServer<T>(dir: string | undefined, fn: (client: DynamoDBClient) => Promise<T>): Promise<T> {
    const server = await startDynamoDb(dir === undefined ? {} : { dataDir: dir });
    const client = createLocalDynamoDbClient(server.endpoint);
    try {
      return await fn(client);
    } finally {
      client.destroy();
      await server.close();
    }
  }

  it('listens on 127.0.0.1 on an ephemeral port', async () => {
    const server = await startDynamoDb();
    try {
      expect(server.endpoint).toBe(`http://127.0.0.1:${server.port}`);
      expect(server.port).toBeGreaterThan(0);
    } finally {
      await server.close();
    }
  });

  it('creates a table with a GSI and waits until it is ACTIVE', async () => {
    await withServer(undefined, async (client) => {
      const table = await ensureTable(client, certificates);
      expect(table.TableStatus).toBe('ACTIVE');
      expect(table.GlobalSecondaryIndexes?.map((i) => [i.IndexName, i.IndexStatus])).toEqual([['byThing', 'ACTIVE']]);
      // a second call finds it and does nothing
      await expect(ensureTable(client, certificates)).resolves.toMatchObject({ TableStatus: 'ACTIVE' });
    });
  });

  it('refuses an existing table of another shape', async () => {
    await withServer(undefined, async (client) => {
      await ensureTable(client, certificates);
      await expect(
        ensureTable(client, {
          ...certificates,
          globalSecondaryIndexes: [{ indexName: 'bySerial', partitionKey: { name: 'serial', type: 'S' } }],
        }),
      ).rejects.toThrow('index bySerial is missing');
      await expect(ensureTable(client, { ...certificates, sortKey: { name: 'other', type: 'S' } })).rejects.toThrow(
        'key schema is pk:HASH,sk:RANGE, expected pk:HASH,other:RANGE',
      );
    });
  });

  it('supports conditional puts, ADD to a number set under NOT contains, and Query on a GSI', async () => {
    await withServer(undefined, async (client) => {
      await ensureTable(client, certificates);
      const item = { pk: { S: 'task#1' }, sk: { S: 'chunk#0' }, thingName: { S: 'sensor-1' }, issuedAt: { N: '100' } };
      const putIfAbsent = () =>
        client.send(
          new PutItemCommand({
            TableName: certificates.tableName,
            Item: item,
            ConditionExpression: 'attribute_not_exists(pk)',
          }),
        );
      await putIfAbsent();
      await expect(putIfAbsent()).rejects.toBeInstanceOf(ConditionalCheckFailedException);

      const markChunkDone = (chunk: number) =>
        client.send(
          new UpdateItemCommand({
            TableName: certificates.tableName,
            Key: { pk: { S: 'task#1' }, sk: { S: 'chunk#0' } },
            UpdateExpression: 'ADD doneChunks :chunkSet, doneCount :one',
            ConditionExpression: 'attribute_not_exists(doneChunks) OR NOT contains(doneChunks, :chunk)',
            ExpressionAttributeValues: {
              ':chunkSet': { NS: [String(chunk)] },
              ':chunk': { N: String(chunk) },
              ':one': { N: '1' },
            },
            ReturnValues: 'ALL_NEW',
          }),
        );
      await markChunkDone(3);
      const after = await markChunkDone(7);
      expect(after.Attributes?.doneChunks?.NS?.sort()).toEqual(['3', '7']);
      expect(after.Attributes?.doneCount).toEqual({ N: '2' });
      // the same chunk twice is refused, so the counter is idempotent
      await expect(markChunkDone(3)).rejects.toBeInstanceOf(ConditionalCheckFailedException);

      await client.send(
        new PutItemCommand({
          TableName: certificates.tableName,
          Item: { pk: { S: 'task#2' }, sk: { S: 'chunk#0' }, thingName: { S: 'sensor-1' }, issuedAt: { N: '50' } },
        }),
      );
      const byThing = await client.send(
        new QueryCommand({
          TableName: certificates.tableName,
          IndexName: 'byThing',
          KeyConditionExpression: 'thingName = :thing AND issuedAt > :since',
          ExpressionAttributeValues: { ':thing': { S: 'sensor-1' }, ':since': { N: '10' } },
        }),
      );
      expect(byThing.Items?.map((i) => i.pk?.S)).toEqual(['task#2', 'task#1']);
    });
  });

  it('has no transactions (UnknownOperationException)', async () => {
    await withServer(undefined, async (client) => {
      await ensureTable(client, certificates);
      await expect(
        client.send(
          new TransactWriteItemsCommand({
            TransactItems: [{ Put: { TableName: certificates.tableName, Item: { pk: { S: 'a' }, sk: { S: 'b' } } } }],
          }),
        ),
      ).rejects.toMatchObject({ name: 'UnknownOperationException' });
    });
  });

  it('keeps the data across a restart on the same dataDir', async () => {
    const key = { pk: { S: 'task#9' }, sk: { S: 'meta' } };
    await withServer(dataDir, async (client) => {
      await ensureTable(client, certificates);
      await client.send(
        new PutItemCommand({ TableName: certificates.tableName, Item: { ...key, status: { S: 'pending' } } }),
      );
    });
    await withServer(dataDir, async (client) => {
      const described = await client.send(new DescribeTableCommand({ TableName: certificates.tableName }));
      expect(described.Table?.TableStatus).toBe('ACTIVE');
      await ensureTable(client, certificates);
      const read = await client.send(new GetItemCommand({ TableName: certificates.tableName, Key: key }));
      expect(read.Item?.status).toEqual({ S: 'pending' });
    });
    // in memory, nothing survives
    await withServer(undefined, async (client) => {
      await ensureTable(client, certificates);
      const read = await client.send(new GetItemCommand({ TableName: certificates.tableName, Key: key }));
      expect(read.Item).toBeUndefined();
    });
  });
});
