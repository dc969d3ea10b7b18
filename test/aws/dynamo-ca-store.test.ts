import 'aws-sdk-client-mock-jest';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { ConflictError, NotFoundError } from '../../lambdas/core/errors';
import type { CaRecord } from '../../lambdas/core/ports';
import { DynamoCaStore } from '../../lambdas/adapters/aws/dynamo-ca-store';
import { cmd, mockSdk } from './sdk-mock';
import { conditionFailed } from './dynamo-fake';

const TABLE = 'certflow-cas-test';
const docMock = mockSdk(DynamoDBDocumentClient);
const store = new DynamoCaStore(new DynamoDBClient({ region: 'us-east-1' }), TABLE);

const ca = (caId: string, overrides: Partial<CaRecord> = {}): CaRecord => ({
  caId,
  kind: 'root',
  commonName: 'Acme Root',
  subject: 'O=Acme, CN=Acme Root',
  serialNumber: '01',
  keyType: 'ec-p256',
  status: 'active',
  notBefore: '2026-01-01T00:00:00.000Z',
  notAfter: '2036-01-01T00:00:00.000Z',
  certificatePem: '-----BEGIN CERTIFICATE-----\n…\n-----END CERTIFICATE-----\n',
  createdAt: '2026-01-01T00:00:00.000Z',
  crlNumber: 0,
  ...overrides,
});

beforeEach(() => docMock.reset());

describe('DynamoCaStore.create', () => {
  it('puts the record, only if new', async () => {
    docMock.on(cmd(PutCommand)).resolves({});
    await store.create(ca('ca-1'));
    expect(docMock.commandCalls(cmd(PutCommand))[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Item: ca('ca-1'),
      ConditionExpression: 'attribute_not_exists(caId)',
    });
  });

  it('throws ConflictError CA_EXISTS when the CA exists', async () => {
    docMock.on(cmd(PutCommand)).rejects(conditionFailed());
    const caught = await store.create(ca('ca-1')).catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(ConflictError);
    expect(caught).toMatchObject({ code: 'CA_EXISTS', status: 409, details: { caId: 'ca-1' } });
  });
});

describe('DynamoCaStore.get', () => {
  it('reads the record consistently', async () => {
    docMock.on(cmd(GetCommand)).resolves({ Item: ca('ca-1') });
    await expect(store.get('ca-1')).resolves.toEqual(ca('ca-1'));
    expect(docMock).toHaveReceivedCommandWith(cmd(GetCommand), {
      TableName: TABLE,
      Key: { caId: 'ca-1' },
      ConsistentRead: true,
    });
  });

  it('returns undefined for an unknown CA', async () => {
    docMock.on(cmd(GetCommand)).resolves({});
    await expect(store.get('nope')).resolves.toBeUndefined();
  });
});

describe('DynamoCaStore.list', () => {
  it('scans every page and sorts oldest first', async () => {
    docMock
      .on(cmd(ScanCommand))
      .resolvesOnce({
        Items: [ca('ca-2', { createdAt: '2026-02-01T00:00:00.000Z' })],
        LastEvaluatedKey: { caId: 'ca-2' },
      })
      .resolvesOnce({ Items: [ca('ca-3'), ca('ca-1')] });
    const listed = await store.list();
    expect(listed.map((c) => c.caId)).toEqual(['ca-1', 'ca-3', 'ca-2']);
    expect(docMock).toHaveReceivedCommandTimes(cmd(ScanCommand), 2);
    expect(docMock).toHaveReceivedNthCommandWith(1, cmd(ScanCommand), { TableName: TABLE, ConsistentRead: true });
    expect(docMock).toHaveReceivedNthCommandWith(2, cmd(ScanCommand), { ExclusiveStartKey: { caId: 'ca-2' } });
  });
});

describe('DynamoCaStore.nextCrlNumber', () => {
  it('is one atomic ADD on an existing CA', async () => {
    docMock.on(cmd(UpdateCommand)).resolves({ Attributes: { crlNumber: 4 } });
    await expect(store.nextCrlNumber('ca-1')).resolves.toBe(4);
    expect(docMock.commandCalls(cmd(UpdateCommand))[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Key: { caId: 'ca-1' },
      UpdateExpression: 'ADD crlNumber :one',
      ConditionExpression: 'attribute_exists(caId)',
      ExpressionAttributeValues: { ':one': 1 },
      ReturnValues: 'UPDATED_NEW',
    });
  });

  it('throws NotFoundError CA_NOT_FOUND for an unknown CA', async () => {
    docMock.on(cmd(UpdateCommand)).rejects(conditionFailed());
    const caught = await store.nextCrlNumber('nope').catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(NotFoundError);
    expect(caught).toMatchObject({ code: 'CA_NOT_FOUND', status: 404 });
  });
});

describe('DynamoCaStore.markRevoked', () => {
  it('is one conditional UpdateItem', async () => {
    docMock.on(cmd(UpdateCommand)).resolves({});
    await expect(store.markRevoked('ca-1', '2026-03-01T00:00:00.000Z', 'keyCompromise')).resolves.toBe(true);
    expect(docMock.commandCalls(cmd(UpdateCommand))[0]!.args[0].input).toEqual({
      TableName: TABLE,
      Key: { caId: 'ca-1' },
      UpdateExpression: 'SET #status = :revoked, revokedAt = :at, revocationReason = :reason',
      ConditionExpression: 'attribute_exists(caId) AND #status <> :revoked',
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: {
        ':revoked': 'revoked',
        ':at': '2026-03-01T00:00:00.000Z',
        ':reason': 'keyCompromise',
      },
    });
    expect(docMock).not.toHaveReceivedCommand(cmd(GetCommand));
  });

  it('answers false for a CA revoked before', async () => {
    docMock.on(cmd(UpdateCommand)).rejects(conditionFailed());
    docMock.on(cmd(GetCommand)).resolves({ Item: ca('ca-1', { status: 'revoked' }) });
    await expect(store.markRevoked('ca-1', '2026-03-01T00:00:00.000Z', 'superseded')).resolves.toBe(false);
  });

  it('throws NotFoundError CA_NOT_FOUND for an unknown CA', async () => {
    docMock.on(cmd(UpdateCommand)).rejects(conditionFailed());
    docMock.on(cmd(GetCommand)).resolves({});
    await expect(store.markRevoked('nope', '2026-03-01T00:00:00.000Z', 'x')).rejects.toMatchObject({
      code: 'CA_NOT_FOUND',
    });
  });
});
