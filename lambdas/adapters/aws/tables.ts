/**
 * Plain DynamoDB table definitions shared by the CDK stack (`lib/`) and the local runtime (`local/`, dynalite),
 * so that key schemas and indexes cannot drift between the two.
 */
export type AttributeType = 'S' | 'N';

export interface KeyAttribute {
  name: string;
  type: AttributeType;
}

export interface GlobalSecondaryIndexDefinition {
  indexName: string;
  partitionKey: KeyAttribute;
  sortKey?: KeyAttribute;
}

export interface TableDefinition {
  tableName: string;
  partitionKey: KeyAttribute;
  sortKey?: KeyAttribute;
  /** every index projects ALL attributes */
  globalSecondaryIndexes?: GlobalSecondaryIndexDefinition[];
  timeToLiveAttribute?: string;
}

/**
 * Bulk-issuance tasks and their idempotency keys (single-table design).
 * - task: `pk = task#{taskId}`, `gsi1pk = status`, `createdAt` (index `byStatus`)
 * - done shard of a task: `pk = task#{taskId}#done#{shard}` (chunks shard × 1000 … shard × 1000 + 999): `done`
 *   (number set of the finished chunks' offsets in the shard), `doneCount`, `registered` (DynamoTaskStore)
 * - idempotency key: `pk = idem#{scope}#{key}`
 * - rate schedule of a paced AWS API: `pk = rate#{api}` (DynamoRateLimiter)
 * - chunk lease: `pk = lease#{taskId}#{index}`, `ttl` (epoch s) removes a lease its attempt could not give back
 */
export const TASK_TABLE: TableDefinition = {
  tableName: 'certflow-tasks',
  partitionKey: { name: 'pk', type: 'S' },
  timeToLiveAttribute: 'ttl',
  globalSecondaryIndexes: [
    {
      indexName: 'byStatus',
      partitionKey: { name: 'gsi1pk', type: 'S' },
      sortKey: { name: 'createdAt', type: 'S' },
    },
  ],
};

/**
 * The certificate inventory, one item per certificate (`DynamoInventory`). Besides the InventoryRecord fields each
 * item carries three derived key attributes:
 * - `issuedKey = issuedAt + '#' + certificateId` — sort key of index `byIssuer` (partition `issuerId`): an issuer's
 *   certificates in a stable order, ties on issuedAt broken by the id;
 * - `expiryBucket = 'exp#' + h`, h the first hex digit of the certificate id (16 write shards, so that a whole
 *   fleet's expiry dates never pile onto one partition), and `expiryKey = notAfter + '#' + certificateId` —
 *   partition and sort key of index `byExpiry`. "Expiring before T" queries the 16 shards with `expiryKey < T` and
 *   merges them (k-way merge); the page token records a position per shard.
 * Dates in the keys are normalised to `Date.toISOString()` so that string order is time order.
 */
export const INVENTORY_TABLE: TableDefinition = {
  tableName: 'certflow-inventory',
  partitionKey: { name: 'certificateId', type: 'S' },
  globalSecondaryIndexes: [
    {
      indexName: 'byIssuer',
      partitionKey: { name: 'issuerId', type: 'S' },
      sortKey: { name: 'issuedKey', type: 'S' },
    },
    {
      indexName: 'byExpiry',
      partitionKey: { name: 'expiryBucket', type: 'S' },
      sortKey: { name: 'expiryKey', type: 'S' },
    },
  ],
};

/** certflow's CAs, one item per CA keyed by its certificate id (`DynamoCaStore`); few items, listed by Scan. */
export const CA_TABLE: TableDefinition = {
  tableName: 'certflow-cas',
  partitionKey: { name: 'caId', type: 'S' },
};

/** The CreateTable input for a definition (on-demand billing, indexes projecting ALL): used by local/ and tests. */
export function createTableInput(def: TableDefinition): {
  TableName: string;
  BillingMode: 'PAY_PER_REQUEST';
  AttributeDefinitions: { AttributeName: string; AttributeType: AttributeType }[];
  KeySchema: { AttributeName: string; KeyType: 'HASH' | 'RANGE' }[];
  GlobalSecondaryIndexes?: {
    IndexName: string;
    KeySchema: { AttributeName: string; KeyType: 'HASH' | 'RANGE' }[];
    Projection: { ProjectionType: 'ALL' };
  }[];
} {
  const attributes = new Map<string, AttributeType>();
  const keySchema = (pk: KeyAttribute, sk?: KeyAttribute) => {
    for (const key of sk ? [pk, sk] : [pk]) {
      const known = attributes.get(key.name);
      if (known !== undefined && known !== key.type) {
        throw new Error(`attribute ${key.name} of table ${def.tableName} is declared as ${known} and ${key.type}`);
      }
      attributes.set(key.name, key.type);
    }
    return [
      { AttributeName: pk.name, KeyType: 'HASH' as const },
      ...(sk ? [{ AttributeName: sk.name, KeyType: 'RANGE' as const }] : []),
    ];
  };
  const KeySchema = keySchema(def.partitionKey, def.sortKey);
  const indexes = (def.globalSecondaryIndexes ?? []).map((gsi) => ({
    IndexName: gsi.indexName,
    KeySchema: keySchema(gsi.partitionKey, gsi.sortKey),
    Projection: { ProjectionType: 'ALL' as const },
  }));
  return {
    TableName: def.tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [...attributes].map(([AttributeName, AttributeType]) => ({ AttributeName, AttributeType })),
    KeySchema,
    ...(indexes.length > 0 ? { GlobalSecondaryIndexes: indexes } : {}),
  };
}
