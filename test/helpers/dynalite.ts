/** An in-memory dynalite on 127.0.0.1 with one table created from its definition, for adapter tests. */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { createTableInput } from '../../lambdas/adapters/aws/tables';
import type { TableDefinition } from '../../lambdas/adapters/aws/tables';

// dynalite ships no types
// eslint-disable-next-line @typescript-eslint/no-require-imports
const dynalite = require('dynalite') as (options: { createTableMs?: number }) => Server;

export interface DynaliteTable {
  client: DynamoDBClient;
  close(): Promise<void>;
}

export async function startDynaliteTable(definition: TableDefinition): Promise<DynaliteTable> {
  const server = dynalite({ createTableMs: 0 });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const client = new DynamoDBClient({
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 1,
  });
  await client.send(new CreateTableCommand(createTableInput(definition)));
  return {
    client,
    close: async () => {
      client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
