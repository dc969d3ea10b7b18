/**
 * DynamoInventory against a real DynamoDB wire-protocol server (dynalite, in memory, on 127.0.0.1): the same server
 * the local runtime uses. Checks what mocks cannot: key conditions, filters with Limit, ExclusiveStartKey on the
 * indexes, the shard merge across pages. LevelInventory (the local runtime's, on LevelDB) passes the same tests.
 */
import { createHash } from 'node:crypto';
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { ValidationError } from '../../lambdas/core/errors';
import type { InventoryPage, InventoryQuery, InventoryRecord } from '../../lambdas/core/ports';
import { DynamoInventory, expiryShard } from '../../lambdas/adapters/aws/dynamo-inventory';
import { INVENTORY_TABLE } from '../../lambdas/adapters/aws/tables';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { ClassicLevel } from 'classic-level';
import { IdFilter, LevelInventory } from '../../lambdas/adapters/local/level-inventory';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Inventory } from '../../lambdas/core/ports';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';

let inventory: Inventory;

/** A LevelInventory in a fresh temporary directory, removed by close(). */
async function openLevelInventory(
  dir = mkdtempSync(join(tmpdir(), 'certflow-level-inventory-')),
): Promise<{ inventory: LevelInventory; close: () => Promise<void> }> {
  const level = await LevelInventory.open(dir);
  return {
    inventory: level,
    close: async () => {
      await level.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const ISSUER_A = 'a'.repeat(64);
const ISSUER_B = 'arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/b';
const id = (n: number): string => createHash('sha256').update(`certificate-${n}`).digest('hex');
const BASE = Date.parse('2026-01-01T00:00:00.000Z');
const iso = (ms: number): string => new Date(ms).toISOString();

/** 250 certificates: 150 of issuer A, 100 of issuer B; issuedAt ties in groups of 10, notAfter scattered */
const records: InventoryRecord[] = Array.from({ length: 250 }, (_, n) => ({
  certificateId: id(n),
  kind: 'device',
  commonName: `device-${n}`,
  issuerId: n % 5 < 3 ? ISSUER_A : ISSUER_B,
  serialNumber: n.toString(16),
  notBefore: iso(BASE),
  notAfter: iso(BASE + ((n * 7919) % 365) * 86_400_000 + n * 1000),
  status: 'active',
  issuedAt: iso(BASE + Math.floor(n / 10) * 60_000),
  batchId: 'batch-1',
}));
const ofIssuer = (issuerId: string) =>
  records
    .filter((r) => r.issuerId === issuerId)
    .sort((x, y) => x.issuedAt.localeCompare(y.issuedAt) || x.certificateId.localeCompare(y.certificateId));
const revokedIds = ofIssuer(ISSUER_A)
  .filter((_, i) => i % 20 === 3)
  .map((r) => r.certificateId);

/** every page of a listing, checking that each page but the last is full */
async function allPages(
  list: (query: InventoryQuery) => Promise<InventoryPage>,
  query: Omit<InventoryQuery, 'nextToken'>,
): Promise<InventoryPage[]> {
  const pages: InventoryPage[] = [];
  let nextToken: string | undefined;
  do {
    const page = await list({ ...query, ...(nextToken !== undefined ? { nextToken } : {}) });
    pages.push(page);
    nextToken = page.nextToken;
    if (nextToken !== undefined) expect(page.items).toHaveLength(query.limit);
  } while (nextToken !== undefined);
  return pages;
}

const ids = (pages: InventoryPage[]): string[] => pages.flatMap((p) => p.items.map((r) => r.certificateId));

describe('DynamoInventory on dynalite: the table', () => {
  let table: LocalDynamo;
  beforeAll(async () => {
    table = await startDynalite([INVENTORY_TABLE]);
  });
  afterAll(() => table?.close());

  it('creates the table from INVENTORY_TABLE with the byIssuer and byExpiry indexes', async () => {
    const { Table } = await table.client.send(new DescribeTableCommand({ TableName: INVENTORY_TABLE.tableName }));
    expect(Table?.KeySchema).toEqual([{ AttributeName: 'certificateId', KeyType: 'HASH' }]);
    expect(Table?.GlobalSecondaryIndexes?.map((i) => [i.IndexName, i.KeySchema])).toEqual([
      [
        'byIssuer',
        [
          { AttributeName: 'issuerId', KeyType: 'HASH' },
          { AttributeName: 'issuedKey', KeyType: 'RANGE' },
        ],
      ],
      [
        'byExpiry',
        [
          { AttributeName: 'expiryBucket', KeyType: 'HASH' },
          { AttributeName: 'expiryKey', KeyType: 'RANGE' },
        ],
      ],
    ]);
  });
});

// LevelInventory (the local runtime's) must keep every behaviour of DynamoInventory
describe.each([
  [
    'DynamoInventory on dynalite',
    async () => {
      const table = await startDynalite([INVENTORY_TABLE]);
      return { inventory: new DynamoInventory(table.client, INVENTORY_TABLE.tableName), close: () => table.close() };
    },
  ],
  ['LevelInventory', openLevelInventory],
])('%s', (_name, open: () => Promise<{ inventory: Inventory; close: () => Promise<void> }>) => {
  let close: () => Promise<void>;
  beforeAll(async () => {
    ({ inventory, close } = await open());
    await inventory.putIssued(records);
  });

  afterAll(() => close?.());

  it('stores the records as given and reads them back', async () => {
    expect(new Set(records.map((r) => expiryShard(r.certificateId))).size).toBe(16);
    await expect(inventory.get(records[17]!.certificateId)).resolves.toEqual(records[17]);
    await expect(inventory.get('0'.repeat(64))).resolves.toBeUndefined();
  });

  it('lists an issuer in pages of 40: every certificate exactly once, in issuedAt then id order', async () => {
    const pages = await allPages((q) => inventory.listByIssuer(ISSUER_A, q), { limit: 40 });
    expect(pages.map((p) => p.items.length)).toEqual([40, 40, 40, 30]);
    expect(ids(pages)).toEqual(ofIssuer(ISSUER_A).map((r) => r.certificateId));
    const b = await allPages((q) => inventory.listByIssuer(ISSUER_B, q), { limit: 40 });
    expect(ids(b)).toEqual(ofIssuer(ISSUER_B).map((r) => r.certificateId));
    // a page that ends exactly at the end carries no token
    const whole = await inventory.listByIssuer(ISSUER_B, { limit: 100 });
    expect(whole.items).toHaveLength(100);
    expect(whole.nextToken).toBeUndefined();
    await expect(inventory.listByIssuer('nobody', { limit: 10 })).resolves.toEqual({ items: [] });
  });

  it('marks certificates revoked once, and filters on status with full pages', async () => {
    expect(revokedIds).toHaveLength(8);
    const seven = revokedIds.slice(0, 7);
    for (const certificateId of seven) {
      await expect(inventory.markRevoked(certificateId, '2026-03-01T00:00:00.000Z', 'keyCompromise')).resolves.toBe(
        'revoked',
      );
    }
    await expect(inventory.markRevoked(seven[0]!, '2026-03-02T00:00:00.000Z', 'superseded')).resolves.toBe('already');
    await expect(inventory.markRevoked('f'.repeat(64), '2026-03-02T00:00:00.000Z', 'superseded')).resolves.toBe(
      'missing',
    );
    await expect(inventory.get('f'.repeat(64))).resolves.toBeUndefined(); // the update created nothing
    await expect(inventory.get(seven[0]!)).resolves.toMatchObject({
      status: 'revoked',
      revokedAt: '2026-03-01T00:00:00.000Z',
      revocationReason: 'keyCompromise',
    });

    const revoked = await allPages((q) => inventory.listByIssuer(ISSUER_A, q), { status: 'revoked', limit: 3 });
    expect(revoked.map((p) => p.items.length)).toEqual([3, 3, 1]);
    expect(ids(revoked)).toEqual(seven);
    expect(revoked.flatMap((p) => p.items).every((r) => r.status === 'revoked')).toBe(true);

    const active = await allPages((q) => inventory.listByIssuer(ISSUER_A, q), { status: 'active', limit: 40 });
    expect(active.map((p) => p.items.length)).toEqual([40, 40, 40, 23]);
    expect(ids(active)).toEqual(
      ofIssuer(ISSUER_A)
        .map((r) => r.certificateId)
        .filter((i) => !seven.includes(i)),
    );
    await expect(inventory.listByIssuer(ISSUER_B, { status: 'revoked', limit: 10 })).resolves.toEqual({ items: [] });
  });

  it('does not un-revoke or change anything when issuance events are replayed', async () => {
    await inventory.putIssued(records.map((r) => ({ ...r, commonName: 'replayed' })));
    for (const certificateId of revokedIds.slice(0, 7)) {
      await expect(inventory.get(certificateId)).resolves.toMatchObject({
        status: 'revoked',
        revocationReason: 'keyCompromise',
        commonName: expect.stringMatching(/^device-/),
      });
    }
    await expect(inventory.get(records[0]!.certificateId)).resolves.toEqual(records[0]);
  });

  it('lists certificates expiring before a date, soonest first, across the shards and pages', async () => {
    const before = iso(BASE + 120 * 86_400_000);
    const expected = records
      .filter((r) => r.notAfter < before)
      .sort((x, y) => x.notAfter.localeCompare(y.notAfter) || x.certificateId.localeCompare(y.certificateId))
      .map((r) => r.certificateId);
    expect(expected.length).toBeGreaterThan(60);
    expect(expected.length).toBeLessThan(250);

    for (const limit of [1, 7, 25, 1000]) {
      const pages = await allPages((q) => inventory.listExpiring(before, q), { limit });
      expect(ids(pages)).toEqual(expected);
      expect(pages).toHaveLength(Math.max(1, Math.ceil(expected.length / limit)));
    }
    // the boundary is exclusive
    const first = records.find((r) => r.certificateId === expected[0])!;
    await expect(inventory.listExpiring(first.notAfter, { limit: 10 })).resolves.toEqual({ items: [] });
  });

  it('filters expiring certificates on status', async () => {
    const before = iso(BASE + 400 * 86_400_000); // after every notAfter
    const revoked = await allPages((q) => inventory.listExpiring(before, q), { status: 'revoked', limit: 2 });
    const seven = revokedIds.slice(0, 7);
    expect(revoked.map((p) => p.items.length)).toEqual([2, 2, 2, 1]);
    const expected = records
      .filter((r) => seven.includes(r.certificateId))
      .sort((x, y) => x.notAfter.localeCompare(y.notAfter))
      .map((r) => r.certificateId);
    expect(ids(revoked)).toEqual(expected);
    const active = await allPages((q) => inventory.listExpiring(before, q), { status: 'active', limit: 50 });
    expect(ids(active)).toHaveLength(243);
  });

  it('skips and repeats nothing when the listed certificates are revoked between pages', async () => {
    const issuer = 'c'.repeat(64);
    const batch = Array.from({ length: 30 }, (_, n) => ({
      ...records[n]!,
      certificateId: id(1000 + n),
      issuerId: issuer,
    }));
    await inventory.putIssued(batch);
    const seen: string[] = [];
    let nextToken: string | undefined;
    do {
      const page = await inventory.listByIssuer(issuer, {
        status: 'active',
        limit: 4,
        ...(nextToken ? { nextToken } : {}),
      });
      for (const r of page.items) {
        seen.push(r.certificateId);
        await inventory.markRevoked(r.certificateId, '2026-03-03T00:00:00.000Z', 'cACompromise');
      }
      nextToken = page.nextToken;
    } while (nextToken);
    expect([...seen].sort()).toEqual(batch.map((r) => r.certificateId).sort());
    expect(new Set(seen).size).toBe(30);
  });

  it('refuses malformed tokens with INVALID_NEXT_TOKEN', async () => {
    const issuerPage = await inventory.listByIssuer(ISSUER_A, { limit: 5 });
    const expiryPage = await inventory.listExpiring(iso(BASE + 400 * 86_400_000), { limit: 5 });
    const bad = [
      'garbage!',
      Buffer.from('{}').toString('base64url'),
      expiryPage.nextToken!, // another listing's token
    ];
    for (const nextToken of bad) {
      const caught = await inventory.listByIssuer(ISSUER_A, { limit: 5, nextToken }).catch((e: unknown) => e);
      expect(caught).toBeInstanceOf(ValidationError);
      expect(caught).toMatchObject({ code: 'INVALID_NEXT_TOKEN' });
    }
    // a token of one issuer is not a token of another
    await expect(
      inventory.listByIssuer(ISSUER_B, { limit: 5, nextToken: issuerPage.nextToken! }),
    ).rejects.toMatchObject({ code: 'INVALID_NEXT_TOKEN' });
    for (const nextToken of ['garbage!', issuerPage.nextToken!]) {
      await expect(inventory.listExpiring(iso(BASE), { limit: 5, nextToken })).rejects.toMatchObject({
        code: 'INVALID_NEXT_TOKEN',
      });
    }
  });
});

describe('LevelInventory writes', () => {
  let local: LevelInventory;
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ inventory: local, close } = await openLevelInventory());
  });

  afterAll(() => close?.());

  it('keeps the first of two records with the same id in one call, as conditional puts do', async () => {
    const [first, second] = [records[0]!, { ...records[0]!, commonName: 'second' }];
    await local.putIssued([first, second, records[1]!]);
    await expect(local.get(first.certificateId)).resolves.toEqual(first);
    await expect(local.get(records[1]!.certificateId)).resolves.toEqual(records[1]);
  });

  it('does not un-revoke a certificate when a replay and a revocation run concurrently', async () => {
    await local.putIssued(records.slice(0, 120));
    const target = records[110]!.certificateId;
    const replay = records.slice(0, 120).map((r) => ({ ...r, commonName: 'replayed' }));
    const [, outcome] = await Promise.all([
      local.putIssued(replay),
      local.markRevoked(target, '2026-03-01T00:00:00.000Z', 'keyCompromise'),
      local.putIssued(replay),
    ]);
    expect(outcome).toBe('revoked');
    await expect(local.get(target)).resolves.toMatchObject({ status: 'revoked', commonName: 'device-110' });
    const page = await local.listByIssuer(ISSUER_A, { limit: 1000 });
    expect(page.items.filter((r) => r.commonName === 'replayed')).toEqual([]);
  });

  it('validates every record before writing any', async () => {
    const bad = { ...records[200]!, issuedAt: 'yesterday' };
    await expect(local.putIssued([records[199]!, bad])).rejects.toMatchObject({ code: 'INVALID_INVENTORY_RECORD' });
    await expect(local.get(records[199]!.certificateId)).resolves.toBeUndefined();
  });

  it('notes each expiry window once per certificate, and nothing for an unknown one', async () => {
    const target = records[5]!.certificateId;
    await local.putIssued([records[5]!]);
    await expect(local.markExpiringNotified(target, '2026-06')).resolves.toBe(true);
    await expect(local.markExpiringNotified(target, '2026-06')).resolves.toBe(false);
    await expect(local.markExpiringNotified(target, '2026-07')).resolves.toBe(true);
    await expect(local.markExpiringNotified('e'.repeat(64), '2026-06')).resolves.toBe(false);
    await expect(local.get(target)).resolves.toEqual(records[5]); // the windows are not part of the record
  });

  it('refuses ids with NUL, which would break its keys', async () => {
    await expect(local.putIssued([{ ...records[6]!, issuerId: 'a\u0000b' }])).rejects.toMatchObject({
      code: 'INVALID_INVENTORY_RECORD',
    });
  });
});

describe('LevelInventory on disk', () => {
  it('keeps records, revocations and notified windows across a close and reopen', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certflow-level-inventory-'));
    try {
      const first = await openLevelInventory(dir);
      await first.inventory.putIssued(records.slice(0, 50));
      await first.inventory.markRevoked(records[3]!.certificateId, '2026-03-01T00:00:00.000Z', 'superseded');
      await first.inventory.markExpiringNotified(records[4]!.certificateId, '2026-06');
      await first.inventory.close();

      const again = await LevelInventory.open(dir);
      try {
        await expect(again.get(records[3]!.certificateId)).resolves.toMatchObject({ status: 'revoked' });
        await expect(again.markExpiringNotified(records[4]!.certificateId, '2026-06')).resolves.toBe(false);
        const page = await again.listByIssuer(ISSUER_A, { limit: 1000 });
        expect(page.items.map((r) => r.certificateId)).toEqual(
          ofIssuer(ISSUER_A)
            .filter((r) => records.slice(0, 50).includes(r))
            .map((r) => r.certificateId),
        );
      } finally {
        await again.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('imports DynamoDB items as they are, revocations and notified windows included', async () => {
    const table = await startDynalite([INVENTORY_TABLE]);
    const level = await openLevelInventory();
    try {
      const dynamo = new DynamoInventory(table.client, INVENTORY_TABLE.tableName);
      await dynamo.putIssued(records.slice(0, 20));
      await dynamo.markRevoked(records[2]!.certificateId, '2026-03-01T00:00:00.000Z', 'keyCompromise');
      await dynamo.markExpiringNotified(records[7]!.certificateId, '2026-06');
      const { Items = [] } = await DynamoDBDocumentClient.from(table.client).send(
        new ScanCommand({ TableName: INVENTORY_TABLE.tableName }),
      );
      await level.inventory.importItems(Items);
      for (const record of records.slice(0, 20)) {
        await expect(level.inventory.get(record.certificateId)).resolves.toEqual(
          await dynamo.get(record.certificateId),
        );
      }
      await expect(level.inventory.markExpiringNotified(records[7]!.certificateId, '2026-06')).resolves.toBe(false);
      await expect(level.inventory.markExpiringNotified(records[8]!.certificateId, '2026-06')).resolves.toBe(true);
    } finally {
      await level.close();
      await table.close();
    }
  });
});

describe('LevelInventory presence reads (the id filter)', () => {
  /** A store seeded by `seed`, closed, then reopened for `test`; the directory is removed after. */
  async function reopened(
    seed: (inventory: LevelInventory) => Promise<unknown>,
    test: (inventory: LevelInventory) => Promise<void>,
  ): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), 'certflow-level-inventory-'));
    try {
      const first = await LevelInventory.open(dir);
      await seed(first);
      await first.close();
      const again = await LevelInventory.open(dir);
      try {
        await test(again);
      } finally {
        await again.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  /** the keys putIssued reads (ClassicLevel.getMany), while `fn` runs */
  async function keysRead(fn: () => Promise<unknown>): Promise<number> {
    const spy = jest.spyOn(ClassicLevel.prototype, 'getMany');
    try {
      await fn();
      return spy.mock.calls.reduce((n, [keys]) => n + (keys as unknown[]).length, 0);
    } finally {
      spy.mockRestore();
    }
  }
  const revokedAt = '2026-03-01T00:00:00.000Z';

  it('holds every id added, and few others (~1 % at its capacity)', () => {
    const filter = new IdFilter(20_000);
    const added = Array.from({ length: 20_000 }, (_, n) => id(n));
    for (const one of added) filter.add(one);
    expect(added.filter((one) => !filter.mayHold(one))).toEqual([]);
    const others = Array.from({ length: 20_000 }, (_, n) => id(100_000 + n));
    expect(others.filter((one) => filter.mayHold(one)).length).toBeLessThan(400);
    expect(filter.withinCapacity).toBe(true);
    filter.add(id(-1));
    expect(filter.withinCapacity).toBe(false);
  });

  it('reads only the ids it may hold: a fresh event reads (almost) none, a replay reads all and writes none', async () => {
    await reopened(
      async (first) => {
        await first.putIssued(records.slice(0, 100));
        await first.markRevoked(records[3]!.certificateId, revokedAt, 'superseded');
      },
      // reopened: the filter is filled from the stored keys
      async (again) => {
        await expect(again.idsReady()).resolves.toBe(true);
        expect(await keysRead(() => again.putIssued(records.slice(100, 250)))).toBeLessThan(5);
        expect(await keysRead(() => again.putIssued(records.slice(0, 250)))).toBeGreaterThanOrEqual(250);
        await expect(again.get(records[3]!.certificateId)).resolves.toMatchObject({ status: 'revoked', revokedAt });
        const page = await again.listByIssuer(ISSUER_A, { limit: 1000 });
        expect(page.items.map((r) => r.certificateId)).toEqual(ofIssuer(ISSUER_A).map((r) => r.certificateId));
      },
    );
  });

  it('misses no id written while the filter is being filled', async () => {
    await reopened(
      (first) => first.putIssued(records.slice(0, 200)),
      async (again) => {
        // written at once, before the filter is ready: every presence is read, and the ids are kept for the filter
        const writing = again.putIssued(records.slice(200, 250));
        await expect(again.idsReady()).resolves.toBe(true);
        await writing;
        for (const record of [records[10]!, records[220]!]) {
          await again.markRevoked(record.certificateId, revokedAt, 'superseded');
        }
        expect(await keysRead(() => again.putIssued(records.slice(0, 250)))).toBeGreaterThanOrEqual(250);
        for (const record of [records[10]!, records[220]!]) {
          await expect(again.get(record.certificateId)).resolves.toMatchObject({ status: 'revoked' });
        }
      },
    );
  });

  it('closes while the filter is being filled', async () => {
    let reopenedStore: LevelInventory | undefined;
    await reopened(
      (first) => first.putIssued(records),
      async (again) => {
        reopenedStore = again;
      },
    );
    await expect(reopenedStore!.idsReady()).resolves.toBe(false);
  });
});
