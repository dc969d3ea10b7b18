/**
 * Pacing of calls to rate-limited AWS APIs: a rate shared by every concurrent caller (RateLimiter, a port), and
 * retries with full-jitter backoff when the service throttles all the same. Bulk issuance uses it for AWS IoT
 * registration, ACM PCA and KMS; rotation and provisioning call `pace(api, call)` the same way.
 */
import { z } from 'zod';
import type { RateLimitedApi, RateLimiter } from './ports';

export type ApiRates = Record<RateLimitedApi, number>;

/**
 * Default request quotas, calls per second per account and region (the AWS defaults as last checked; every figure,
 * its source and the date it was read are in bench/model-inputs.json and docs/scale-and-cost.md). Raised quotas are
 * configured, never assumed.
 */
export const DEFAULT_API_RATES: ApiRates = {
  'iot:RegisterCertificate': 10,
  'iot:RegisterCertificateWithoutCA': 10,
  'iot:CreateKeysAndCertificate': 10,
  'iot:CreateThing': 100,
  'iot:AttachThingPrincipal': 100,
  'iot:AttachPolicy': 15,
  'iot:UpdateCertificate': 10,
  // RegisterThing runs the CreateThing / RegisterCertificate / Attach… calls of its template inside AWS IoT; paced at
  // the lowest default of those (RegisterCertificate's 10)
  'iot:RegisterThing': 10,
  'acm-pca:IssueCertificate': 25,
  'acm-pca:GetCertificate': 75,
  'kms:Sign': 1000,
};

export const RATE_LIMITED_APIS = Object.keys(DEFAULT_API_RATES) as RateLimitedApi[];

/** Per-API overrides (calls per second, > 0, up to 100,000); unknown API names are refused. */
export const ApiRatesSchema = z
  .object(
    Object.fromEntries(RATE_LIMITED_APIS.map((api) => [api, z.number().positive().max(100_000).optional()])) as Record<
      RateLimitedApi,
      z.ZodOptional<z.ZodNumber>
    >,
  )
  .strict();
export type ApiRatesInput = z.infer<typeof ApiRatesSchema>;

/** The defaults with `overrides` applied. */
export function resolveApiRates(overrides: ApiRatesInput = {}): ApiRates {
  const rates = { ...DEFAULT_API_RATES };
  for (const api of RATE_LIMITED_APIS) {
    const value = overrides[api];
    if (value !== undefined) rates[api] = value;
  }
  return rates;
}

/**
 * The wait for a slot would be longer than the caller may wait (a backlog built up, e.g. more concurrent chunks than
 * the rate can serve). Transient: the workflow retries the chunk later; the reserved slot is simply left unused.
 */
export class RateLimitBacklogError extends Error {
  override readonly name = 'RateLimitBacklogError';

  constructor(
    readonly api: RateLimitedApi,
    readonly waitMs: number,
  ) {
    super(`${api}: the next free slot is ${Math.round(waitMs)} ms away`);
  }
}

/**
 * One step of the shared schedule (GCRA, a token bucket without burst): the next free instant of an API moves one
 * interval (1000 / rate ms) per call. A caller reserves the slot at max(nextFree, now) and waits until then.
 */
export function reserveSlot(
  nextFreeMs: number | undefined,
  nowMs: number,
  rate: number,
): { startMs: number; nextFreeMs: number } {
  const startMs = nextFreeMs === undefined || nextFreeMs < nowMs ? nowMs : nextFreeMs;
  return { startMs, nextFreeMs: startMs + 1000 / rate };
}

/** A limiter that never waits (a runtime without quotas, such as the local registry). */
export const unlimitedRateLimiter: RateLimiter = { acquire: async () => undefined };

export interface RetryPolicy {
  /** calls at most, the first included (default 8) */
  maxAttempts?: number;
  /** the first backoff ceiling in ms, doubled per retry (default 100) */
  baseDelayMs?: number;
  /** the largest backoff ceiling in ms (default 5000) */
  maxDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

/** Runs `call` at `api`'s shared rate; throttling answers are retried with full-jitter backoff. */
export type Pace = <T>(api: RateLimitedApi, call: () => Promise<T>) => Promise<T>;

/** Calls straight through (tests and runtimes without quotas). */
export const unpaced: Pace = (_api, call) => call();

const sleepFor = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Full-jitter backoff (AWS Architecture Blog, "Exponential Backoff And Jitter"): uniform in [0, ceiling). */
export function backoffDelay(
  retry: number,
  policy: Required<Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>>,
  random: () => number,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** retry);
  return Math.floor(random() * ceiling);
}

/**
 * A Pace on `limiter`: each attempt takes a slot first, so a retry after throttling also waits its turn.
 * `isThrottling` tells a throttling answer from any other error (the AWS SDK's names live in the AWS adapters).
 */
export function createPace(options: {
  limiter: RateLimiter;
  isThrottling: (error: unknown) => boolean;
  retry?: RetryPolicy;
  /** called before each backoff (metrics, logs, tests) */
  onThrottled?: (api: RateLimitedApi, attempt: number, delayMs: number) => void;
}): Pace {
  const { limiter, isThrottling, onThrottled } = options;
  const maxAttempts = options.retry?.maxAttempts ?? 8;
  const delays = { baseDelayMs: options.retry?.baseDelayMs ?? 100, maxDelayMs: options.retry?.maxDelayMs ?? 5000 };
  const sleep = options.retry?.sleep ?? sleepFor;
  const random = options.retry?.random ?? Math.random;
  return async <T>(api: RateLimitedApi, call: () => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      await limiter.acquire(api);
      try {
        return await call();
      } catch (error) {
        if (attempt >= maxAttempts || !isThrottling(error)) throw error;
        const delay = backoffDelay(attempt - 1, delays, random);
        onThrottled?.(api, attempt, delay);
        await sleep(delay);
      }
    }
  };
}
