import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { z } from 'zod';
import { DynamoInventory } from '../adapters/aws/dynamo-inventory';
import { fromZodError } from '../core/bulk/request';
import { sweepExpiring } from '../core/ca/expiry';
import { systemClock, type Clock, type EventPublisher, type Inventory } from '../core/ports';
import { lambdaBundle } from './bundle';
import { ExpiryEnv } from './env';

const SweepInput = z.object({
  windowDays: z.number().int().min(1).max(3650).optional(),
  nextToken: z.string().nullish(),
  asOf: z.string().optional(),
});

export const createHandler =
  (deps: { inventory: Inventory; events: EventPublisher; clock: Clock }, defaultWindowDays: number) =>
  async (input: unknown) => {
    const parsed = SweepInput.safeParse(input ?? {});
    if (!parsed.success) throw fromZodError(parsed.error);
    const { nextToken, ...rest } = parsed.data;
    const result = await sweepExpiring(deps, {
      windowDays: rest.windowDays ?? defaultWindowDays,
      ...(rest.asOf ? { asOf: rest.asOf } : {}),
      ...(nextToken ? { nextToken } : {}),
    });
    // Step Functions needs every selected field present: an absent token is null
    return { ...result, nextToken: result.nextToken ?? null };
  };

export const handler = lambdaBundle(ExpiryEnv, async (env) => {
  const [{ EventBridgeClient }, { EventBridgePublisher }] = await Promise.all([
    import('@aws-sdk/client-eventbridge'),
    import('../adapters/aws/eventbridge-publisher'),
  ]);
  return createHandler(
    {
      inventory: new DynamoInventory(new DynamoDBClient({}), env.INVENTORY_TABLE_NAME),
      events: new EventBridgePublisher(new EventBridgeClient({}), env.EVENT_BUS_NAME),
      clock: systemClock,
    },
    env.EXPIRY_WINDOW_DAYS,
  );
});
