import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type TranslateConfig,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { ConflictError, NotFoundError, ValidationError } from '../../core/errors';
import { type BatchTask, type Clock, systemClock, type TaskStatus, type TaskStore } from '../../core/ports';
import { isAwsError } from './sdk-errors';
import { TASK_TABLE } from './tables';

/** The byStatus index of TASK_TABLE (partition gsi1pk = status, sort createdAt). */
export const BY_STATUS_INDEX = TASK_TABLE.globalSecondaryIndexes![0]!.indexName;

/**
 * Marshalling of the document client:
 * - `removeUndefinedValues`: optional BatchTask fields may be present as `undefined` (util-dynamodb throws otherwise);
 * - no `convertEmptyValues`: it would turn an empty Set into NULL, which `ADD` rejects. doneChunks is never
 *   written empty: it does not exist until the first `ADD`.
 * - numbers are plain JS numbers (no `wrapNumbers`): counts and chunk indexes are far below 2^53.
 * A JS `Set<number>` marshals to a number set (NS) and an NS reads back as `Set<number>`.
 */
export const DOCUMENT_CLIENT_CONFIG: TranslateConfig = {
  marshallOptions: { removeUndefinedValues: true, convertEmptyValues: false },
  unmarshallOptions: { wrapNumbers: false },
};

const taskPk = (taskId: string): string => `task#${taskId}`;
const idemPk = (scope: string, key: string): string => `idem#${scope}#${key}`;
const leasePk = (taskId: string, chunkIndex: number): string => `lease#${taskId}#${chunkIndex}`;

/** The fields setStatus may change besides the status (and updatedAt). */
const SETTABLE_FIELDS = ['error', 'completedAt', 'zipKey', 'zipSize'] as const;

/** Attributes of the stored item that are not BatchTask fields. */
const STORAGE_ATTRIBUTES = ['pk', 'gsi1pk', 'doneChunks'] as const;

function toTask(item: Record<string, unknown>): BatchTask {
  const task: Record<string, unknown> = { ...item };
  for (const name of STORAGE_ATTRIBUTES) delete task[name];
  return task as unknown as BatchTask;
}

function checkChunkIndex(chunkIndex: number): void {
  if (!Number.isSafeInteger(chunkIndex) || chunkIndex < 0) {
    throw new ValidationError('INVALID_CHUNK_INDEX', `chunk index must be a whole number ≥ 0 (got ${chunkIndex})`);
  }
}

/**
 * TaskStore on one DynamoDB table (TASK_TABLE). No transactions (dynalite has none): every operation is one
 * conditional write or a read.
 */
export class DynamoTaskStore implements TaskStore {
  private readonly doc: DynamoDBDocumentClient;

  constructor(
    client: DynamoDBClient,
    readonly tableName: string = TASK_TABLE.tableName,
    private readonly clock: Clock = systemClock,
  ) {
    this.doc = DynamoDBDocumentClient.from(client, DOCUMENT_CLIENT_CONFIG);
  }

  async create(task: BatchTask): Promise<void> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...task, pk: taskPk(task.taskId), gsi1pk: task.status },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
    } catch (error) {
      if (isAwsError(error, 'ConditionalCheckFailedException')) {
        throw new ConflictError('TASK_EXISTS', `task ${task.taskId} already exists`, {
          cause: error,
          details: { taskId: task.taskId },
        });
      }
      throw error;
    }
  }

  async get(taskId: string): Promise<BatchTask | undefined> {
    const item = await this.getItem(taskId);
    return item ? toTask(item) : undefined;
  }

  async claimIdempotencyKey(
    scope: string,
    key: string,
    taskId: string,
    fingerprint: string,
  ): Promise<{ taskId: string; fingerprint: string } | undefined> {
    const pk = idemPk(scope, key);
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { pk, taskId, fingerprint, createdAt: this.clock.now().toISOString() },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return undefined;
    } catch (error) {
      if (!isAwsError(error, 'ConditionalCheckFailedException')) throw error;
    }
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { pk }, ConsistentRead: true }),
    );
    if (!Item) throw new Error(`idempotency key ${scope}/${key} was claimed but cannot be read back`);
    return { taskId: String(Item.taskId), fingerprint: String(Item.fingerprint) };
  }

  async setStatus(
    taskId: string,
    status: TaskStatus,
    fields: Partial<Pick<BatchTask, 'error' | 'completedAt' | 'zipKey' | 'zipSize'>> = {},
  ): Promise<void> {
    const names: Record<string, string> = { '#status': 'status' };
    const values: Record<string, unknown> = { ':status': status, ':now': this.clock.now().toISOString() };
    const sets = ['#status = :status', 'gsi1pk = :status', 'updatedAt = :now'];
    for (const field of SETTABLE_FIELDS) {
      const value = fields[field];
      if (value === undefined) continue;
      names[`#${field}`] = field;
      values[`:${field}`] = value;
      sets.push(`#${field} = :${field}`);
    }
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: taskPk(taskId) },
          UpdateExpression: `SET ${sets.join(', ')}`,
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        }),
      );
    } catch (error) {
      if (isAwsError(error, 'ConditionalCheckFailedException')) throw this.notFound(taskId, error);
      throw error;
    }
  }

  /**
   * One conditional UpdateItem: decrements chunksPending and adds the chunk index to the doneChunks number set
   * unless the set already holds it. A replayed chunk fails the condition and gets the current count back.
   */
  async completeChunk(taskId: string, chunkIndex: number, registered?: number): Promise<number> {
    checkChunkIndex(chunkIndex);
    const values: Record<string, unknown> = {
      ':one': 1,
      ':now': this.clock.now().toISOString(),
      ':idxSet': new Set([chunkIndex]),
      ':idx': chunkIndex,
      ...(registered !== undefined ? { ':n': registered } : {}),
    };
    try {
      const { Attributes } = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: taskPk(taskId) },
          UpdateExpression:
            'SET chunksPending = chunksPending - :one, updatedAt = :now ADD doneChunks :idxSet' +
            (registered !== undefined ? ', registered :n' : ''),
          ConditionExpression: 'attribute_exists(pk) AND NOT contains(doneChunks, :idx)',
          ExpressionAttributeValues: values,
          ReturnValues: 'UPDATED_NEW',
        }),
      );
      const pending = Attributes?.chunksPending;
      if (typeof pending !== 'number') throw new Error(`task ${taskId}: UpdateItem returned no chunksPending`);
      return pending;
    } catch (error) {
      if (!isAwsError(error, 'ConditionalCheckFailedException')) throw error;
      const item = await this.getItem(taskId);
      if (!item) throw this.notFound(taskId, error);
      if (!doneChunks(item).has(chunkIndex)) throw error; // cannot happen: the set only grows
      return Number(item.chunksPending);
    }
  }

  async isChunkDone(taskId: string, chunkIndex: number): Promise<boolean> {
    checkChunkIndex(chunkIndex);
    const { Item } = await this.doc.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { pk: taskPk(taskId) },
        ProjectionExpression: 'doneChunks',
        ConsistentRead: true,
      }),
    );
    return Item ? doneChunks(Item).has(chunkIndex) : false;
  }

  /**
   * One conditional PutItem on `lease#{taskId}#{index}`: taken when absent, expired, or held by the same attempt.
   * The item carries `ttl` (epoch seconds, a day after the lease) for a TTL attribute to clean up.
   */
  async claimChunk(taskId: string, chunkIndex: number, attemptId: string, untilMs: number): Promise<boolean> {
    checkChunkIndex(chunkIndex);
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            pk: leasePk(taskId, chunkIndex),
            attemptId,
            expiresAt: untilMs,
            ttl: Math.ceil(untilMs / 1000) + 86_400,
          },
          ConditionExpression: 'attribute_not_exists(pk) OR expiresAt < :now OR attemptId = :attempt',
          ExpressionAttributeValues: { ':now': this.clock.now().getTime(), ':attempt': attemptId },
        }),
      );
      return true;
    } catch (error) {
      if (isAwsError(error, 'ConditionalCheckFailedException')) return false;
      throw error;
    }
  }

  async releaseChunk(taskId: string, chunkIndex: number, attemptId: string): Promise<void> {
    checkChunkIndex(chunkIndex);
    try {
      // expired now; the item itself goes with its ttl
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: leasePk(taskId, chunkIndex) },
          UpdateExpression: 'SET expiresAt = :zero',
          ConditionExpression: 'attemptId = :attempt',
          ExpressionAttributeValues: { ':attempt': attemptId, ':zero': 0 },
        }),
      );
    } catch (error) {
      if (!isAwsError(error, 'ConditionalCheckFailedException')) throw error; // taken over since: not ours
    }
  }

  /** Queries the byStatus index once per status (all pages) and merges the results oldest first. */
  async listByStatus(statuses: TaskStatus[]): Promise<BatchTask[]> {
    const tasks: BatchTask[] = [];
    for (const status of new Set(statuses)) {
      let start: Record<string, unknown> | undefined;
      do {
        const page = await this.doc.send(
          new QueryCommand({
            TableName: this.tableName,
            IndexName: BY_STATUS_INDEX,
            KeyConditionExpression: 'gsi1pk = :status',
            ExpressionAttributeValues: { ':status': status },
            ...(start !== undefined ? { ExclusiveStartKey: start } : {}),
          }),
        );
        for (const item of page.Items ?? []) tasks.push(toTask(item));
        start = page.LastEvaluatedKey;
      } while (start !== undefined);
    }
    return tasks.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));
  }

  private async getItem(taskId: string): Promise<Record<string, unknown> | undefined> {
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { pk: taskPk(taskId) }, ConsistentRead: true }),
    );
    return Item;
  }

  private notFound(taskId: string, cause?: unknown): NotFoundError {
    return new NotFoundError('TASK_NOT_FOUND', `task ${taskId} not found`, {
      ...(cause !== undefined ? { cause } : {}),
      details: { taskId },
    });
  }
}

function doneChunks(item: Record<string, unknown>): Set<number> {
  const value = item.doneChunks;
  if (value instanceof Set) return new Set([...(value as Set<unknown>)].map(Number));
  return new Set();
}
