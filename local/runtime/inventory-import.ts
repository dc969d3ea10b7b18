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
  const status = await tableStatus(client, tableName);
  if (status === undefined) return 0;
  if (status === 'DELETING') {
    await gone(client, tableName); // dropped by a start that stopped before the table was gone
    return 0;
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
  await gone(client, tableName); // dynalite deletes a table half a second after DeleteTable, as DynamoDB takes a while
  return copied;
}

async function tableStatus(client: DynamoDBClient, tableName: string): Promise<string | undefined> {
  try {
    return (await client.send(new DescribeTableCommand({ TableName: tableName }))).Table?.TableStatus ?? 'ACTIVE';
  } catch (error) {
    if (isAwsError(error, 'ResourceNotFoundException')) return undefined;
    throw error;
  }
}

async function gone(client: DynamoDBClient, tableName: string): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if ((await tableStatus(client, tableName)) === undefined) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the table ${tableName} is still there 10 s after DeleteTable`);
}
