/**
 * DynamoRateLimiter against dynalite (the DynamoDB wire protocol, conditional writes for real): several limiter
 * instances — several Lambda containers — share one schedule item per API.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { DynamoRateLimiter, rateLimitPk } from '../../lambdas/adapters/aws/dynamo-rate-limiter';
import { TASK_TABLE } from '../../lambdas/adapters/aws/tables';
import { createPace, RateLimitBacklogError, resolveApiRates } from '../../lambdas/core/pacing';
import type { Clock } from '../../lambdas/core/ports';
import { planPacing, TYPICAL_CALL_MS } from '../../lambdas/core/bulk/plan';
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

  describe('two concurrent paced batches', () => {
    const API = 'iot:RegisterCertificate';
    const RATE = 100; // a raised AWS IoT quota, so that each batch plans several chunks at once
    const CALLS_PER_CHUNK = 25;
    const config = {
      rates: resolveApiRates({ [API]: RATE }),
      caKeyStore: 'ssm' as const,
      chunkBudgetSeconds: 40,
      maxConcurrency: 100,
    };

    /**
     * Discrete-event time shared by every container: the clock stands still while any worker is busy (talking to
     * dynalite), and moves to the earliest wake-up once all of them sleep (for their slot, or in a paced call).
     */
    function eventTime(start: number) {
      let now = start;
      let running = 0;
      const sleepers: { at: number; wake: () => void }[] = [];
      const tick = () =>
        setImmediate(() => {
          if (running === 0 || sleepers.length < running) return; // someone is still working: it will tick again
          sleepers.sort((a, b) => a.at - b.at);
          const first = sleepers.shift()!;
          now = Math.max(now, first.at);
          first.wake();
        });
      return {
        clock: { now: () => new Date(now) } as Clock,
        sleep: (ms: number) =>
          new Promise<void>((wake) => {
            sleepers.push({ at: now + ms, wake });
            tick();
          }),
        /** runs `work` as one of the workers the clock waits for */
        worker: async (work: () => Promise<void>) => {
          running++;
          try {
            await work();
          } finally {
            running--;
            tick();
          }
        },
        now: () => now,
      };
    }

    let runs = 0;

    /**
     * Each batch plans its Distributed Map as if it had the whole rate (planPacing) and runs that many chunks at once,
     * each chunk in its own container (limiter), making CALLS_PER_CHUNK paced calls of TYPICAL_CALL_MS each. Returns
     * the virtual start time of every call, per batch.
     */
    async function runBatches(
      limiterFor: (batch: number, chunk: number, time: ReturnType<typeof eventTime>) => DynamoRateLimiter,
    ) {
      // a fresh hour for every run: the schedule items keep what earlier runs reserved
      const time = eventTime(Date.parse('2026-03-02T00:00:00Z') + runs++ * 3_600_000);
      const plan = planPacing({ ca: 'certflow', register: true }, config);
      const starts: number[][] = [[], []];
      await Promise.all(
        [0, 1].flatMap((batch) =>
          Array.from({ length: plan.maxConcurrency }, (_, chunk) =>
            time.worker(async () => {
              const limiter = limiterFor(batch, chunk, time);
              for (let call = 0; call < CALLS_PER_CHUNK; call++) {
                await limiter.acquire(API);
                starts[batch]!.push(time.now());
                await time.sleep(TYPICAL_CALL_MS[API]); // the call itself
              }
            }),
          ),
        ),
      );
      return { plan, starts, all: starts.flat().sort((a, b) => a - b) };
    }

    /** The most calls that start within any one second. */
    const busiestSecond = (sorted: number[]): number => {
      let most = 0;
      for (let i = 0, j = 0; j < sorted.length; j++) {
        while (sorted[j]! - sorted[i]! >= 1000) i++;
        most = Math.max(most, j - i + 1);
      }
      return most;
    };

    it('stay within the configured rate together, although each plans its concurrency for the whole rate', async () => {
      const { plan, starts, all } = await runBatches(
        (_batch, _chunk, time) => new DynamoRateLimiter(client, { [API]: RATE }, TASK_TABLE.tableName, time),
      );
      // each batch alone would keep the whole rate busy: 9 chunks at 60 ms a call need 100 calls/s
      expect(plan).toMatchObject({ bindingApi: API, certificatesPerSecond: RATE, maxConcurrency: 9 });
      expect(starts.map((s) => s.length)).toEqual([9 * CALLS_PER_CHUNK, 9 * CALLS_PER_CHUNK]);
      // one schedule: every call starts at least 1/rate after the one before, whichever batch made it
      const gaps = all.slice(1).map((t, i) => t - all[i]!);
      expect(Math.min(...gaps)).toBeGreaterThanOrEqual(1000 / RATE - 1e-6);
      expect(busiestSecond(all)).toBeLessThanOrEqual(RATE);
      // so the two batches share it: 450 calls take 4.5 s, each batch getting about half of the rate
      expect(all.at(-1)! - all[0]!).toBeGreaterThanOrEqual(((all.length - 1) * 1000) / RATE - 1e-6);
      for (const batch of starts) expect(busiestSecond([...batch].sort((a, b) => a - b))).toBeLessThan(RATE * 0.75);
    });

    it('would exceed it with a schedule per batch (the check above can fail)', async () => {
      const other = await startDynalite([TASK_TABLE]);
      try {
        const { all } = await runBatches(
          (batch, _chunk, time) =>
            new DynamoRateLimiter(batch === 0 ? client : other.client, { [API]: RATE }, TASK_TABLE.tableName, time),
        );
        expect(busiestSecond(all)).toBeGreaterThan(RATE * 1.5);
      } finally {
        await other.close();
      }
    });
  });
});
