/**
 * DynamoInventory.markExpiringNotified against a real DynamoDB wire-protocol server (dynalite, in memory, on
 * 127.0.0.1): the conditional UpdateItem that makes `Certificate Expiring` go out once per certificate and window,
 * evaluated by a real condition-expression engine rather than a mock.
 */
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { DynamoInventory } from '../../lambdas/adapters/aws/dynamo-inventory';
import { INVENTORY_TABLE } from '../../lambdas/adapters/aws/tables';
import type { InventoryRecord } from '../../lambdas/core/ports';
import { type LocalDynamo, startDynalite } from '../helpers/dynalite';

let dynamo: LocalDynamo;
let client: DynamoDBClient;
let inventory: DynamoInventory;

const record = (certificateId: string): InventoryRecord => ({
  certificateId,
  kind: 'device',
  commonName: `thing-${certificateId.slice(0, 4)}`,
  issuerId: 'a'.repeat(64),
  serialNumber: '4f1461f61b9edf04',
  notBefore: '2026-01-01T00:00:00.000Z',
  notAfter: '2026-07-01T00:00:00.000Z',
  status: 'active',
  issuedAt: '2026-01-01T00:00:00.000Z',
  thingName: `thing-${certificateId.slice(0, 4)}`,
});

/** The stored expiringNotified attribute, read with a consistent GetItem. */
async function notifiedWindows(certificateId: string): Promise<string[] | undefined> {
  const { Item } = await client.send(
    new GetItemCommand({
      TableName: INVENTORY_TABLE.tableName,
      Key: { certificateId: { S: certificateId } },
      ConsistentRead: true,
    }),
  );
  return Item?.expiringNotified?.SS?.sort();
}

beforeAll(async () => {
  dynamo = await startDynalite([INVENTORY_TABLE]);
  client = dynamo.client;
  inventory = new DynamoInventory(client, INVENTORY_TABLE.tableName);
});

afterAll(() => dynamo?.close());

describe('DynamoInventory.markExpiringNotified on dynalite', () => {
  it('is true the first time for a window, false the second time for the same window', async () => {
    const id = '1'.repeat(64);
    await inventory.putIssued([record(id)]);

    await expect(inventory.markExpiringNotified(id, '30d')).resolves.toBe(true);
    await expect(notifiedWindows(id)).resolves.toEqual(['30d']);
    await expect(inventory.markExpiringNotified(id, '30d')).resolves.toBe(false);
    await expect(notifiedWindows(id)).resolves.toEqual(['30d']);
  });

  it('is true again for another window, and records that window', async () => {
    const id = '2'.repeat(64);
    await inventory.putIssued([record(id)]);

    await expect(inventory.markExpiringNotified(id, '30d')).resolves.toBe(true);
    await expect(inventory.markExpiringNotified(id, '7d')).resolves.toBe(true);
    await expect(notifiedWindows(id)).resolves.toEqual(['30d', '7d']);
    await expect(inventory.markExpiringNotified(id, '7d')).resolves.toBe(false);
  });

  it('is false for a certificate the inventory does not hold, and creates no item', async () => {
    const id = 'f'.repeat(64);

    await expect(inventory.markExpiringNotified(id, '30d')).resolves.toBe(false);
    await expect(inventory.get(id)).resolves.toBeUndefined();
  });

  it('keeps the record’s fields; the notified windows are bookkeeping, not part of the record', async () => {
    const id = '3'.repeat(64);
    await inventory.putIssued([record(id)]);

    await inventory.markExpiringNotified(id, '30d');

    await expect(inventory.get(id)).resolves.toEqual(record(id));
  });

  // Regression: the item once kept only the last window, so 30d → 7d → 30d notified twice.
  it('stays false for a window notified before, even after another window was notified', async () => {
    const id = '4'.repeat(64);
    await inventory.putIssued([record(id)]);

    await expect(inventory.markExpiringNotified(id, '30d')).resolves.toBe(true);
    await expect(inventory.markExpiringNotified(id, '7d')).resolves.toBe(true);
    await expect(inventory.markExpiringNotified(id, '30d')).resolves.toBe(false);
  });
});
