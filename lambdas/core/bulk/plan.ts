/**
 * How a batch is cut and fanned out when AWS quotas bind: which API's rate limits the batch, how many chunks run
 * at once (the Distributed Map's MaxConcurrency) and how large a chunk may be so that its paced calls finish
 * inside the chunk's time budget. Pure arithmetic on the configuration; used when a batch is accepted (chunk size)
 * and by PlanChunks (concurrency), and explained in docs/scale-and-cost.md.
 */
import type { ApiRates } from '../pacing';
import type { RateLimitedApi, SupplierCa } from '../ports';

/**
 * Typical latency of one call, ms, as seen from a Lambda in the same region (an estimate, not a quota: it only
 * decides how many chunks are needed to keep a rate busy). ACM PCA's includes the first GetCertificate wait (200 ms).
 */
export const TYPICAL_CALL_MS: Record<RateLimitedApi, number> = {
  'iot:RegisterCertificate': 60,
  'iot:RegisterCertificateWithoutCA': 60,
  'iot:CreateKeysAndCertificate': 100,
  'iot:CreateThing': 40,
  'iot:AttachThingPrincipal': 40,
  'iot:AttachPolicy': 40,
  'iot:UpdateCertificate': 40,
  'iot:RegisterThing': 200,
  'acm-pca:IssueCertificate': 300,
  'acm-pca:GetCertificate': 50,
  'kms:Sign': 15,
};

/** Chunks in flight per chunk the binding rate needs (Little's law), so the limiter, not latency, sets the pace. */
export const CONCURRENCY_HEADROOM = 1.5;

/** A paced batch keeps at least two chunks in flight: one signs or uploads while the other makes paced calls. */
export const MIN_PACED_CONCURRENCY = 2;

export interface PacingConfig {
  rates: ApiRates;
  /** where certflow CA keys live (KMS: one kms:Sign per certificate) */
  caKeyStore: 'ssm' | 'kms';
  /** seconds a chunk may spend on paced calls (well inside IssueChunk's timeout) */
  chunkBudgetSeconds: number;
  /** the configured upper bound of MaxConcurrency */
  maxConcurrency: number;
}

export interface BatchShape {
  ca: SupplierCa['type'];
  register: boolean;
}

/** The paced calls one certificate costs. */
export function callsPerCertificate(
  batch: BatchShape,
  caKeyStore: PacingConfig['caKeyStore'],
): Partial<Record<RateLimitedApi, number>> {
  const calls: Partial<Record<RateLimitedApi, number>> = {};
  if (batch.ca === 'certflow' && caKeyStore === 'kms') calls['kms:Sign'] = 1;
  if (batch.ca === 'acm-pca') {
    calls['acm-pca:IssueCertificate'] = 1;
    calls['acm-pca:GetCertificate'] = 1;
  }
  if (batch.ca === 'aws-iot') calls['iot:CreateKeysAndCertificate'] = 1;
  if (batch.register && batch.ca !== 'aws-iot') {
    calls[batch.ca === 'certflow' ? 'iot:RegisterCertificate' : 'iot:RegisterCertificateWithoutCA'] = 1;
  }
  return calls;
}

export interface PacingPlan {
  /** the API whose quota bounds the batch; undefined when no paced call is made (certflow CA, key in SSM) */
  bindingApi?: RateLimitedApi;
  /** certificates per second the quotas allow (Infinity when none binds) */
  certificatesPerSecond: number;
  /** seconds of paced calls per certificate when a chunk runs alone (sum of typical latencies) */
  secondsPerCertificate: number;
  /** chunks signed at once */
  maxConcurrency: number;
  /** largest chunk whose paced calls fit the budget at this concurrency (Infinity when nothing is paced) */
  chunkCap: number;
}

export function planPacing(batch: BatchShape, config: PacingConfig): PacingPlan {
  const calls = callsPerCertificate(batch, config.caKeyStore);
  let bindingApi: RateLimitedApi | undefined;
  let certificatesPerSecond = Infinity;
  let secondsPerCertificate = 0;
  for (const [api, n] of Object.entries(calls) as [RateLimitedApi, number][]) {
    const perSecond = config.rates[api] / n;
    if (perSecond < certificatesPerSecond) {
      certificatesPerSecond = perSecond;
      bindingApi = api;
    }
    secondsPerCertificate += (n * TYPICAL_CALL_MS[api]) / 1000;
  }
  if (bindingApi === undefined) {
    return { certificatesPerSecond, secondsPerCertificate, maxConcurrency: config.maxConcurrency, chunkCap: Infinity };
  }
  const needed = Math.ceil(certificatesPerSecond * secondsPerCertificate * CONCURRENCY_HEADROOM);
  const maxConcurrency = Math.min(config.maxConcurrency, Math.max(MIN_PACED_CONCURRENCY, needed));
  // each chunk gets 1/maxConcurrency of the rate when all are busy
  // each chunk gets 1/maxConcurrency of the rate when all are busy, and cannot go faster than its own latency
  const perChunk = Math.min(certificatesPerSecond / maxConcurrency, 1 / secondsPerCertificate);
  const chunkCap = Math.max(1, Math.floor(perChunk * config.chunkBudgetSeconds));
  return { bindingApi, certificatesPerSecond, secondsPerCertificate, maxConcurrency, chunkCap };
}
