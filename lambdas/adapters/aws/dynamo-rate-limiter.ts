import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { type ApiRates, RateLimitBacklogError } from '../../core/pacing';
import { type Clock, type RateLimitedApi, type RateLimiter, systemClock } from '../../core/ports';
import { DOCUMENT_CLIENT_CONFIG } from './dynamo-task-store';
import { defaultSleep, isAwsError } from './sdk-errors';
import { TASK_TABLE } from './tables';

/** The schedule item of an API in the task table. */
export const rateLimitPk = (api: RateLimitedApi): string => `rate#${api}`;

export interface DynamoRateLimiterOptions {
  clock?: Clock;
  sleep?: (ms: number) => Promise<void>;
  /** longest wait for a slot before RateLimitBacklogError (default 30 s: well inside a chunk's time budget) */
  maxWaitMs?: number;
}

/** Conditional writes per acquire before giving up (each lost race means another caller got a slot). */
const MAX_ROUNDS = 16;

/**
 * RateLimiter shared by every Lambda of a deployment: one item per API in the task table (`pk = rate#{api}`) holds
 * `nextFree`, the epoch ms at which the API's next call may start (GCRA; core/pacing.ts `reserveSlot`). A caller
 * takes the slot with one conditional UpdateItem, no read-modify-write and no transaction (dynalite has none):
 * - schedule ahead of now (busy): `SET nextFree = nextFree + interval` if `now <= nextFree <= now + maxWait` — the
 *   update is atomic, so concurrent callers get consecutive slots; the caller sleeps until its slot;
 * - schedule behind now (idle) or absent: `SET nextFree = now + interval` if `nextFree < now`.
 * When both conditions fail the schedule is either further ahead than `maxWait` (RateLimitBacklogError, nothing
 * reserved) or another caller moved it in between (try again).
 */
export class DynamoRateLimiter implements RateLimiter {
  private readonly doc: DynamoDBDocumentClient;
  private readonly clock: Clock;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly maxWaitMs: number;
  private busy = new Set<RateLimitedApi>();

  constructor(
    client: DynamoDBClient,
    private readonly rates: Partial<ApiRates>,
    readonly tableName: string = TASK_TABLE.tableName,
    options: DynamoRateLimiterOptions = {},
  ) {
    this.doc = DynamoDBDocumentClient.from(client, DOCUMENT_CLIENT_CONFIG);
    this.clock = options.clock ?? systemClock;
    this.sleep = options.sleep ?? defaultSleep;
    this.maxWaitMs = options.maxWaitMs ?? 30_000;
  }

  async acquire(api: RateLimitedApi): Promise<void> {
    const rate = this.rates[api];
    if (rate === undefined) return;
    const interval = 1000 / rate;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const now = this.clock.now().getTime();
      // try the branch that matched last time first: under load that is one write per call
      const order = this.busy.has(api) ? [true, false] : [false, true];
      for (const busy of order) {
        const start = busy ? await this.takeNext(api, interval, now) : await this.restart(api, interval, now);
        if (start === undefined) continue;
        if (busy) this.busy.add(api);
        else this.busy.delete(api);
        const wait = start - now;
        if (wait > 0) await this.sleep(wait);
        return;
      }
      const { Item } = await this.doc.send(
        new GetCommand({ TableName: this.tableName, Key: { pk: rateLimitPk(api) }, ConsistentRead: true }),
      );
      const nextFree = typeof Item?.nextFree === 'number' ? Item.nextFree : undefined;
      if (nextFree !== undefined && nextFree > now + this.maxWaitMs) {
        throw new RateLimitBacklogError(api, nextFree - now);
      }
    }
    throw new RateLimitBacklogError(api, 0);
  }

  /** Busy schedule: the slot after the last reserved one; undefined when the condition fails. */
  private async takeNext(api: RateLimitedApi, interval: number, now: number): Promise<number | undefined> {
    try {
      const { Attributes } = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: rateLimitPk(api) },
          UpdateExpression: 'SET nextFree = nextFree + :interval',
          ConditionExpression: 'nextFree BETWEEN :now AND :limit',
          ExpressionAttributeValues: { ':interval': interval, ':now': now, ':limit': now + this.maxWaitMs },
          ReturnValues: 'UPDATED_NEW',
        }),
      );
      const nextFree = Attributes?.nextFree;
      if (typeof nextFree !== 'number') throw new Error(`rate limit ${api}: UpdateItem returned no nextFree`);
      return nextFree - interval;
    } catch (error) {
      if (isAwsError(error, 'ConditionalCheckFailedException')) return undefined;
      throw error;
    }
  }

  /** Idle (or new) schedule: starts now; undefined when another caller is ahead. */
  private async restart(api: RateLimitedApi, interval: number, now: number): Promise<number | undefined> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: rateLimitPk(api) },
          UpdateExpression: 'SET nextFree = :next',
          ConditionExpression: 'attribute_not_exists(nextFree) OR nextFree < :now',
          ExpressionAttributeValues: { ':next': now + interval, ':now': now },
        }),
      );
      return now;
    } catch (error) {
      if (isAwsError(error, 'ConditionalCheckFailedException')) return undefined;
      throw error;
    }
  }
}
