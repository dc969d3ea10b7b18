/**
 * dynalite (the DynamoDB wire protocol on LevelDB) started in-process on 127.0.0.1.
 *
 * Verified with @aws-sdk/client-dynamodb v3 (test/unit/local-runtime/dynamodb-server.test.ts): CreateTable with a
 * GSI, PutItem with ConditionExpression, UpdateItem `ADD` to a number set under `NOT contains(...)`, Query on a GSI,
 * and data surviving a restart on the same `dataDir`. dynalite has no transactions: TransactWriteItems and
 * TransactGetItems answer `UnknownOperationException`. Table names need at least 3 characters (as in DynamoDB).
 */
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceInUseException,
  ResourceNotFoundException,
  type KeySchemaElement,
  type TableDescription,
} from '@aws-sdk/client-dynamodb';
import dynalite from 'dynalite';
import { createTableInput } from '../../lambdas/adapters/aws/tables';
import { LOCAL_AWS_CREDENTIALS, LOCAL_AWS_REGION, type LocalServer, type TableDefinition } from './types';

export interface DynamoDbServerOptions {
  /** LevelDB directory (created when missing); the tables live in memory when absent */
  dataDir?: string;
  /** how long a new table stays CREATING (dynalite's default is 500 ms) */
  createTableMs?: number;
}

/** how long close waits for requests in flight before it cuts their connections */
const CLOSE_GRACE_MS = 1000;

export async function startDynamoDb(options: DynamoDbServerOptions = {}): Promise<LocalServer> {
  if (options.dataDir !== undefined) await mkdir(options.dataDir, { recursive: true });
  const server = dynalite({
    ...(options.dataDir !== undefined ? { path: options.dataDir } : {}),
    ...(options.createTableMs !== undefined ? { createTableMs: options.createTableMs } : {}),
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    // dynalite's close stops the HTTP server, then waits for pending LevelDB operations and closes the store, so the
    // same dataDir can be opened again once this resolves.
    // A request still in flight (a workflow of the runtime that is stopping) gets a moment to finish; then its
    // connection is cut, so that close never waits on a client that will not come back.
    close: () =>
      (closing ??= new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS).unref();
      })),
  };
}

/** A low-level DynamoDB client for a local endpoint (region us-east-1, static dummy credentials). */
export function createLocalDynamoDbClient(endpoint: string): DynamoDBClient {
  return new DynamoDBClient({ endpoint, region: LOCAL_AWS_REGION, credentials: LOCAL_AWS_CREDENTIALS });
}

export interface EnsureTableOptions {
  /** give up waiting for ACTIVE after this long (default 30 s) */
  timeoutMs?: number;
  /** poll interval while waiting (default 50 ms) */
  pollMs?: number;
}

/**
 * Creates the table (pay-per-request, GSIs projecting ALL) unless it exists, then waits until the table and its
 * indexes are ACTIVE. An existing table whose key schema or indexes differ from `definition` is an error: the local
 * runtime never silently runs against a table of another shape.
 */
export async function ensureTable(
  client: DynamoDBClient,
  definition: TableDefinition,
  options: EnsureTableOptions = {},
): Promise<TableDescription> {
  const existing = await describe(client, definition.tableName);
  if (existing) {
    assertSameShape(existing, definition);
  } else {
    try {
      await client.send(new CreateTableCommand(createTableInput(definition)));
    } catch (error) {
      // another process created it between our describe and create: fall through and wait for it
      if (!(error instanceof ResourceInUseException)) throw error;
    }
  }
  const table = await waitUntilActive(client, definition.tableName, options);
  assertSameShape(table, definition);
  return table;
}

async function describe(client: DynamoDBClient, tableName: string): Promise<TableDescription | undefined> {
  try {
    return (await client.send(new DescribeTableCommand({ TableName: tableName }))).Table;
  } catch (error) {
    if (error instanceof ResourceNotFoundException) return undefined;
    throw error;
  }
}

async function waitUntilActive(
  client: DynamoDBClient,
  tableName: string,
  { timeoutMs = 30_000, pollMs = 50 }: EnsureTableOptions,
): Promise<TableDescription> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const table = await describe(client, tableName);
    const ready =
      table?.TableStatus === 'ACTIVE' &&
      (table.GlobalSecondaryIndexes ?? []).every((index) => index.IndexStatus === 'ACTIVE');
    if (table && ready) return table;
    if (Date.now() > deadline) {
      throw new Error(`table ${tableName} is not ACTIVE after ${timeoutMs} ms (status ${table?.TableStatus})`);
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

function describeKeys(schema: KeySchemaElement[] | undefined): string {
  return (schema ?? []).map((k) => `${k.AttributeName}:${k.KeyType}`).join(',');
}

function assertSameShape(table: TableDescription, definition: TableDefinition): void {
  const expected = createTableInput(definition);
  const problems: string[] = [];
  if (describeKeys(table.KeySchema) !== describeKeys(expected.KeySchema)) {
    problems.push(`key schema is ${describeKeys(table.KeySchema)}, expected ${describeKeys(expected.KeySchema)}`);
  }
  const actualIndexes = new Map(
    (table.GlobalSecondaryIndexes ?? []).map((i) => [i.IndexName, describeKeys(i.KeySchema)]),
  );
  for (const index of expected.GlobalSecondaryIndexes ?? []) {
    const actual = actualIndexes.get(index.IndexName);
    if (actual === undefined) problems.push(`index ${index.IndexName} is missing`);
    else if (actual !== describeKeys(index.KeySchema)) {
      problems.push(`index ${index.IndexName} is ${actual}, expected ${describeKeys(index.KeySchema)}`);
    }
  }
  if (problems.length > 0) {
    throw new Error(`table ${definition.tableName} exists with another shape: ${problems.join('; ')}`);
  }
}
