import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoInventory } from '../adapters/aws/dynamo-inventory';
import { recordInventoryEvent } from '../core/ca/inventory-recorder';
import type { Inventory } from '../core/ports';
import { lambdaBundle } from './bundle';
import { InventoryEnv } from './env';

export const createHandler = (deps: { inventory: Inventory }) => (input: unknown) => recordInventoryEvent(deps, input);

export const handler = lambdaBundle(InventoryEnv, (env) =>
  createHandler({ inventory: new DynamoInventory(new DynamoDBClient({}), env.INVENTORY_TABLE_NAME) }),
);
