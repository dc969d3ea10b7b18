/**
 * A data directory made before the local inventory moved to LevelDB keeps it in dynalite: the runtime's start copies
 * it into the LevelDB store as it is, then drops the table (importDynaliteInventory).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { DynamoInventory } from '../../../lambdas/adapters/aws/dynamo-inventory';
import { INVENTORY_TABLE } from '../../../lambdas/adapters/aws/tables';
import { LevelInventory } from '../../../lambdas/adapters/local/level-inventory';
import type { InventoryRecord } from '../../../lambdas/core/ports';
import { createLocalDynamoDbClient, ensureTable, startDynamoDb } from '../../../local/runtime/dynamodb-server';
import { importDynaliteInventory } from '../../../local/runtime/inventory-import';

const record = (n: number): InventoryRecord => ({
  certificateId: createHash('sha256').update(`c${n}`).digest('hex'),
  kind: 'device',
  commonName: `device-${n}`,
  issuerId: 'a'.repeat(64),
  serialNumber: n.toString(16),
  notBefore: '2026-01-01T00:00:00.000Z',
  notAfter: '2027-01-01T00:00:00.000Z',
  status: 'active',
  issuedAt: '2026-01-01T00:00:00.000Z',
  batchId: 'batch-1',
});

describe('importDynaliteInventory', () => {
  it('copies a dynalite inventory (over several scan pages) into LevelDB once, revocations included, and drops it', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'certflow-inventory-import-'));
    const server = await startDynamoDb({ dataDir: join(dataDir, 'dynamodb') });
    const client = createLocalDynamoDbClient(server.endpoint);
    const level = await LevelInventory.open(join(dataDir, 'inventory'));
    try {
      await ensureTable(client, INVENTORY_TABLE);
      const old = new DynamoInventory(client, INVENTORY_TABLE.tableName);
      // long common names make the table larger than one 1 MB scan page
      const records = Array.from({ length: 1200 }, (_, n) => ({
        ...record(n),
        commonName: `device-${n}-${'x'.repeat(900)}`,
      }));
      await old.putIssued(records);
      await old.markRevoked(records[7]!.certificateId, '2026-02-01T00:00:00.000Z', 'keyCompromise');
      await old.markExpiringNotified(records[8]!.certificateId, '2026-12');

      await expect(importDynaliteInventory(client, level)).resolves.toBe(1200);
      const { TableNames = [] } = await client.send(new ListTablesCommand({}));
      expect(TableNames).not.toContain(INVENTORY_TABLE.tableName);
      await expect(level.get(records[7]!.certificateId)).resolves.toMatchObject({
        status: 'revoked',
        revocationReason: 'keyCompromise',
      });
      await expect(level.get(records[1199]!.certificateId)).resolves.toEqual(records[1199]);
      await expect(level.markExpiringNotified(records[8]!.certificateId, '2026-12')).resolves.toBe(false);
      const page = await level.listByIssuer('a'.repeat(64), { limit: 1000 });
      expect(page.items).toHaveLength(1000);
      expect(page.nextToken).toBeDefined();
      // the next start finds no table: nothing to do
      await expect(importDynaliteInventory(client, level)).resolves.toBe(0);
    } finally {
      await level.close();
      client.destroy();
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
