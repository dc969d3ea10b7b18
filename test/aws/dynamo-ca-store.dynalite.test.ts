/** DynamoCaStore against dynalite (in memory, on 127.0.0.1): conditions, the atomic counter, Scan pages. */
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { ConflictError, NotFoundError } from '../../lambdas/core/errors';
import type { CaRecord } from '../../lambdas/core/ports';
import { DynamoCaStore } from '../../lambdas/adapters/aws/dynamo-ca-store';
import { CA_TABLE } from '../../lambdas/adapters/aws/tables';
import { type LocalDynamo, startDynalite } from '../helpers/dynalite';

let dynamo: LocalDynamo;
let client: DynamoDBClient;
let store: DynamoCaStore;

const ca = (caId: string, overrides: Partial<CaRecord> = {}): CaRecord => ({
  caId,
  kind: 'intermediate',
  parentId: 'root-1',
  commonName: `CA ${caId}`,
  subject: `CN=CA ${caId}`,
  serialNumber: '0102',
  keyType: 'ec-p256',
  status: 'active',
  notBefore: '2026-01-01T00:00:00.000Z',
  notAfter: '2031-01-01T00:00:00.000Z',
  pathLength: 0,
  certificatePem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
  createdAt: '2026-01-01T00:00:00.000Z',
  crlNumber: 0,
  ...overrides,
});

beforeAll(async () => {
  dynamo = await startDynalite([CA_TABLE]);
  client = dynamo.client;
  store = new DynamoCaStore(client, CA_TABLE.tableName);
});

afterAll(() => dynamo?.close());

describe('DynamoCaStore on dynalite', () => {
  it('creates a CA once and reads it back as it was', async () => {
    await store.create(ca('ca-1'));
    await expect(store.get('ca-1')).resolves.toEqual(ca('ca-1'));
    const caught = await store.create(ca('ca-1', { commonName: 'other' })).catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(ConflictError);
    expect(caught).toMatchObject({ code: 'CA_EXISTS' });
    await expect(store.get('ca-1')).resolves.toMatchObject({ commonName: 'CA ca-1' });
    await expect(store.get('ca-unknown')).resolves.toBeUndefined();
  });

  it('hands out CRL numbers 1, 2, 3 and distinct numbers to concurrent callers', async () => {
    await store.create(ca('ca-crl'));
    await expect(store.nextCrlNumber('ca-crl')).resolves.toBe(1);
    await expect(store.nextCrlNumber('ca-crl')).resolves.toBe(2);
    await expect(store.nextCrlNumber('ca-crl')).resolves.toBe(3);
    const concurrent = await Promise.all(Array.from({ length: 5 }, () => store.nextCrlNumber('ca-crl')));
    expect([...concurrent].sort((a, b) => a - b)).toEqual([4, 5, 6, 7, 8]);
    await expect(store.get('ca-crl')).resolves.toMatchObject({ crlNumber: 8 });
  });

  it('throws CA_NOT_FOUND for the CRL number of an unknown CA and creates nothing', async () => {
    const caught = await store.nextCrlNumber('ca-missing').catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(NotFoundError);
    expect(caught).toMatchObject({ code: 'CA_NOT_FOUND' });
    await expect(store.get('ca-missing')).resolves.toBeUndefined();
  });

  it('marks a CA revoked once', async () => {
    await store.create(ca('ca-rev'));
    await expect(store.markRevoked('ca-rev', '2026-03-01T00:00:00.000Z', 'keyCompromise')).resolves.toBe(true);
    await expect(store.markRevoked('ca-rev', '2026-03-02T00:00:00.000Z', 'superseded')).resolves.toBe(false);
    await expect(store.get('ca-rev')).resolves.toEqual({
      ...ca('ca-rev'),
      status: 'revoked',
      revokedAt: '2026-03-01T00:00:00.000Z',
      revocationReason: 'keyCompromise',
    });
    await expect(store.markRevoked('ca-nope', '2026-03-01T00:00:00.000Z', 'x')).rejects.toMatchObject({
      code: 'CA_NOT_FOUND',
    });
    await expect(store.get('ca-nope')).resolves.toBeUndefined();
  });

  it('lists every CA, oldest first, across Scan pages', async () => {
    // ~6 KB items: dynalite cuts Scan pages at 1 MB, so 200 of them take two pages
    const big = 'x'.repeat(6000);
    const many = Array.from({ length: 200 }, (_, n) =>
      ca(`ca-many-${String(n).padStart(3, '0')}`, {
        createdAt: `2026-02-01T00:00:${String(59 - (n % 60)).padStart(2, '0')}.000Z`,
        certificatePem: big,
      }),
    );
    for (const c of many) await store.create(c);
    const firstPage = await client.send(new ScanCommand({ TableName: CA_TABLE.tableName }));
    expect(firstPage.LastEvaluatedKey).toBeDefined(); // the table does take more than one page
    const listed = await store.list();
    expect(listed).toHaveLength(200 + 3);
    const expected = [...many, ca('ca-1'), ca('ca-crl'), ca('ca-rev')]
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.caId.localeCompare(b.caId))
      .map((c) => c.caId);
    expect(listed.map((c) => c.caId)).toEqual(expected);
  });
});
