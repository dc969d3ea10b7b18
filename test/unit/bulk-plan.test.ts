/**
 * Cutting and fanning out batches against AWS quotas (core/bulk/plan.ts, batchChunkSize) and the Step Functions
 * payload limit at the largest batch the planner accepts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { planPacing, type PacingConfig } from '../../lambdas/core/bulk/plan';
import {
  batchChunkSize,
  DEFAULT_BULK_CONFIG,
  MAX_CHUNKS,
  normalizeBatchRequest,
  type BulkConfig,
} from '../../lambdas/core/bulk/request';
import { batchConcurrency, planChunks } from '../../lambdas/core/bulk/service';
import { DEFAULT_API_RATES, resolveApiRates } from '../../lambdas/core/pacing';
import type { BatchTask, SupplierCa, TaskStore } from '../../lambdas/core/ports';

const config: PacingConfig = {
  rates: DEFAULT_API_RATES,
  caKeyStore: 'ssm',
  chunkBudgetSeconds: 40,
  maxConcurrency: 100,
};
const CERTFLOW: SupplierCa = { type: 'certflow', caId: 'ca-1' };
const PCA: SupplierCa = { type: 'acm-pca', arn: 'arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/x' };

describe('planPacing', () => {
  it.each([
    // name, batch, config changes, binding API, certificates/s, MaxConcurrency, chunk cap
    [
      'ok/certflow CA, key in SSM: nothing paced',
      { ca: 'certflow', register: false },
      {},
      undefined,
      Infinity,
      100,
      Infinity,
    ],
    [
      'ok/registering with AWS IoT at 10 TPS',
      { ca: 'certflow', register: true },
      {},
      'iot:RegisterCertificate',
      10,
      2,
      200,
    ],
    [
      'ok/registering at a raised 100 TPS',
      { ca: 'certflow', register: true },
      { rates: resolveApiRates({ 'iot:RegisterCertificate': 100 }) },
      'iot:RegisterCertificate',
      100,
      9, // ceil(100/s × 0.06 s × 1.5)
      444, // min(100/9, 1/0.06) × 40 s
    ],
    [
      'ok/ACM PCA: IssueCertificate binds (25 < 75)',
      { ca: 'acm-pca', register: false },
      {},
      'acm-pca:IssueCertificate',
      25,
      14,
      71,
    ],
    [
      'ok/certflow CA, key in KMS',
      { ca: 'certflow', register: false },
      { caKeyStore: 'kms' },
      'kms:Sign',
      1000, // the ECC request quota (docs/scale-and-cost.md, sources)
      23, // ceil(1,000/s × 0.015 s × 1.5)
      1739, // min(1,000/23, 1/0.015) × 40 s
    ],
    [
      'ok/AWS IoT CreateKeysAndCertificate',
      { ca: 'aws-iot', register: true },
      {},
      'iot:CreateKeysAndCertificate',
      10,
      2,
      200,
    ],
    [
      'ok/the configured bound wins',
      { ca: 'acm-pca', register: false },
      { maxConcurrency: 4 },
      'acm-pca:IssueCertificate',
      25,
      4,
      114, // latency-bound: 1/0.35 s × 40 s
    ],
  ] as const)('%s', (_name, batch, changes, api, perSecond, concurrency, cap) => {
    const plan = planPacing(batch, { ...config, ...changes });
    expect(plan.bindingApi).toBe(api);
    expect(plan.certificatesPerSecond).toBe(perSecond);
    expect(plan.maxConcurrency).toBe(concurrency);
    expect(plan.chunkCap).toBe(cap);
  });

  it('registering an ACM PCA batch binds on RegisterCertificateWithoutCA (10 TPS) before IssueCertificate', () => {
    expect(planPacing({ ca: 'acm-pca', register: true }, config)).toMatchObject({
      bindingApi: 'iot:RegisterCertificateWithoutCA',
      certificatesPerSecond: 10,
    });
  });
});

const bulk = (changes: Partial<BulkConfig> = {}): BulkConfig => ({
  ...DEFAULT_BULK_CONFIG,
  maxQuantity: 100_000_000,
  ...changes,
});

describe('batchChunkSize', () => {
  it.each([
    ['ok/EC, nothing paced: the configured 1,000', CERTFLOW, false, 'ec-p256', 10_000_000, 1000],
    ['ok/EC, 100M: raised to stay under MAX_CHUNKS', CERTFLOW, false, 'ec-p256', 100_000_000, 5000],
    ['ok/registering: the paced cap (was a fixed 200)', CERTFLOW, true, 'ec-p256', 1_000_000, 200],
    ['ok/ACM PCA 1M: the paced cap', PCA, false, 'ec-p256', 1_000_000, 71],
    ['ok/RSA-4096: the key-type cap', CERTFLOW, false, 'rsa-4096', 100_000, 10],
  ] as const)('%s', (_name, ca, register, keyType, quantity, size) => {
    expect(batchChunkSize({ ca: ca.type, register }, keyType, quantity, bulk())).toBe(size);
  });

  it.each([
    ['error/registering 10M at 10 TPS', CERTFLOW, true, 'ec-p256', 10_000_000, 4_000_000],
    ['error/RSA-4096 × 1M', CERTFLOW, false, 'rsa-4096', 1_000_000, 200_000],
  ] as const)(
    '%s: 400 BATCH_TOO_LARGE naming the largest batch that fits',
    (_name, ca, register, keyType, quantity, limit) => {
      expect(() => batchChunkSize({ ca: ca.type, register }, keyType, quantity, bulk())).toThrow(
        expect.objectContaining({ status: 400, code: 'BATCH_TOO_LARGE', details: { field: 'quantity', limit } }),
      );
    },
  );
});

describe('normalizeBatchRequest on AWS limits', () => {
  const now = new Date('2026-03-01T12:00:00Z');
  it('refuses an ACM PCA batch above the 1,000,000 certificates one CA may issue (400 CA_CAPACITY_EXCEEDED)', () => {
    expect(() => normalizeBatchRequest('acme', PCA, { quantity: 1_000_001 }, bulk(), now)).toThrow(
      expect.objectContaining({ status: 400, code: 'CA_CAPACITY_EXCEEDED' }),
    );
    expect(normalizeBatchRequest('acme', PCA, { quantity: 1_000_000 }, bulk(), now).chunkSize).toBe(71);
    expect(() =>
      normalizeBatchRequest('acme', PCA, { quantity: 600 }, bulk({ pcaCertificatesPerCa: 500 }), now),
    ).toThrow(expect.objectContaining({ code: 'CA_CAPACITY_EXCEEDED', details: { field: 'quantity', limit: 500 } }));
  });

  it('keeps registering chunks larger than 200 once the quota is raised', () => {
    const raised = bulk({ rates: resolveApiRates({ 'iot:RegisterCertificate': 100 }) });
    expect(normalizeBatchRequest('acme', CERTFLOW, { quantity: 5000, register: true }, raised, now).chunkSize).toBe(
      444,
    );
  });
});

describe('Step Functions payloads at the largest batch', () => {
  const LIMIT = 256 * 1024;
  const asl = JSON.parse(readFileSync(join(__dirname, '../../statemachines/bulk-issuance.asl.json'), 'utf8')) as {
    States: Record<string, Record<string, unknown>>;
  };
  const map = asl.States.IssueCertificateChunks as {
    ItemSelector: Record<string, string>;
    ResultPath: unknown;
    ItemProcessor: { States: Record<string, Record<string, unknown>> };
  };
  const bytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value));

  /** the largest chunk count any accepted batch can have, with the longest indexes */
  function largestPlan() {
    const request = normalizeBatchRequest('acme', CERTFLOW, { quantity: 100_000_000 }, bulk(), new Date());
    const chunksTotal = Math.ceil(request.quantity / request.chunkSize);
    expect(chunksTotal).toBe(MAX_CHUNKS);
    const task = { taskId: '3f2b9c1e-7a4d-4e8b-9c0d-1e2f3a4b5c6d', status: 'in_progress', chunksTotal, request: {} };
    const tasks = { get: async () => task, setStatus: async () => undefined } as unknown as TaskStore;
    return planChunks({ tasks, config: bulk() }, { taskId: task.taskId });
  }

  it('PlanChunks output, the Map input and output, each item and result and AssembleZip input stay under 256 KiB', async () => {
    const plan = await largestPlan();
    // the Lambda response PlanChunks returns (the invoke envelope adds a few hundred bytes of metadata)
    expect(bytes({ Payload: plan, StatusCode: 200, ExecutedVersion: '$LATEST' }) + 2048).toBeLessThan(LIMIT);
    const mapInput = { taskId: plan.taskId, chunks: plan.chunks, maxConcurrency: plan.maxConcurrency };
    expect(bytes(mapInput)).toBeLessThan(LIMIT);

    // each child gets {taskId, index}; IssueChunk's output is {} (OutputPath null), so the collected results are tiny
    expect(Object.keys(map.ItemSelector).sort()).toEqual(['index.$', 'taskId.$']);
    expect(bytes({ taskId: plan.taskId, index: MAX_CHUNKS - 1 })).toBeLessThan(100);
    const issueChunk = map.ItemProcessor.States.IssueChunk!;
    expect(issueChunk.OutputPath).toBeNull();
    const results = Array.from({ length: plan.chunksTotal }, () => ({}));
    expect(bytes(results)).toBeLessThan(64 * 1024);
    // a failed child records its error on the task and fails: failures never accumulate in the results
    expect(map.ItemProcessor.States.ChunkFailed).toMatchObject({ Type: 'Fail' });
    expect(map.ResultPath).toBeNull();
    expect(bytes({ ...mapInput, results }) + 2048).toBeLessThan(LIMIT);
    expect(bytes(mapInput) + bytes(results)).toBeLessThan(200 * 1024); // with room to spare

    const assemble = asl.States.AssembleZip as { Parameters: { Payload: Record<string, string> } };
    expect(assemble.Parameters.Payload).toEqual({ 'taskId.$': '$.taskId' });
  });

  it('fans the largest batch out at the configured bound, and a paced batch at its binding rate', () => {
    const shape = (ca: string, register: boolean): Pick<BatchTask, 'request'> => ({ request: { ca, register } });
    expect(batchConcurrency(shape('certflow', false), bulk())).toBe(100);
    expect(batchConcurrency(shape('certflow', true), bulk())).toBe(2);
    expect(batchConcurrency(shape('acm-pca', false), bulk())).toBe(14);
    expect(batchConcurrency({ request: {} }, bulk())).toBe(100); // a task stored before the CA type was kept
  });
});
