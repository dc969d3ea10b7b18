/**
 * DynamoRateLimiter against dynalite (the DynamoDB wire protocol, conditional writes for real): several limiter
 * instances — several Lambda containers — share one schedule item per API.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { DynamoRateLimiter, rateLimitPk } from '../../lambdas/adapters/aws/dynamo-rate-limiter';
import { TASK_TABLE } from '../../lambdas/adapters/aws/tables';
import { createPace, RateLimitBacklogError } from '../../lambdas/core/pacing';
import type { Clock } from '../../lambdas/core/ports';
import { type LocalDynamo, startDynalite } from '../helpers/dynalite';

let dynamo: LocalDynamo;
let client: DynamoDBClient;

beforeAll(async () => {
  dynamo = await startDynalite([TASK_TABLE]);
  client = dynamo.client;
});

afterAll(() => dynamo?.close());

/** A clock that stands still unless moved, and a sleep that records the slot instead of waiting for it. */
function virtualTime(start: number) {
  let now = start;
  const slots: number[] = [];
  const clock: Clock = { now: () => new Date(now) };
  return {
    clock,
    slots,
    sleep: async (ms: number) => void slots.push(now + ms),
    set: (t: number) => (now = t),
  };
}

const nextFree = async (api: Parameters<typeof rateLimitPk>[0]) => {
  const doc = DynamoDBDocumentClient.from(client);
  const { Item } = await doc.send(
    new GetCommand({ TableName: TASK_TABLE.tableName, Key: { pk: rateLimitPk(api) }, ConsistentRead: true }),
  );
  return Item?.nextFree as number | undefined;
};

describe('DynamoRateLimiter on dynalite', () => {
  it('gives 40 concurrent callers in 4 containers 40 distinct slots 1/rate apart, in one schedule', async () => {
    const t = virtualTime(Date.parse('2026-03-01T12:00:00Z'));
    const containers = [0, 1, 2, 3].map(
      () => new DynamoRateLimiter(client, { 'iot:RegisterCertificate': 10 }, TASK_TABLE.tableName, t),
    );
    await Promise.all(
      containers.flatMap((limiter) => Array.from({ length: 10 }, () => limiter.acquire('iot:RegisterCertificate'))),
    );

    // the first caller starts the idle schedule at once (no sleep), the other 39 wait for consecutive slots
    const start = t.clock.now().getTime();
    expect(t.slots).toHaveLength(39);
    expect([...t.slots].sort((a, b) => a - b)).toEqual(Array.from({ length: 39 }, (_, i) => start + (i + 1) * 100));
    expect(await nextFree('iot:RegisterCertificate')).toBe(start + 40 * 100);
  });

  it('restarts an idle schedule at the current time instead of letting callers catch up with a burst', async () => {
    const t = virtualTime(Date.parse('2026-03-01T13:00:00Z'));
    const limiter = new DynamoRateLimiter(client, { 'acm-pca:IssueCertificate': 25 }, TASK_TABLE.tableName, t);
    await limiter.acquire('acm-pca:IssueCertificate');
    await limiter.acquire('acm-pca:IssueCertificate');
    t.set(Date.parse('2026-03-01T13:00:10Z')); // idle for 10 s
    await limiter.acquire('acm-pca:IssueCertificate');
    await limiter.acquire('acm-pca:IssueCertificate');
    expect(t.slots).toEqual([Date.parse('2026-03-01T13:00:00Z') + 40, Date.parse('2026-03-01T13:00:10Z') + 40]);
  });

  it('refuses with RateLimitBacklogError, reserving nothing, when the next slot is further than maxWaitMs', async () => {
    const t = virtualTime(Date.parse('2026-03-01T14:00:00Z'));
    const options = { ...t, maxWaitMs: 150 };
    const limiter = new DynamoRateLimiter(client, { 'iot:AttachPolicy': 10 }, TASK_TABLE.tableName, options);
    await limiter.acquire('iot:AttachPolicy'); // now
    await limiter.acquire('iot:AttachPolicy'); // +100
    const before = await nextFree('iot:AttachPolicy');
    await expect(limiter.acquire('iot:AttachPolicy')).rejects.toBeInstanceOf(RateLimitBacklogError); // +200 > 150
    expect(await nextFree('iot:AttachPolicy')).toBe(before);
  });

  it('does not pace an API without a configured rate', async () => {
    const t = virtualTime(Date.parse('2026-03-01T15:00:00Z'));
    const limiter = new DynamoRateLimiter(client, {}, TASK_TABLE.tableName, t);
    await limiter.acquire('kms:Sign');
    expect(await nextFree('kms:Sign')).toBeUndefined();
  });

  it('paces real calls in real time: 12 calls at 60/s from 3 containers take at least 11 intervals', async () => {
    const limiters = [0, 1, 2].map(() => new DynamoRateLimiter(client, { 'kms:Sign': 60 }, TASK_TABLE.tableName));
    const paces = limiters.map((limiter) => createPace({ limiter, isThrottling: () => false }));
    const calledAt: number[] = [];
    const began = Date.now();
    await Promise.all(
      paces.flatMap((pace) => Array.from({ length: 4 }, () => pace('kms:Sign', async () => calledAt.push(Date.now())))),
    );
    expect(calledAt).toHaveLength(12);
    expect(Math.max(...calledAt) - began).toBeGreaterThanOrEqual(Math.floor((11 * 1000) / 60) - 2);
  });
});
