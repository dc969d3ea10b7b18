import { type AttributeValue, DynamoDBClient, PutItemCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import type { RotationGroup } from '../../core/ports';
import { REGISTRY_TABLE } from './local-certificate-registry';

/**
 * The local stand-in for the AWS IoT rotation thing group (`cdfRotateCertificates`): memberships kept in the local
 * registry table (one item per membership, `pk = group#{group}#{thing}`). Adding twice is a no-op.
 */
export class LocalRotationGroup implements RotationGroup {
  constructor(
    private readonly dynamodb: DynamoDBClient,
    readonly groupName = 'cdfRotateCertificates',
    private readonly tableName = REGISTRY_TABLE.tableName,
  ) {}

  async add(thingNames: string[]): Promise<void> {
    for (const thingName of new Set(thingNames)) {
      await this.dynamodb.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: {
            pk: { S: `group#${this.groupName}#${thingName}` },
            groupName: { S: this.groupName },
            thingName: { S: thingName },
            addedAt: { S: new Date().toISOString() },
          },
        }),
      );
    }
  }

  /** the things in the group (tests, console) */
  async members(): Promise<string[]> {
    const prefix = `group#${this.groupName}#`;
    const out: string[] = [];
    let start: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.dynamodb.send(
        new ScanCommand({
          TableName: this.tableName,
          FilterExpression: 'begins_with(pk, :prefix)',
          ExpressionAttributeValues: { ':prefix': { S: prefix } },
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      start = page.LastEvaluatedKey;
      out.push(...(page.Items ?? []).map((i) => i.thingName?.S ?? ''));
    } while (start);
    return out;
  }
}
