import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { ConflictError, NotFoundError } from '../../core/errors';
import type { CaRecord, CaStore } from '../../core/ports';
import { DOCUMENT_CLIENT_CONFIG } from './dynamo-task-store';
import { isAwsError } from './sdk-errors';
import { CA_TABLE } from './tables';

const caNotFound = (caId: string, cause?: unknown): NotFoundError =>
  new NotFoundError('CA_NOT_FOUND', `CA ${caId} not found`, {
    ...(cause !== undefined ? { cause } : {}),
    details: { caId },
  });

/**
 * CaStore on one DynamoDB table (CA_TABLE; dynalite locally), one item per CA keyed by `caId`; the item is the
 * CaRecord as it is. No transactions (dynalite has none): every write is one conditional PutItem or UpdateItem. The
 * CA's key never comes here (CaKeyWriter / CaKeyStore).
 */
export class DynamoCaStore implements CaStore {
  private readonly doc: DynamoDBDocumentClient;

  constructor(
    client: DynamoDBClient,
    readonly tableName: string = CA_TABLE.tableName,
  ) {
    this.doc = DynamoDBDocumentClient.from(client, DOCUMENT_CLIENT_CONFIG);
  }

  async create(ca: CaRecord): Promise<void> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...ca },
          ConditionExpression: 'attribute_not_exists(caId)',
        }),
      );
    } catch (error) {
      if (isAwsError(error, 'ConditionalCheckFailedException')) {
        throw new ConflictError('CA_EXISTS', `CA ${ca.caId} already exists`, {
          cause: error,
          details: { caId: ca.caId },
        });
      }
      throw error;
    }
  }

  async get(caId: string): Promise<CaRecord | undefined> {
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { caId }, ConsistentRead: true }),
    );
    return Item as CaRecord | undefined;
  }

  /** Every CA (a Scan, all pages: CAs are few), oldest first. */
  async list(): Promise<CaRecord[]> {
    const cas: CaRecord[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.doc.send(
        new ScanCommand({
          TableName: this.tableName,
          ConsistentRead: true,
          ...(start !== undefined ? { ExclusiveStartKey: start } : {}),
        }),
      );
      cas.push(...((page.Items ?? []) as CaRecord[]));
      start = page.LastEvaluatedKey;
    } while (start !== undefined);
    return cas.sort((a, b) => compare(a.createdAt, b.createdAt) || compare(a.caId, b.caId));
  }

  /** One atomic `ADD crlNumber :one` (concurrent callers each get their own number). */
  async nextCrlNumber(caId: string): Promise<number> {
    try {
      const { Attributes } = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { caId },
          UpdateExpression: 'ADD crlNumber :one',
          ConditionExpression: 'attribute_exists(caId)',
          ExpressionAttributeValues: { ':one': 1 },
          ReturnValues: 'UPDATED_NEW',
        }),
      );
      const crlNumber = Attributes?.crlNumber;
      if (typeof crlNumber !== 'number') throw new Error(`CA ${caId}: UpdateItem returned no crlNumber`);
      return crlNumber;
    } catch (error) {
      if (isAwsError(error, 'ConditionalCheckFailedException')) throw caNotFound(caId, error);
      throw error;
    }
  }

  /** Marks the CA revoked once; false when it was revoked before; NotFoundError CA_NOT_FOUND for an unknown CA. */
  async markRevoked(caId: string, revokedAt: string, reason: string): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { caId },
          UpdateExpression: 'SET #status = :revoked, revokedAt = :at, revocationReason = :reason',
          ConditionExpression: 'attribute_exists(caId) AND #status <> :revoked',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':revoked': 'revoked', ':at': revokedAt, ':reason': reason },
        }),
      );
      return true;
    } catch (error) {
      if (!isAwsError(error, 'ConditionalCheckFailedException')) throw error;
      if (!(await this.get(caId))) throw caNotFound(caId, error);
      return false;
    }
  }
}

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
