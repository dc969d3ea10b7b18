/**
 * Data directories made before the local inventory moved to LevelDB (lambdas/adapters/local/level-inventory.ts) keep
 * it in dynalite's inventory table. On start that table, when there is one, is copied into the new store as it is
 * (revocations and notified windows included), then dropped, so nothing recorded is lost and it is done once. A
 * start stopped half way copies again: the import writes items as they are, so a second copy changes nothing.
 */
import { DeleteTableCommand, DescribeTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { isAwsError } from '../../lambdas/adapters/aws/sdk-errors';
import { INVENTORY_TABLE } from '../../lambdas/adapters/aws/tables';
import type { LevelInventory } from '../../lambdas/adapters/local/level-inventory';

/** Copies a dynalite inventory table into `inventory` and drops it; returns the number of records copied. */
export async function importDynaliteInventory(
  client: DynamoDBClient,
  inventory: LevelInventory,
  tableName: string = INVENTORY_TABLE.tableName,
): Promise<number> {
  try {
    await client.send(new DescribeTableCommand({ TableName: tableName }));
  } catch (error) {
    if (isAwsError(error, 'ResourceNotFoundException')) return 0;
    throw error;
  }
  const doc = DynamoDBDocumentClient.from(client);
  let copied = 0;
  let start: Record<string, unknown> | undefined;
  do {
    const page = await doc.send(
      new ScanCommand({ TableName: tableName, ConsistentRead: true, ...(start ? { ExclusiveStartKey: start } : {}) }),
    );
    await inventory.importItems(page.Items ?? []);
    copied += page.Items?.length ?? 0;
    start = page.LastEvaluatedKey;
  } while (start);
  await client.send(new DeleteTableCommand({ TableName: tableName }));
  return copied;
}
