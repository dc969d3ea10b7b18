import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
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
 * - no `convertEmptyValues`: it would turn an empty Set into NULL, which `ADD` rejects. A shard's `done` set is
 *   never written empty: it does not exist until the first `ADD`.
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

/**
 * Chunks per done shard. A shard item holds the offsets (index − shard × DONE_SHARD_SIZE, 0–999: at most 3 bytes
 * each) of its finished chunks, so it stays under ~4 KB whatever the batch size: a completion costs a few write
 * units, not one per KB of every chunk done so far, and the 400 KB item limit is never near.
 */
export const DONE_SHARD_SIZE = 1000;
export const doneShardPk = (taskId: string, shard: number): string => `task#${taskId}#done#${shard}`;
const shardOf = (chunkIndex: number) => ({
  shard: Math.floor(chunkIndex / DONE_SHARD_SIZE),
  offset: chunkIndex % DONE_SHARD_SIZE,
});
/** BatchGetItem reads at most 100 keys per request. */
const BATCH_GET_SIZE = 100;
/** Rounds of BatchGetItem for keys DynamoDB left unprocessed (throttling) before giving up. */
const UNPROCESSED_ROUNDS = 8;

/** The fields setStatus may change besides the status (and updatedAt). */
const SETTABLE_FIELDS = ['error', 'completedAt', 'zipKey', 'zipSize'] as const;

/**
 * Attributes of the stored item that are not BatchTask fields. `doneChunks` is the number set older versions kept on
 * the task item itself (read for tasks they stored, never written).
 */
const STORAGE_ATTRIBUTES = ['pk', 'gsi1pk', 'doneChunks'] as const;
/** BatchTask fields that are not stored on the task item: the sums over its done shards. */
const COUNTED_FIELDS = ['chunksPending', 'registered'] as const;

/** What a task's done shards add up to. */
interface ShardCounts {
  done: number;
  registered?: number;
}

/**
 * The task of a stored item with its counts. A task stored by an older version counted its chunks on the item
 * (`doneChunks`, `registered`): its chunks redone since (a resumed batch redoes the bookkeeping of every chunk) are in
 * the shards as well, so the larger of the two counts is the one that holds.
 */
function toTask(item: Record<string, unknown>, counts: ShardCounts): BatchTask {
  const task: Record<string, unknown> = { ...item };
  for (const name of [...STORAGE_ATTRIBUTES, ...COUNTED_FIELDS]) delete task[name];
  const legacy =
    item.doneChunks instanceof Set ? { done: item.doneChunks.size, registered: item.registered } : undefined;
  task.chunksPending = Number(item.chunksTotal) - Math.max(counts.done, legacy?.done ?? 0);
  const registered = [counts.registered, legacy?.registered].filter((n): n is number => typeof n === 'number');
  if (registered.length > 0) task.registered = Math.max(...registered);
  return task as unknown as BatchTask;
}

function checkChunkIndex(chunkIndex: number): void {
  if (!Number.isSafeInteger(chunkIndex) || chunkIndex < 0) {
    throw new ValidationError('INVALID_CHUNK_INDEX', `chunk index must be a whole number ≥ 0 (got ${chunkIndex})`);
  }
}

/**
 * TaskStore on one DynamoDB table (TASK_TABLE). No transactions (dynalite has none): every write is one conditional
 * write of one item.
 *
 * Chunk progress is not on the task item: chunk `i` is counted in its done shard `task#{id}#done#{⌊i/1000⌋}` (a
 * number set of offsets, a done count and the registered count), written by one conditional UpdateItem per chunk.
 * The task's `chunksPending` and `registered` are the sums over its shards, read with the task (`get`,
 * `listByStatus`): authoritative, with nothing to keep in step on a replay, and the children of a Distributed Map
 * write to as many items as the batch has shards instead of all to one.
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

  /** Puts the task item; `chunksPending` and `registered` are not stored (the shards count them). */
  async create(task: BatchTask): Promise<void> {
    const item: Record<string, unknown> = { ...task, pk: taskPk(task.taskId), gsi1pk: task.status };
    for (const name of COUNTED_FIELDS) delete item[name];
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: item,
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

  /** The task item (consistent read), then its done shards (one BatchGetItem per 100 shards) for the counts. */
  async get(taskId: string): Promise<BatchTask | undefined> {
    const item = await this.getItem(taskId);
    if (!item) return undefined;
    const [task] = await this.withCounts([item]);
    return task;
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
   * One conditional UpdateItem on the chunk's done shard: adds the chunk's offset to the shard's number set and
   * counts it (and its registered certificates) unless the set holds it already. A replayed chunk fails the
   * condition and changes nothing. The shard item is created by the first completion in it. The task item is not
   * read or written: completing a chunk of a task that does not exist records it in a shard nothing reads.
   */
  async completeChunk(taskId: string, chunkIndex: number, registered?: number): Promise<boolean> {
    checkChunkIndex(chunkIndex);
    const { shard, offset } = shardOf(chunkIndex);
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: doneShardPk(taskId, shard) },
          UpdateExpression:
            'SET updatedAt = :now ADD done :offsets, doneCount :one' +
            (registered !== undefined ? ', registered :n' : ''),
          ConditionExpression: 'NOT contains(done, :offset)',
          ExpressionAttributeValues: {
            ':now': this.clock.now().toISOString(),
            ':offsets': new Set([offset]),
            ':one': 1,
            ':offset': offset,
            ...(registered !== undefined ? { ':n': registered } : {}),
          },
        }),
      );
      return true;
    } catch (error) {
      if (isAwsError(error, 'ConditionalCheckFailedException')) return false; // counted before: a replay
      throw error;
    }
  }

  /** Reads the chunk's done shard (its number set; ~4 KB at most). */
  async isChunkDone(taskId: string, chunkIndex: number): Promise<boolean> {
    checkChunkIndex(chunkIndex);
    const { shard, offset } = shardOf(chunkIndex);
    const { Item } = await this.doc.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { pk: doneShardPk(taskId, shard) },
        ProjectionExpression: 'done',
        ConsistentRead: true,
      }),
    );
    const done = Item?.done;
    return done instanceof Set && (done as Set<unknown>).has(offset);
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

  /**
   * Queries the byStatus index once per status (all pages), reads the tasks' done shards, and merges the results
   * oldest first.
   */
  async listByStatus(statuses: TaskStatus[]): Promise<BatchTask[]> {
    const items: Record<string, unknown>[] = [];
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
        items.push(...(page.Items ?? []));
        start = page.LastEvaluatedKey;
      } while (start !== undefined);
    }
    const tasks = await this.withCounts(items);
    return tasks.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));
  }

  /** The tasks of these items with their counts from the done shards. */
  private async withCounts(items: Record<string, unknown>[]): Promise<BatchTask[]> {
    const counts = await this.shardCounts(items);
    return items.map((item) => toTask(item, counts.get(String(item.taskId)) ?? { done: 0 }));
  }

  /**
   * The sums over the done shards of these task items (by task id): BatchGetItem, consistent, 100 keys a request,
   * projecting only the counts; keys DynamoDB leaves unprocessed are asked again with a short backoff. A shard that
   * does not exist yet counts nothing.
   */
  private async shardCounts(items: Record<string, unknown>[]): Promise<Map<string, ShardCounts>> {
    const counts = new Map<string, ShardCounts>();
    const owner = new Map<string, string>();
    for (const item of items) {
      const taskId = String(item.taskId);
      counts.set(taskId, { done: 0 });
      const shards = Math.ceil(Number(item.chunksTotal) / DONE_SHARD_SIZE);
      for (let shard = 0; shard < shards; shard++) owner.set(doneShardPk(taskId, shard), taskId);
    }
    const keys = [...owner.keys()];
    for (let i = 0; i < keys.length; i += BATCH_GET_SIZE) {
      let pending: Record<string, unknown>[] = keys.slice(i, i + BATCH_GET_SIZE).map((pk) => ({ pk }));
      for (let round = 0; pending.length > 0; round++) {
        if (round === UNPROCESSED_ROUNDS) {
          throw new Error(`DynamoDB left ${pending.length} done shards unread after ${round} BatchGetItem rounds`);
        }
        if (round > 0) await new Promise((resolve) => setTimeout(resolve, 25 * 2 ** round * Math.random()));
        const output = await this.doc.send(
          new BatchGetCommand({
            RequestItems: {
              [this.tableName]: {
                Keys: pending,
                ConsistentRead: true,
                ProjectionExpression: 'pk, doneCount, registered',
              },
            },
          }),
        );
        for (const shard of output.Responses?.[this.tableName] ?? []) {
          const taskCounts = counts.get(owner.get(String(shard.pk)) ?? '');
          if (!taskCounts) continue;
          taskCounts.done += Number(shard.doneCount ?? 0);
          if (shard.registered !== undefined)
            taskCounts.registered = (taskCounts.registered ?? 0) + Number(shard.registered);
        }
        pending = output.UnprocessedKeys?.[this.tableName]?.Keys ?? [];
      }
    }
    return counts;
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
