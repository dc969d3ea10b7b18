import { MemoryRateLimiter } from '../../lambdas/adapters/local/memory-rate-limiter';
import { isThrottlingError } from '../../lambdas/adapters/aws/sdk-errors';
import {
  backoffDelay,
  createPace,
  DEFAULT_API_RATES,
  RateLimitBacklogError,
  reserveSlot,
  resolveApiRates,
} from '../../lambdas/core/pacing';
import type { Clock, RateLimitedApi } from '../../lambdas/core/ports';

const throttled = (name = 'ThrottlingException') => Object.assign(new Error('Rate exceeded'), { name, $metadata: {} });

describe('reserveSlot', () => {
  it('starts an idle or new schedule now and moves it one interval per call', () => {
    expect(reserveSlot(undefined, 1000, 10)).toEqual({ startMs: 1000, nextFreeMs: 1100 });
    expect(reserveSlot(500, 1000, 10)).toEqual({ startMs: 1000, nextFreeMs: 1100 });
    expect(reserveSlot(1300, 1000, 4)).toEqual({ startMs: 1300, nextFreeMs: 1550 });
  });
});

describe('MemoryRateLimiter', () => {
  it('spaces the calls of concurrent callers by 1/rate, per API', async () => {
    let now = 0;
    const clock: Clock = { now: () => new Date(now) };
    const waits: number[] = [];
    const limiter = new MemoryRateLimiter(
      { 'iot:RegisterCertificate': 10, 'acm-pca:GetCertificate': 75 },
      {
        clock,
        sleep: async (ms) => void waits.push(ms),
      },
    );
    await Promise.all(Array.from({ length: 5 }, () => limiter.acquire('iot:RegisterCertificate')));
    expect(waits).toEqual([100, 200, 300, 400]);
    waits.length = 0;
    await limiter.acquire('acm-pca:GetCertificate'); // its own schedule
    expect(waits).toEqual([]);
    now = 10_000;
    await limiter.acquire('iot:RegisterCertificate'); // idle since: no catching up
    expect(waits).toEqual([]);
    await limiter.acquire('kms:Sign'); // no rate: not paced
  });

  it('throws RateLimitBacklogError instead of waiting longer than maxWaitMs', async () => {
    const limiter = new MemoryRateLimiter(
      { 'iot:AttachPolicy': 1 },
      { clock: { now: () => new Date(0) }, sleep: async () => undefined, maxWaitMs: 1500 },
    );
    await limiter.acquire('iot:AttachPolicy');
    await limiter.acquire('iot:AttachPolicy');
    await expect(limiter.acquire('iot:AttachPolicy')).rejects.toMatchObject({
      name: 'RateLimitBacklogError',
      api: 'iot:AttachPolicy',
      waitMs: 2000,
    });
  });
});

describe('createPace', () => {
  const acquired: RateLimitedApi[] = [];
  const limiter = { acquire: async (api: RateLimitedApi) => void acquired.push(api) };
  beforeEach(() => (acquired.length = 0));

  it('retries throttling with full-jitter backoff, taking a new slot for each attempt', async () => {
    const delays: number[] = [];
    const pace = createPace({
      limiter,
      isThrottling: isThrottlingError,
      retry: { sleep: async (ms) => void delays.push(ms), random: () => 0.99, baseDelayMs: 100, maxDelayMs: 1000 },
    });
    let calls = 0;
    const result = await pace('acm-pca:IssueCertificate', async () => {
      calls++;
      if (calls <= 5) throw throttled(calls % 2 ? 'ThrottlingException' : 'TooManyRequestsException');
      return 'ok';
    });
    expect(result).toBe('ok');
    expect(acquired).toEqual(Array(6).fill('acm-pca:IssueCertificate'));
    expect(delays).toEqual([99, 198, 396, 792, 990]); // 100·2^n, capped at 1000, times the jitter draw
  });

  it('gives up after maxAttempts with the last throttling error, and never retries other errors', async () => {
    const pace = createPace({
      limiter,
      isThrottling: isThrottlingError,
      retry: { sleep: async () => undefined, maxAttempts: 3 },
    });
    let calls = 0;
    await expect(
      pace('iot:RegisterCertificate', async () => {
        calls++;
        throw throttled();
      }),
    ).rejects.toMatchObject({ name: 'ThrottlingException' });
    expect(calls).toBe(3);

    calls = 0;
    const denied = Object.assign(new Error('denied'), { name: 'AccessDeniedException' });
    await expect(
      pace('iot:RegisterCertificate', async () => {
        calls++;
        throw denied;
      }),
    ).rejects.toBe(denied);
    expect(calls).toBe(1);
  });

  it('draws each backoff uniformly below a ceiling that doubles up to the maximum', () => {
    const policy = { baseDelayMs: 100, maxDelayMs: 5000 };
    expect([0, 1, 2, 6, 10].map((n) => backoffDelay(n, policy, () => 0.5))).toEqual([50, 100, 200, 2500, 2500]);
    expect(backoffDelay(3, policy, () => 0)).toBe(0);
  });
});

describe('isThrottlingError', () => {
  it.each([
    ['ok/ThrottlingException', throttled(), true],
    ['ok/TooManyRequestsException', throttled('TooManyRequestsException'), true],
    ['ok/HTTP 429', Object.assign(new Error('x'), { name: 'Whatever', $metadata: { httpStatusCode: 429 } }), true],
    ['ok/$retryable.throttling', Object.assign(new Error('x'), { name: 'X', $retryable: { throttling: true } }), true],
    ['error/AccessDenied', Object.assign(new Error('x'), { name: 'AccessDeniedException' }), false],
    ['error/not an error', 'ThrottlingException', false],
  ])('%s', (_name, error, expected) => expect(isThrottlingError(error)).toBe(expected));
});

describe('resolveApiRates', () => {
  it('applies overrides to the defaults', () => {
    expect(resolveApiRates({ 'iot:RegisterCertificate': 100 })).toEqual({
      ...DEFAULT_API_RATES,
      'iot:RegisterCertificate': 100,
    });
  });

  it('keeps the defaults the issue names (AWS IoT 10 and 15 TPS, ACM PCA 25 and 75 TPS)', () => {
    expect(DEFAULT_API_RATES).toMatchObject({
      'iot:RegisterCertificate': 10,
      'iot:RegisterCertificateWithoutCA': 10,
      'iot:AttachPolicy': 15,
      'acm-pca:IssueCertificate': 25,
      'acm-pca:GetCertificate': 75,
    });
  });
});

it('RateLimitBacklogError names the API and the wait', () => {
  expect(new RateLimitBacklogError('kms:Sign', 1234.4).message).toBe('kms:Sign: the next free slot is 1234 ms away');
});
