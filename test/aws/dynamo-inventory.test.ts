import 'aws-sdk-client-mock-jest';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { ValidationError } from '../../lambdas/core/errors';
import type { InventoryRecord } from '../../lambdas/core/ports';
import { DynamoInventory, EXPIRY_SHARDS, expiryShard } from '../../lambdas/adapters/aws/dynamo-inventory';
import { CA_TABLE, INVENTORY_TABLE } from '../../lambdas/adapters/aws/tables';
import { cmd, mockSdk } from './sdk-mock';
import { conditionFailed } from './dynamo-fake';

const TABLE = 'certflow-inventory-test';
const docMock = mockSdk(DynamoDBDocumentClient);
const inventory = new DynamoInventory(new DynamoDBClient({ region: 'us-east-1' }), TABLE);

/** a 64-hex-digit id in shard `shard` */
const idIn = (shard: string, n: number): string => `${shard}${n.toString(16).padStart(63, '0')}`;

const record = (certificateId: string, overrides: Partial<InventoryRecord> = {}): InventoryRecord => ({
  certificateId,
  kind: 'device',
  commonName: `device-${certificateId.slice(0, 6)}`,
  issuerId: 'ca-1',
  serialNumber: '0a0b',
  notBefore: '2026-01-01T00:00:00.000Z',
  notAfter: '2027-01-01T00:00:00.000Z',
  status: 'active',
  issuedAt: '2026-01-01T00:00:00.000Z',
  ...overrides,
});

const item = (r: InventoryRecord) => ({
  ...r,
  issuedKey: `${r.issuedAt}#${r.certificateId}`,
  expiryBucket: `exp#${r.certificateId[0]}`,
  expiryKey: `${r.notAfter}#${r.certificateId}`,
});

const token = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
const untoken = (value: string | undefined): unknown => JSON.parse(Buffer.from(value!, 'base64url').toString());

beforeEach(() => docMock.reset());

describe('INVENTORY_TABLE and CA_TABLE', () => {
  it('define the inventory with its byIssuer and byExpiry indexes', () => {
    expect(INVENTORY_TABLE).toEqual({
      tableName: 'certflow-inventory',
      partitionKey: { name: 'certificateId', type: 'S' },
      globalSecondaryIndexes: [
        {
          indexName: 'byIssuer',
          partitionKey: { name: 'issuerId', type: 'S' },
          sortKey: { name: 'issuedKey', type: 'S' },
        },
        {
          indexName: 'byExpiry',
          partitionKey: { name: 'expiryBucket', type: 'S' },
          sortKey: { name: 'expiryKey', type: 'S' },
        },
      ],
    });
  });

  it('define the CA table keyed by caId', () => {
    expect(CA_TABLE).toEqual({ tableName: 'certflow-cas', partitionKey: { name: 'caId', type: 'S' } });
  });
});

describe('expiryShard', () => {
  it('is the first hex digit of a certificate id, and a hex digit for any other id', () => {
    expect(expiryShard(idIn('c', 1))).toBe('c');
    expect(EXPIRY_SHARDS).toHaveLength(16);
    expect(EXPIRY_SHARDS).toContain(expiryShard('Not-Hex'));
    expect(expiryShard('Not-Hex')).toBe(expiryShard('Not-Hex'));
  });
});

describe('DynamoInventory.putIssued', () => {
  it('puts each record with its derived keys, only if new', async () => {
    docMock.on(cmd(PutCommand)).resolves({});
    const r = record(idIn('a', 1), { issuedAt: '2026-02-01T10:00:00Z', notAfter: '2027-02-01T10:00:00Z' });
    await inventory.putIssued([r]);
    expect(docMock).toHaveReceivedCommandTimes(cmd(PutCommand), 1);
    expect(docMock.commandCalls(cmd(PutCommand))[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Item: {
        ...r,
        // dates in keys are normalised so that string order is time order
        issuedKey: `2026-02-01T10:00:00.000Z#${r.certificateId}`,
        expiryBucket: 'exp#a',
        expiryKey: `2027-02-01T10:00:00.000Z#${r.certificateId}`,
      },
      ConditionExpression: 'attribute_not_exists(certificateId)',
    });
  });

  it('leaves existing records as they are (replayed events change nothing)', async () => {
    docMock.on(cmd(PutCommand)).rejects(conditionFailed());
    await expect(inventory.putIssued([record(idIn('1', 1)), record(idIn('2', 2))])).resolves.toBeUndefined();
    expect(docMock).toHaveReceivedCommandTimes(cmd(PutCommand), 2);
    expect(docMock).not.toHaveReceivedCommand(cmd(UpdateCommand));
  });

  it('writes at most 16 records at a time', async () => {
    let inFlight = 0;
    let most = 0;
    docMock.on(cmd(PutCommand)).callsFake(async () => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((resolve) => setTimeout(resolve, 2));
      inFlight--;
      return {};
    });
    await inventory.putIssued(Array.from({ length: 70 }, (_, i) => record(idIn('3', i))));
    expect(docMock).toHaveReceivedCommandTimes(cmd(PutCommand), 70);
    expect(most).toBe(16);
  });

  it('lets other errors through with their name and starts no more writes', async () => {
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ProvisionedThroughputExceededException' });
    docMock.on(cmd(PutCommand)).rejects(throttled);
    const caught = await inventory
      .putIssued(Array.from({ length: 40 }, (_, i) => record(idIn('4', i))))
      .catch((e: unknown) => e);
    expect(caught).toMatchObject({ name: 'ProvisionedThroughputExceededException' });
    expect(docMock.commandCalls(cmd(PutCommand)).length).toBeLessThanOrEqual(16);
  });

  it.each([
    ['error/issuedAt not a date', { issuedAt: 'yesterday' }],
    ['error/notAfter not a date', { notAfter: '' }],
    ['error/no issuer', { issuerId: '' }],
    ['error/id with #', { certificateId: 'a#b' }],
  ])('%s: refuses the whole batch before writing', async (_label, overrides) => {
    const caught = await inventory
      .putIssued([record(idIn('5', 1)), record(idIn('5', 2), overrides)])
      .catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(ValidationError);
    expect(caught).toMatchObject({ code: 'INVALID_INVENTORY_RECORD' });
    expect(docMock.calls()).toHaveLength(0);
  });
});

describe('DynamoInventory.get', () => {
  it('reads consistently and strips the key attributes', async () => {
    const r = record(idIn('6', 1));
    docMock.on(cmd(GetCommand)).resolves({ Item: item(r) });
    await expect(inventory.get(r.certificateId)).resolves.toEqual(r);
    expect(docMock).toHaveReceivedCommandWith(cmd(GetCommand), {
      TableName: TABLE,
      Key: { certificateId: r.certificateId },
      ConsistentRead: true,
    });
  });

  it('returns undefined for an unknown certificate', async () => {
    docMock.on(cmd(GetCommand)).resolves({});
    await expect(inventory.get('nope')).resolves.toBeUndefined();
  });
});

describe('DynamoInventory.listByIssuer', () => {
  const records = Array.from({ length: 5 }, (_, i) =>
    record(idIn('7', i), { issuedAt: `2026-01-0${i + 1}T00:00:00.000Z` }),
  );

  it('queries byIssuer ascending, one item ahead, and resumes after the last item returned', async () => {
    docMock.on(cmd(QueryCommand)).resolves({
      Items: records.slice(0, 3).map(item),
      LastEvaluatedKey: { certificateId: records[2]!.certificateId },
    });
    const page = await inventory.listByIssuer('ca-1', { limit: 2 });
    expect(page.items).toEqual(records.slice(0, 2));
    expect(docMock.commandCalls(cmd(QueryCommand))[0]!.args[0].input).toEqual({
      TableName: TABLE,
      IndexName: 'byIssuer',
      KeyConditionExpression: 'issuerId = :issuerId',
      ExpressionAttributeValues: { ':issuerId': 'ca-1' },
      Limit: 3,
    });
    expect(untoken(page.nextToken)).toEqual({
      certificateId: records[1]!.certificateId,
      issuerId: 'ca-1',
      issuedKey: item(records[1]!).issuedKey,
    });

    docMock.reset();
    docMock.on(cmd(QueryCommand)).resolves({ Items: records.slice(2).map(item) });
    const last = await inventory.listByIssuer('ca-1', { limit: 3, nextToken: page.nextToken });
    expect(last).toEqual({ items: records.slice(2) });
    expect(docMock).toHaveReceivedCommandWith(cmd(QueryCommand), {
      ExclusiveStartKey: {
        certificateId: records[1]!.certificateId,
        issuerId: 'ca-1',
        issuedKey: item(records[1]!).issuedKey,
      },
      Limit: 4,
    });
  });

  it('filters on status and queries again until the page is full', async () => {
    const revoked = records.map((r) => ({ ...r, status: 'revoked' as const }));
    docMock
      .on(cmd(QueryCommand))
      .resolvesOnce({ Items: [item(revoked[0]!)], LastEvaluatedKey: { certificateId: 'x' } })
      .resolvesOnce({ Items: [], LastEvaluatedKey: { certificateId: 'y' } })
      .resolvesOnce({ Items: [item(revoked[1]!), item(revoked[2]!)], LastEvaluatedKey: { certificateId: 'z' } });
    const page = await inventory.listByIssuer('ca-1', { status: 'revoked', limit: 1 });
    // the first Query did not show whether another revoked certificate follows: it reads on
    expect(page.items).toEqual([revoked[0]]);
    expect(docMock).toHaveReceivedCommandTimes(cmd(QueryCommand), 3);
    expect(docMock).toHaveReceivedNthCommandWith(1, cmd(QueryCommand), {
      FilterExpression: '#status = :status',
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: { ':issuerId': 'ca-1', ':status': 'revoked' },
      Limit: 100,
    });
    expect(docMock).toHaveReceivedNthCommandWith(2, cmd(QueryCommand), { ExclusiveStartKey: { certificateId: 'x' } });
    expect(docMock).toHaveReceivedNthCommandWith(3, cmd(QueryCommand), { ExclusiveStartKey: { certificateId: 'y' } });
    expect(untoken(page.nextToken)).toMatchObject({ certificateId: revoked[0]!.certificateId });
  });

  it('gives no token when the index is exhausted', async () => {
    docMock.on(cmd(QueryCommand)).resolves({ Items: records.map(item) });
    await expect(inventory.listByIssuer('ca-1', { limit: 5 })).resolves.toEqual({ items: records });
  });

  const validKey = {
    certificateId: idIn('7', 1),
    issuerId: 'ca-1',
    issuedKey: `2026-01-01T00:00:00.000Z#${idIn('7', 1)}`,
  };
  it.each([
    ['error/not base64url', 'not a token!'],
    ['error/not JSON', Buffer.from('{"certificateId"').toString('base64url')],
    ['error/an array', token([1, 2])],
    ['error/another issuer', token({ ...validKey, issuerId: 'ca-2' })],
    ['error/extra attribute', token({ ...validKey, status: 'x' })],
    ['error/id and sort key differ', token({ ...validKey, certificateId: idIn('7', 2) })],
    ['error/sort key without a date', token({ ...validKey, issuedKey: `x#${validKey.certificateId}` })],
    ['error/an expiry token', token({ v: 1, after: {}, done: [] })],
  ])('%s → INVALID_NEXT_TOKEN', async (_label, nextToken) => {
    const caught = await inventory.listByIssuer('ca-1', { limit: 10, nextToken }).catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(ValidationError);
    expect(caught).toMatchObject({ code: 'INVALID_NEXT_TOKEN', status: 400 });
    expect(docMock.calls()).toHaveLength(0);
  });

  it.each([0, 1001, 2.5, Number.NaN])('error/limit %p → INVALID_LIMIT', async (limit) => {
    await expect(inventory.listByIssuer('ca-1', { limit })).rejects.toMatchObject({ code: 'INVALID_LIMIT' });
    expect(docMock.calls()).toHaveLength(0);
  });
});

describe('DynamoInventory.listExpiring', () => {
  const BEFORE = '2026-06-01T00:00:00.000Z';
  // shard 'a': 2 items, shard '3': 2 items, other shards empty
  const a1 = record(idIn('a', 1), { notAfter: '2026-03-01T00:00:00.000Z' });
  const a2 = record(idIn('a', 2), { notAfter: '2026-05-01T00:00:00.000Z' });
  const b1 = record(idIn('3', 1), { notAfter: '2026-02-01T00:00:00.000Z' });
  const b2 = record(idIn('3', 2), { notAfter: '2026-04-01T00:00:00.000Z' });
  const shardItems: Record<string, InventoryRecord[]> = { 'exp#a': [a1, a2], 'exp#3': [b1, b2] };

  /** answers Queries of byExpiry from `shardItems`, honouring ExclusiveStartKey and Limit */
  function givenShards(): void {
    docMock.on(cmd(QueryCommand)).callsFake((input: Record<string, unknown>) => {
      const values = input.ExpressionAttributeValues as Record<string, string>;
      const all = (shardItems[values[':bucket']!] ?? []).map(item).filter((i) => i.expiryKey < values[':before']!);
      const start = (input.ExclusiveStartKey as { expiryKey?: string } | undefined)?.expiryKey;
      const rest = all.filter((i) => start === undefined || i.expiryKey > start);
      const limit = input.Limit as number;
      const Items = rest.slice(0, limit);
      return rest.length > limit
        ? { Items, LastEvaluatedKey: { expiryKey: Items[Items.length - 1]!.expiryKey } }
        : { Items };
    });
  }

  it('queries the 16 shards of byExpiry before the date and merges them soonest first', async () => {
    givenShards();
    const page = await inventory.listExpiring('2026-06-01T00:00:00Z', { limit: 10 });
    expect(page).toEqual({ items: [b1, a1, b2, a2] });
    expect(docMock).toHaveReceivedCommandTimes(cmd(QueryCommand), 16);
    const buckets = docMock
      .commandCalls(cmd(QueryCommand))
      .map((c) => (c.args[0].input.ExpressionAttributeValues as Record<string, string>)[':bucket']);
    expect(new Set(buckets)).toEqual(new Set(EXPIRY_SHARDS.map((s) => `exp#${s}`)));
    expect(docMock).toHaveReceivedCommandWith(cmd(QueryCommand), {
      TableName: TABLE,
      IndexName: 'byExpiry',
      KeyConditionExpression: 'expiryBucket = :bucket AND expiryKey < :before',
      ExpressionAttributeValues: { ':bucket': 'exp#a', ':before': BEFORE },
      Limit: 10,
    });
  });

  it('encodes a position per shard in the token and resumes each shard there', async () => {
    givenShards();
    const first = await inventory.listExpiring(BEFORE, { limit: 2 });
    expect(first.items).toEqual([b1, a1]);
    const exhausted = EXPIRY_SHARDS.filter((s) => s !== 'a' && s !== '3');
    expect(untoken(first.nextToken)).toEqual({
      v: 1,
      after: { '3': item(b1).expiryKey, a: item(a1).expiryKey },
      done: exhausted,
    });

    docMock.reset();
    givenShards();
    const second = await inventory.listExpiring(BEFORE, { limit: 2, nextToken: first.nextToken });
    expect(second).toEqual({ items: [b2, a2] });
    // shards known to be empty are not queried again
    expect(docMock).toHaveReceivedCommandTimes(cmd(QueryCommand), 2);
    expect(docMock).toHaveReceivedCommandWith(cmd(QueryCommand), {
      ExpressionAttributeValues: { ':bucket': 'exp#3', ':before': BEFORE },
      ExclusiveStartKey: { expiryBucket: 'exp#3', expiryKey: item(b1).expiryKey, certificateId: b1.certificateId },
    });
  });

  it('filters on status', async () => {
    docMock.on(cmd(QueryCommand)).resolves({ Items: [] });
    await expect(inventory.listExpiring(BEFORE, { limit: 5, status: 'active' })).resolves.toEqual({ items: [] });
    expect(docMock).toHaveReceivedCommandWith(cmd(QueryCommand), {
      FilterExpression: '#status = :status',
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: { ':bucket': 'exp#0', ':before': BEFORE, ':status': 'active' },
      Limit: 100,
    });
  });

  it('refuses a date that is not one', async () => {
    await expect(inventory.listExpiring('soon', { limit: 5 })).rejects.toMatchObject({ code: 'INVALID_DATE' });
    expect(docMock.calls()).toHaveLength(0);
  });

  const key = `2026-03-01T00:00:00.000Z#${idIn('a', 1)}`;
  it.each([
    ['error/garbage', '%%%'],
    ['error/no version', token({ after: {}, done: [] })],
    ['error/unknown shard', token({ v: 1, after: { g: key }, done: [] })],
    ['error/position in the wrong shard', token({ v: 1, after: { b: key }, done: [] })],
    ['error/shard both done and after', token({ v: 1, after: { a: key }, done: ['a'] })],
    ['error/position without id', token({ v: 1, after: { a: '2026-03-01T00:00:00.000Z' }, done: [] })],
    ['error/an issuer token', token({ certificateId: idIn('a', 1), issuerId: 'ca-1', issuedKey: key })],
  ])('%s → INVALID_NEXT_TOKEN', async (_label, nextToken) => {
    const caught = await inventory.listExpiring(BEFORE, { limit: 10, nextToken }).catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(ValidationError);
    expect(caught).toMatchObject({ code: 'INVALID_NEXT_TOKEN' });
    expect(docMock.calls()).toHaveLength(0);
  });
});

describe('DynamoInventory.markRevoked', () => {
  const id = idIn('8', 1);

  it('is one conditional UpdateItem', async () => {
    docMock.on(cmd(UpdateCommand)).resolves({});
    await expect(inventory.markRevoked(id, '2026-03-01T00:00:00.000Z', 'keyCompromise')).resolves.toBe('revoked');
    expect(docMock.commandCalls(cmd(UpdateCommand))[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Key: { certificateId: id },
      UpdateExpression: 'SET #status = :revoked, revokedAt = :at, revocationReason = :reason',
      ConditionExpression: 'attribute_exists(certificateId) AND #status <> :revoked',
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: {
        ':revoked': 'revoked',
        ':at': '2026-03-01T00:00:00.000Z',
        ':reason': 'keyCompromise',
      },
    });
    expect(docMock).not.toHaveReceivedCommand(cmd(GetCommand));
  });

  it('answers already for a certificate revoked before', async () => {
    docMock.on(cmd(UpdateCommand)).rejects(conditionFailed());
    docMock.on(cmd(GetCommand)).resolves({ Item: item(record(id, { status: 'revoked' })) });
    await expect(inventory.markRevoked(id, '2026-03-01T00:00:00.000Z', 'superseded')).resolves.toBe('already');
    expect(docMock).toHaveReceivedCommandWith(cmd(GetCommand), { Key: { certificateId: id }, ConsistentRead: true });
  });

  it('answers missing for an unknown certificate', async () => {
    docMock.on(cmd(UpdateCommand)).rejects(conditionFailed());
    docMock.on(cmd(GetCommand)).resolves({});
    await expect(inventory.markRevoked(id, '2026-03-01T00:00:00.000Z', 'superseded')).resolves.toBe('missing');
  });

  it('lets other errors through', async () => {
    docMock.on(cmd(UpdateCommand)).rejects(Object.assign(new Error('slow down'), { name: 'ThrottlingException' }));
    await expect(inventory.markRevoked(id, '2026-03-01T00:00:00.000Z', 'x')).rejects.toMatchObject({
      name: 'ThrottlingException',
    });
  });
});
