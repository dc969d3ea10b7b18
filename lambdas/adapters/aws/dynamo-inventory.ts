/**
 * Inventory on one DynamoDB table (INVENTORY_TABLE; dynalite locally). No transactions and no BatchWriteItem (it
 * takes no conditions): every write is one conditional PutItem or UpdateItem.
 *
 * Item = the InventoryRecord + three derived key attributes (see INVENTORY_TABLE):
 * - `issuedKey = issuedAt#certificateId` (index `byIssuer`, partition `issuerId`);
 * - `expiryBucket = exp#{first hex digit of certificateId}` (16 shards) and `expiryKey = notAfter#certificateId`
 *   (index `byExpiry`).
 *
 * Pagination. A page holds up to `limit` items that match the query (status filter included): the adapter keeps
 * querying until the page is full or the index is exhausted, reads one item ahead so that the last page carries no
 * token, and the token resumes exactly after the last item returned — nothing is skipped or repeated, even when
 * items of the page are changed (e.g. revoked) before the next page is asked for. Tokens are base64url JSON:
 * - listByIssuer: the index key of the last item returned, `{ certificateId, issuerId, issuedKey }` (the
 *   ExclusiveStartKey of the next Query);
 * - listExpiring: `{ v: 1, after: { [shard]: expiryKey }, done: [shard …] }` — per shard (one hex digit) the
 *   expiryKey of the last item returned from it, or done when it has nothing left; shards in neither start from
 *   the beginning. The next page queries each shard after its position and merges the shards soonest first.
 * A token that does not decode to this shape is refused with ValidationError INVALID_NEXT_TOKEN.
 */
import { createHash } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { ValidationError } from '../../core/errors';
import type { Inventory, InventoryPage, InventoryQuery, InventoryRecord, InventoryStatus } from '../../core/ports';
import { DOCUMENT_CLIENT_CONFIG } from './dynamo-task-store';
import { isAwsError } from './sdk-errors';
import { INVENTORY_TABLE } from './tables';

/** The byIssuer index of INVENTORY_TABLE (partition issuerId, sort issuedKey). */
export const BY_ISSUER_INDEX = INVENTORY_TABLE.globalSecondaryIndexes![0]!.indexName;
/** The byExpiry index of INVENTORY_TABLE (partition expiryBucket, sort expiryKey). */
export const BY_EXPIRY_INDEX = INVENTORY_TABLE.globalSecondaryIndexes![1]!.indexName;

/** The expiry index's write shards: one per first hex digit of the certificate id. */
export const EXPIRY_SHARDS: readonly string[] = [...'0123456789abcdef'];
export const MAX_PAGE_LIMIT = 1000;
/** PutItem requests in flight at once in putIssued. */
export const PUT_CONCURRENCY = 16;
/** Items a filtered Query evaluates at least per request (a sparse status would otherwise take many round trips). */
const FILTERED_QUERY_LIMIT = 100;
/** Items a shard Query of listExpiring reads at least per request. */
const MIN_SHARD_QUERY_LIMIT = 10;

/** Attributes of the stored item that are not InventoryRecord fields. */
const STORAGE_ATTRIBUTES = ['issuedKey', 'expiryBucket', 'expiryKey', 'expiringNotified'] as const;

type Item = Record<string, unknown>;

/** The shard (one hex digit) of a certificate id; ids that are not lower-case hex go by their SHA-256. */
export function expiryShard(certificateId: string): string {
  const first = certificateId[0];
  if (first !== undefined && /^[0-9a-f]$/.test(first)) return first;
  return createHash('sha256').update(certificateId).digest('hex')[0]!;
}

export const expiryBucket = (shard: string): string => `exp#${shard}`;

/** `Date.toISOString()` of an ISO date, so that string order is time order; undefined when it is not a date. */
export function isoOrUndefined(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  // the records of one event share their dates: remember the last one per argument position (issuedAt, notAfter)
  const memo = lastIso.get(value);
  if (memo !== undefined) return memo.iso;
  const time = Date.parse(value);
  const iso = Number.isNaN(time) ? undefined : new Date(time).toISOString();
  if (lastIso.size >= 8) lastIso.clear();
  lastIso.set(value, { iso });
  return iso;
}
const lastIso = new Map<string, { iso: string | undefined }>();

/** The stored item of a record: the record and its derived key attributes. */
export function inventoryItem(record: InventoryRecord): Item {
  const { issuedKey, expiryKey } = inventorySortKeys(record);
  return {
    ...record,
    issuedKey,
    expiryBucket: expiryBucket(expiryShard(record.certificateId)),
    expiryKey,
  };
}

/**
 * The sort keys of a record (`issuedKey = issuedAt#certificateId`, `expiryKey = notAfter#certificateId`, dates
 * normalised), after checking it can have them. Throws INVALID_INVENTORY_RECORD.
 */
export function inventorySortKeys(record: InventoryRecord): { issuedKey: string; expiryKey: string } {
  const issuedAt = isoOrUndefined(record.issuedAt);
  const notAfter = isoOrUndefined(record.notAfter);
  if (typeof record.certificateId !== 'string' || record.certificateId === '' || record.certificateId.includes('#')) {
    throw new ValidationError('INVALID_INVENTORY_RECORD', `invalid certificate id ${String(record.certificateId)}`);
  }
  if (issuedAt === undefined || notAfter === undefined || typeof record.issuerId !== 'string' || !record.issuerId) {
    throw new ValidationError(
      'INVALID_INVENTORY_RECORD',
      `certificate ${record.certificateId} needs an issuerId and ISO dates issuedAt and notAfter`,
      { details: { certificateId: record.certificateId } },
    );
  }
  return { issuedKey: `${issuedAt}#${record.certificateId}`, expiryKey: `${notAfter}#${record.certificateId}` };
}

export function toRecord(item: Item): InventoryRecord {
  const record: Item = { ...item };
  for (const name of STORAGE_ATTRIBUTES) delete record[name];
  return record as unknown as InventoryRecord;
}

export function checkLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE_LIMIT) {
    throw new ValidationError(
      'INVALID_LIMIT',
      `limit must be a whole number from 1 to ${MAX_PAGE_LIMIT} (got ${limit})`,
    );
  }
}

export const invalidToken = (): ValidationError =>
  new ValidationError('INVALID_NEXT_TOKEN', 'nextToken is not a token this listing returned');

export const encodeToken = (value: unknown): string => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');

export function decodeToken(token: string): unknown {
  if (typeof token !== 'string' || !/^[A-Za-z0-9_-]+$/.test(token)) throw invalidToken();
  try {
    return JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as unknown;
  } catch {
    throw invalidToken();
  }
}

export const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** `{date}#{certificateId}` with a normalised date and a certificate id; returns the id. */
export function sortKeyId(key: unknown): string | undefined {
  if (typeof key !== 'string') return undefined;
  const hash = key.indexOf('#');
  if (hash < 0) return undefined;
  const date = key.slice(0, hash);
  const id = key.slice(hash + 1);
  return id !== '' && !id.includes('#') && isoOrUndefined(date) === date ? id : undefined;
}

interface IssuerKey {
  certificateId: string;
  issuerId: string;
  issuedKey: string;
}

function decodeIssuerToken(token: string, issuerId: string): IssuerKey {
  const key = decodeToken(token);
  if (!isPlainObject(key) || Object.keys(key).length !== 3 || key.issuerId !== issuerId) throw invalidToken();
  const { certificateId, issuedKey } = key;
  if (typeof certificateId !== 'string' || sortKeyId(issuedKey) !== certificateId) throw invalidToken();
  return { certificateId, issuerId, issuedKey: issuedKey as string };
}

/** Per shard: the expiryKey of the last item returned, 'done', or absent (from the beginning). */
type ShardPositions = Map<string, string | 'done'>;

function decodeExpiryToken(token: string): ShardPositions {
  const value = decodeToken(token);
  if (!isPlainObject(value) || value.v !== 1 || !isPlainObject(value.after) || !Array.isArray(value.done)) {
    throw invalidToken();
  }
  const positions: ShardPositions = new Map();
  for (const [shard, expiryKey] of Object.entries(value.after)) {
    const id = sortKeyId(expiryKey);
    if (!EXPIRY_SHARDS.includes(shard) || id === undefined || expiryShard(id) !== shard) throw invalidToken();
    positions.set(shard, expiryKey as string);
  }
  for (const shard of value.done) {
    if (typeof shard !== 'string' || !EXPIRY_SHARDS.includes(shard) || positions.has(shard)) throw invalidToken();
    positions.set(shard, 'done');
  }
  return positions;
}

function encodeExpiryToken(positions: ShardPositions): string {
  const after: Record<string, string> = {};
  const done: string[] = [];
  for (const shard of EXPIRY_SHARDS) {
    const position = positions.get(shard);
    if (position === 'done') done.push(shard);
    else if (position !== undefined) after[shard] = position;
  }
  return encodeToken({ v: 1, after, done });
}

/** Runs `fn` over `items`, at most `limit` at a time; stops starting new ones after a failure and throws it. */
async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
}

/** One shard of a listExpiring merge: items read but not yet returned, and where the next Query starts. */
interface ShardCursor {
  shard: string;
  buffer: Item[];
  /** ExclusiveStartKey of the next Query; undefined with `exhausted` */
  start?: Item;
  exhausted: boolean;
}

export class DynamoInventory implements Inventory {
  protected readonly doc: DynamoDBDocumentClient;

  constructor(
    client: DynamoDBClient,
    readonly tableName: string = INVENTORY_TABLE.tableName,
  ) {
    this.doc = DynamoDBDocumentClient.from(client, DOCUMENT_CLIENT_CONFIG);
  }

  /**
   * One conditional PutItem per record (PUT_CONCURRENCY in flight). A record that exists is left as it is: a
   * replayed `Certificate Issued` event neither overwrites nor un-revokes anything.
   */
  async putIssued(records: InventoryRecord[]): Promise<void> {
    const items = records.map(inventoryItem); // validate all before writing any
    await forEachLimited(items, PUT_CONCURRENCY, async (item) => {
      try {
        await this.doc.send(
          new PutCommand({
            TableName: this.tableName,
            Item: item,
            ConditionExpression: 'attribute_not_exists(certificateId)',
          }),
        );
      } catch (error) {
        if (!isAwsError(error, 'ConditionalCheckFailedException')) throw error;
      }
    });
  }

  async get(certificateId: string): Promise<InventoryRecord | undefined> {
    const item = await this.getItem(certificateId);
    return item ? toRecord(item) : undefined;
  }

  async listByIssuer(issuerId: string, query: InventoryQuery): Promise<InventoryPage> {
    checkLimit(query.limit);
    const { limit, status } = query;
    let start: Item | undefined =
      query.nextToken !== undefined ? { ...decodeIssuerToken(query.nextToken, issuerId) } : undefined;
    const items: Item[] = [];
    for (;;) {
      // one more than needed, to know whether another page exists
      const wanted = limit + 1 - items.length;
      const page = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: BY_ISSUER_INDEX,
          KeyConditionExpression: 'issuerId = :issuerId',
          ExpressionAttributeValues: { ':issuerId': issuerId, ...statusValues(status) },
          ...statusFilter(status),
          Limit: status !== undefined ? Math.max(wanted, FILTERED_QUERY_LIMIT) : wanted,
          ...(start !== undefined ? { ExclusiveStartKey: start } : {}),
        }),
      );
      items.push(...(page.Items ?? []));
      if (items.length > limit) {
        const returned = items.slice(0, limit);
        const last = returned[returned.length - 1]!;
        return {
          items: returned.map(toRecord),
          nextToken: encodeToken({ certificateId: last.certificateId, issuerId, issuedKey: last.issuedKey }),
        };
      }
      start = page.LastEvaluatedKey;
      if (start === undefined) return { items: items.map(toRecord) };
    }
  }

  /**
   * Queries the 16 shards of the byExpiry index (`expiryKey < before`) and merges them soonest first (notAfter, then
   * certificate id). Each shard is read in slices about its share of the page and refilled when its slice runs
   * out, so a page reads little more than it returns.
   */
  async listExpiring(before: string, query: InventoryQuery): Promise<InventoryPage> {
    checkLimit(query.limit);
    const beforeIso = isoOrUndefined(before);
    if (beforeIso === undefined) {
      throw new ValidationError('INVALID_DATE', `before must be an ISO date (got ${String(before)})`);
    }
    const { limit, status } = query;
    const positions: ShardPositions = query.nextToken !== undefined ? decodeExpiryToken(query.nextToken) : new Map();
    const cursors: ShardCursor[] = [];
    for (const shard of EXPIRY_SHARDS) {
      const position = positions.get(shard);
      if (position === 'done') continue;
      cursors.push({
        shard,
        buffer: [],
        exhausted: false,
        ...(position !== undefined
          ? { start: { expiryBucket: expiryBucket(shard), expiryKey: position, certificateId: sortKeyId(position) } }
          : {}),
      });
    }

    const returned: Item[] = [];
    for (;;) {
      const wanted = limit + 1 - returned.length; // one ahead, to know whether another page exists
      const refill = cursors.filter((c) => c.buffer.length === 0 && !c.exhausted);
      await Promise.all(refill.map((cursor) => this.readShard(cursor, beforeIso, status, wanted)));
      let next: ShardCursor | undefined;
      for (const cursor of cursors) {
        const head = cursor.buffer[0];
        if (head !== undefined && (next === undefined || String(head.expiryKey) < String(next.buffer[0]!.expiryKey))) {
          next = cursor;
        }
      }
      if (next === undefined) break; // every shard exhausted
      if (returned.length === limit) {
        // there is at least one more item: the token resumes each shard after the last item returned from it
        for (const cursor of cursors) {
          if (cursor.buffer.length === 0 && cursor.exhausted) positions.set(cursor.shard, 'done');
        }
        return { items: returned.map(toRecord), nextToken: encodeExpiryToken(positions) };
      }
      const item = next.buffer.shift()!;
      returned.push(item);
      positions.set(next.shard, String(item.expiryKey));
    }
    return { items: returned.map(toRecord) };
  }

  /**
   * Marks a certificate revoked once (conditional UpdateItem); when the condition fails a consistent read tells a
   * certificate revoked before (`already`) from an unknown one (`missing`).
   */
  async markRevoked(
    certificateId: string,
    revokedAt: string,
    reason: string,
  ): Promise<'revoked' | 'already' | 'missing'> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { certificateId },
          UpdateExpression: 'SET #status = :revoked, revokedAt = :at, revocationReason = :reason',
          ConditionExpression: 'attribute_exists(certificateId) AND #status <> :revoked',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':revoked': 'revoked', ':at': revokedAt, ':reason': reason },
        }),
      );
      return 'revoked';
    } catch (error) {
      if (!isAwsError(error, 'ConditionalCheckFailedException')) throw error;
    }
    return (await this.getItem(certificateId)) ? 'already' : 'missing';
  }

  async markExpiringNotified(certificateId: string, window: string): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { certificateId },
          // a string set of the windows notified: each window once, whatever other windows ran in between
          UpdateExpression: 'ADD expiringNotified :windows',
          ConditionExpression: 'attribute_exists(certificateId) AND NOT contains(expiringNotified, :window)',
          ExpressionAttributeValues: { ':windows': new Set([window]), ':window': window },
        }),
      );
      return true;
    } catch (error) {
      if (isAwsError(error, 'ConditionalCheckFailedException')) return false;
      throw error;
    }
  }

  /** Reads the next slice of one shard into its buffer (Queries again while a filter leaves the slice empty). */
  private async readShard(
    cursor: ShardCursor,
    before: string,
    status: InventoryStatus | undefined,
    wanted: number,
  ): Promise<void> {
    const share = Math.max(MIN_SHARD_QUERY_LIMIT, Math.ceil((2 * wanted) / EXPIRY_SHARDS.length));
    const limit = Math.min(wanted, share);
    while (cursor.buffer.length === 0 && !cursor.exhausted) {
      const page = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: BY_EXPIRY_INDEX,
          KeyConditionExpression: 'expiryBucket = :bucket AND expiryKey < :before',
          ExpressionAttributeValues: {
            ':bucket': expiryBucket(cursor.shard),
            ':before': before,
            ...statusValues(status),
          },
          ...statusFilter(status),
          Limit: status !== undefined ? Math.max(limit, FILTERED_QUERY_LIMIT) : limit,
          ...(cursor.start !== undefined ? { ExclusiveStartKey: cursor.start } : {}),
        }),
      );
      cursor.buffer.push(...(page.Items ?? []));
      cursor.start = page.LastEvaluatedKey;
      cursor.exhausted = page.LastEvaluatedKey === undefined;
    }
  }

  private async getItem(certificateId: string): Promise<Item | undefined> {
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { certificateId }, ConsistentRead: true }),
    );
    return Item;
  }
}

const statusFilter = (
  status: InventoryStatus | undefined,
): { FilterExpression?: string; ExpressionAttributeNames?: Record<string, string> } =>
  status !== undefined
    ? { FilterExpression: '#status = :status', ExpressionAttributeNames: { '#status': 'status' } }
    : {};

const statusValues = (status: InventoryStatus | undefined): Record<string, unknown> =>
  status !== undefined ? { ':status': status } : {};
