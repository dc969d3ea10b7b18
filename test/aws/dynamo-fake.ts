/**
 * In-memory DynamoDB tables behind a DynamoDBDocumentClient mock, for the handler tests that need a request to read
 * back what an earlier one wrote (a CA created then loaded, a replayed event meeting the first delivery's write).
 *
 * Strict on purpose: the fake knows only the expressions the adapters send, and each test file says which of them
 * its handlers may send (the indexes it may query, the updates it may make, whether it may scan). Any other table,
 * condition, key condition, filter or update expression throws, so a changed expression fails the test even where
 * no input assertion looks at it.
 */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  type BatchGetCommandInput,
  GetCommand,
  type GetCommandInput,
  PutCommand,
  type PutCommandInput,
  QueryCommand,
  type QueryCommandInput,
  ScanCommand,
  type ScanCommandInput,
  UpdateCommand,
  type UpdateCommandInput,
} from '@aws-sdk/lib-dynamodb';
import type { MetadataBearer } from '@smithy/types';
import type { AwsStub } from 'aws-sdk-client-mock';
import { cmd } from './sdk-mock';

export type Item = Record<string, unknown>;

/** A secondary index: its partition and sort attributes, and the one key condition the adapter queries it with. */
export interface IndexSpec {
  partition: string;
  sort: string;
  condition: string;
  /** The expression value the partition is compared to (`:issuerId`). */
  partitionValue: string;
  /** The expression value the sort key must be below, when the condition has one (`:before`). */
  sortBelow?: string;
}

/** An update the adapter sends: its exact expressions, and what it does to the item (absent: undefined). */
export interface UpdateSpec {
  update: string;
  /** The condition, given the table's key attribute. */
  condition: (key: string) => string;
  /** Applies the update, or throws ConditionalCheckFailedException as DynamoDB would; returns the response. */
  apply: (item: Item | undefined, values: Record<string, unknown>) => object;
}

export const conditionFailed = (): ConditionalCheckFailedException =>
  new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });

export const clone = <T>(value: T): T => structuredClone(value);

/** The inventory's index by issuer (DynamoInventory, DynamoCaStore). */
export const BY_ISSUER: Record<string, IndexSpec> = {
  byIssuer: {
    partition: 'issuerId',
    sort: 'issuedKey',
    condition: 'issuerId = :issuerId',
    partitionValue: ':issuerId',
  },
};

/** The inventory's index by expiry shard (the expiry sweep). */
export const BY_EXPIRY: Record<string, IndexSpec> = {
  byExpiry: {
    partition: 'expiryBucket',
    sort: 'expiryKey',
    condition: 'expiryBucket = :bucket AND expiryKey < :before',
    partitionValue: ':bucket',
    sortBelow: ':before',
  },
};

/** DynamoCaStore's next CRL number. */
export const CRL_NUMBER_UPDATE: UpdateSpec = {
  update: 'ADD crlNumber :one',
  condition: () => 'attribute_exists(caId)',
  apply: (item, values) => {
    if (!item) throw conditionFailed();
    item.crlNumber = Number(item.crlNumber ?? 0) + Number(values[':one']);
    return { Attributes: { crlNumber: item.crlNumber } };
  },
};

export const REVOKE_UPDATE = 'SET #status = :revoked, revokedAt = :at, revocationReason = :reason';

/** A CA or a certificate revoked once (DynamoCaStore, DynamoInventory). */
export const REVOKE: UpdateSpec = {
  update: REVOKE_UPDATE,
  condition: (key) => `attribute_exists(${key}) AND #status <> :revoked`,
  apply: (item, values) => {
    if (!item || item.status === values[':revoked']) throw conditionFailed();
    Object.assign(item, { status: values[':revoked'], revokedAt: values[':at'], revocationReason: values[':reason'] });
    return {};
  },
};

export const NOTIFY_UPDATE = 'ADD expiringNotified :windows';
export const NOTIFY_CONDITION = 'attribute_exists(certificateId) AND NOT contains(expiringNotified, :window)';

/** An expiry window notified once per certificate (DynamoInventory.markExpiringNotified). */
export const EXPIRY_NOTICE: UpdateSpec = {
  update: NOTIFY_UPDATE,
  condition: () => NOTIFY_CONDITION,
  apply: (item, values) => {
    const notified = (item?.expiringNotified as Set<string> | undefined) ?? new Set<string>();
    if (!item || notified.has(values[':window'] as string)) throw conditionFailed();
    item.expiringNotified = new Set([...notified, ...(values[':windows'] as Set<string>)]);
    return {};
  },
};

export interface TablesOptions {
  /** Each table's key attribute (a test may add a table later through `keys`). */
  keys: Record<string, string>;
  indexes?: Record<string, IndexSpec>;
  updates?: UpdateSpec[];
  /** Whether the handlers may Scan (answered in one page). */
  scan?: boolean;
}

/** The tables, their rows by key, and the mock's answers (install after every mockReset). */
export class FakeTables {
  readonly keys: Record<string, string>;
  private readonly rowsByTable = new Map<string, Map<string, Item>>();

  constructor(
    private readonly docMock: AwsStub<object, MetadataBearer, unknown>,
    private readonly options: TablesOptions,
  ) {
    this.keys = options.keys;
  }

  /** The rows of a known table and its key attribute; an unknown table throws. */
  table(name: string | undefined): { rows: Map<string, Item>; key: string } {
    const key = this.keys[name ?? ''];
    if (!key) throw new Error(`the fake has no table ${String(name)}`);
    let rows = this.rowsByTable.get(name!);
    if (!rows) this.rowsByTable.set(name!, (rows = new Map()));
    return { rows, key };
  }

  /** Stores copies of the items as they are, as if written before the test. */
  put(tableName: string, ...items: Item[]): void {
    const { rows, key } = this.table(tableName);
    for (const item of items) rows.set(String(item[key]), clone(item));
  }

  clear(): void {
    this.rowsByTable.clear();
  }

  install(): void {
    const { docMock, options } = this;
    docMock.on(cmd(PutCommand)).callsFake(async (input: PutCommandInput) => {
      const { rows, key } = this.table(input.TableName);
      if (input.ConditionExpression !== `attribute_not_exists(${key})`) {
        throw new Error(`the fake does not know the condition ${String(input.ConditionExpression)}`);
      }
      const id = String(input.Item![key]);
      if (rows.has(id)) throw conditionFailed();
      rows.set(id, clone(input.Item!));
      return {};
    });
    docMock.on(cmd(GetCommand)).callsFake(async (input: GetCommandInput) => {
      const { rows, key } = this.table(input.TableName);
      const item = rows.get(String(input.Key![key]));
      return item ? { Item: clone(item) } : {};
    });
    // BatchGetItem answers every key at once (no UnprocessedKeys), whole items (a projection only narrows them)
    docMock.on(cmd(BatchGetCommand)).callsFake(async (input: BatchGetCommandInput) => {
      const Responses: Record<string, Item[]> = {};
      for (const [name, request] of Object.entries(input.RequestItems ?? {})) {
        const { rows, key } = this.table(name);
        Responses[name] = (request.Keys ?? []).flatMap((k) => {
          const item = rows.get(String(k[key]));
          return item ? [clone(item)] : [];
        });
      }
      return { Responses };
    });
    if (options.scan) {
      docMock.on(cmd(ScanCommand)).callsFake(async (input: ScanCommandInput) => {
        if (input.ExclusiveStartKey) throw new Error('the fake answers every Scan in one page');
        return { Items: [...this.table(input.TableName).rows.values()].map(clone) };
      });
    }
    if (options.indexes) {
      const indexes = options.indexes;
      docMock.on(cmd(QueryCommand)).callsFake(async (input: QueryCommandInput) => this.query(indexes, input));
    }
    docMock.on(cmd(UpdateCommand)).callsFake(async (input: UpdateCommandInput) => {
      const { rows, key } = this.table(input.TableName);
      const known = (options.updates ?? []).find(
        (u) => u.update === input.UpdateExpression && u.condition(key) === input.ConditionExpression,
      );
      if (!known) throw new Error(`the fake does not know the update ${String(input.UpdateExpression)}`);
      return known.apply(rows.get(String(input.Key![key])), input.ExpressionAttributeValues ?? {});
    });
  }

  private query(indexes: Record<string, IndexSpec>, input: QueryCommandInput): object {
    const index = indexes[input.IndexName ?? ''];
    const values = input.ExpressionAttributeValues ?? {};
    if (!index || input.KeyConditionExpression !== index.condition) {
      throw new Error(`the fake does not know the query ${String(input.KeyConditionExpression)}`);
    }
    if (values[':status'] !== undefined && input.FilterExpression !== '#status = :status') {
      throw new Error(`the fake does not know the filter ${String(input.FilterExpression)}`);
    }
    const { rows, key } = this.table(input.TableName);
    const order = (a: Item, b: Item) =>
      String(a[index.sort]).localeCompare(String(b[index.sort])) || String(a[key]).localeCompare(String(b[key]));
    const below = index.sortBelow === undefined ? undefined : String(values[index.sortBelow]);
    const all = [...rows.values()]
      .filter((i) => i[index.partition] === values[index.partitionValue])
      .filter((i) => below === undefined || String(i[index.sort]) < below)
      .sort(order);
    const start = input.ExclusiveStartKey;
    const from = start ? all.findIndex((i) => order(i, start) > 0) : 0;
    const begin = from < 0 ? all.length : from;
    // DynamoDB: Limit counts the items evaluated, the filter applies after it
    const evaluated = all.slice(begin, begin + (input.Limit ?? all.length));
    const last = evaluated[evaluated.length - 1];
    const more = begin + evaluated.length < all.length;
    return {
      Items: evaluated.filter((i) => values[':status'] === undefined || i.status === values[':status']).map(clone),
      ...(more && last
        ? {
            LastEvaluatedKey: {
              [key]: last[key],
              [index.partition]: last[index.partition],
              [index.sort]: last[index.sort],
            },
          }
        : {}),
    };
  }
}

/**
 * Answers DynamoTaskStore's BatchGetItem of done shards on a plain DocumentClient mock: `progress[taskId]` is how
 * many of the task's chunks are done (all counted in shard 0, as in any batch under 1,000 chunks) and how many
 * certificates they registered (a record, or a function of the task id); other keys are answered as absent items.
 */
export function serveDoneShards(
  docMock: AwsStub<object, MetadataBearer, unknown>,
  progress:
    | Record<string, { done: number; registered?: number }>
    | ((taskId: string) => { done: number; registered?: number } | undefined),
): void {
  const countsOf = typeof progress === 'function' ? progress : (taskId: string) => progress[taskId];
  docMock.on(cmd(BatchGetCommand)).callsFake(async (input: BatchGetCommandInput) => {
    const Responses: Record<string, Item[]> = {};
    for (const [table, request] of Object.entries(input.RequestItems ?? {})) {
      Responses[table] = (request.Keys ?? []).flatMap((key) => {
        const match = /^task#(.+)#done#0$/.exec(String(key.pk));
        const counts = match ? countsOf(match[1]!) : undefined;
        if (!counts) return [];
        return [
          {
            pk: key.pk,
            doneCount: counts.done,
            ...(counts.registered !== undefined ? { registered: counts.registered } : {}),
          },
        ];
      });
    }
    return { Responses };
  });
}
