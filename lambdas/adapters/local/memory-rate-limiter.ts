import { type ApiRates, RATE_LIMITED_APIS, RateLimitBacklogError, reserveSlot } from '../../core/pacing';
import { type Clock, type RateLimitedApi, type RateLimiter, systemClock } from '../../core/ports';

export interface MemoryRateLimiterOptions {
  clock?: Clock;
  sleep?: (ms: number) => Promise<void>;
  /** longest wait for a slot before RateLimitBacklogError (default 60 s) */
  maxWaitMs?: number;
}

/**
 * RateLimiter for one process (the local runtime runs every chunk in one process, so one schedule per API in
 * memory is shared by all of them). APIs without a rate are not paced. Same schedule as DynamoRateLimiter.
 */
export class MemoryRateLimiter implements RateLimiter {
  private readonly nextFree = new Map<RateLimitedApi, number>();
  private readonly clock: Clock;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly maxWaitMs: number;

  constructor(
    private readonly rates: Partial<ApiRates>,
    options: MemoryRateLimiterOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.maxWaitMs = options.maxWaitMs ?? 60_000;
  }

  async acquire(api: RateLimitedApi): Promise<void> {
    const rate = this.rates[api];
    if (rate === undefined) return;
    const now = this.clock.now().getTime();
    const slot = reserveSlot(this.nextFree.get(api), now, rate);
    const wait = slot.startMs - now;
    if (wait > this.maxWaitMs) throw new RateLimitBacklogError(api, wait);
    this.nextFree.set(api, slot.nextFreeMs);
    if (wait > 0) await this.sleep(wait);
  }
}

/**
 * The local runtime's rates: its registry (dynalite) and CA keys (files) have no quotas, so nothing binds and the
 * planner sizes local batches for the local cores, not for AWS's quotas.
 */
export const LOCAL_API_RATES = Object.fromEntries(RATE_LIMITED_APIS.map((api) => [api, 100_000])) as ApiRates;
