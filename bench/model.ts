/**
 * `npm run model`: time and cost of bulk issuance on AWS for 10k / 1M / 10M certificates and each signer, at the
 * default and at raised quotas, from bench/model-inputs.json (prices, quotas, the chunk CPU time measured by
 * `npm run bench`). Chunk sizes and MaxConcurrency come from the planner itself (lambdas/core/bulk/plan.ts and
 * batchChunkSize), so the model cuts batches exactly as a deployment would. Prints the markdown tables of
 * docs/scale-and-cost.md, and the table of sources (every price and quota, where and when it was read, and the quote).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DONE_SHARD_SIZE } from '../lambdas/adapters/aws/dynamo-task-store';
import { callsPerCertificate, planPacing } from '../lambdas/core/bulk/plan';
import { batchChunkSize, DEFAULT_BULK_CONFIG, type BulkConfig } from '../lambdas/core/bulk/request';
import { ValidationError } from '../lambdas/core/errors';
import { DEFAULT_API_RATES, RATE_LIMITED_APIS, type ApiRates } from '../lambdas/core/pacing';
import type { RateLimitedApi, SupplierCa } from '../lambdas/core/ports';

/** Where a figure was read: `cited` in AWS's own text, `cited-third-party` in a named page quoting AWS, else `last-known`. */
export type SourceStatus = 'cited' | 'cited-third-party' | 'last-known';
export const SOURCE_STATUSES: SourceStatus[] = ['cited', 'cited-third-party', 'last-known'];

interface Sourced {
  unit?: string;
  source: string;
  /** the day the source was read (YYYY-MM-DD) */
  date: string;
  status: SourceStatus;
  /** the sentence or table row the figure was read in (required unless last-known) */
  quote?: string;
  /** what else was read or searched (required when last-known) */
  note?: string;
}
interface Figure {
  value: number;
}
type PaceQuota = { default: number; raised?: number };

export interface ModelInputs {
  prices: Record<string, Figure & Sourced> & { pcaCertificateTiers: { value: [number | null, number][] } & Sourced };
  quotas: Record<string, PaceQuota & Sourced>;
  measured: Record<
    'ecCertificateCpuSeconds' | 'zipBytesPerCertificate',
    Figure & { unit: string; source: string; date: string }
  >;
  assumptions: Record<string, { value: number }> & {
    externalCpuSeconds: { value: Record<Signer, number> };
  };
}

export type Signer = 'certflow-ssm' | 'certflow-kms' | 'acm-pca' | 'aws-iot' | 'certflow-ssm+register';
export const SIGNERS: Signer[] = ['certflow-ssm', 'certflow-kms', 'acm-pca', 'aws-iot', 'certflow-ssm+register'];
export type QuotaLevel = 'default' | 'raised';

const SHAPE: Record<Signer, { ca: SupplierCa['type']; register: boolean; caKeyStore: 'ssm' | 'kms' }> = {
  'certflow-ssm': { ca: 'certflow', register: false, caKeyStore: 'ssm' },
  'certflow-kms': { ca: 'certflow', register: false, caKeyStore: 'kms' },
  'acm-pca': { ca: 'acm-pca', register: false, caKeyStore: 'ssm' },
  'aws-iot': { ca: 'aws-iot', register: false, caKeyStore: 'ssm' },
  'certflow-ssm+register': { ca: 'certflow', register: true, caKeyStore: 'ssm' },
};

export interface ModelRow {
  quantity: number;
  signer: Signer;
  quotas: QuotaLevel;
  bindingApi?: RateLimitedApi;
  /** batches the quantity has to be split into (BATCH_TOO_LARGE / one ACM PCA CA's lifetime) */
  batches: number;
  chunkSize: number;
  chunks: number;
  /** MaxConcurrency the planner sets (chunks in flight: at most the batch's chunks) */
  maxConcurrency: number;
  /** certificates per second over the Map */
  throughput: number;
  seconds: number;
  /** USD per certificate, by component */
  perCertificate: Record<
    'lambda' | 'stepFunctions' | 's3' | 'dynamodb' | 'eventBridge' | 'inventory' | 'kms' | 'pca',
    number
  >;
  /** USD per certificate, all components */
  total: number;
  /** monthly fixed fees the batch needs (ACM PCA CAs, KMS key), USD, not in `total` */
  fixedMonthly: number;
}

/** ACM PCA's fee for `n` certificates issued in one calendar month (tiers by monthly volume). */
export function pcaFee(n: number, tiers: [number | null, number][]): number {
  let left = n;
  let fee = 0;
  for (const [size, price] of tiers) {
    const take = size === null ? left : Math.min(left, size);
    fee += take * price;
    left -= take;
    if (left <= 0) break;
  }
  return fee;
}

function ratesFor(inputs: ModelInputs, level: QuotaLevel): ApiRates {
  const rates = { ...DEFAULT_API_RATES };
  for (const api of RATE_LIMITED_APIS) {
    const quota = inputs.quotas[api];
    if (quota) rates[api] = level === 'raised' ? (quota.raised ?? quota.default) : quota.default;
  }
  return rates;
}

/** One row: `quantity` certificates with `signer` at `level` quotas. */
export function modelRow(inputs: ModelInputs, quantity: number, signer: Signer, level: QuotaLevel): ModelRow {
  const p = (name: string) => inputs.prices[name]!.value;
  const a = (name: string) => inputs.assumptions[name]!.value;
  const shape = SHAPE[signer];
  const config: BulkConfig = {
    ...DEFAULT_BULK_CONFIG,
    maxQuantity: Number.MAX_SAFE_INTEGER,
    maxConcurrency: Math.min(
      a('maxConcurrency'),
      inputs.quotas.lambdaConcurrency!.default,
      inputs.quotas.sfnDistributedMapConcurrency?.default ?? Infinity,
    ),
    rates: ratesFor(inputs, level),
    caKeyStore: shape.caKeyStore,
    chunkBudgetSeconds: a('chunkBudgetSeconds'),
    pcaCertificatesPerCa: inputs.quotas.pcaCertificatesPerCa!.default,
  };
  const batchShape = { ca: shape.ca, register: shape.register };

  // the largest batch the planner accepts for this signer, then the batches the quantity needs
  let perBatch = quantity;
  if (shape.ca === 'acm-pca') perBatch = Math.min(perBatch, config.pcaCertificatesPerCa);
  try {
    batchChunkSize(batchShape, 'ec-p256', perBatch, config);
  } catch (e) {
    if (!(e instanceof ValidationError) || e.code !== 'BATCH_TOO_LARGE') throw e;
    perBatch = Number((e.details as { limit: number }).limit);
  }
  const batches = Math.ceil(quantity / perBatch);
  const chunkSize = batchChunkSize(batchShape, 'ec-p256', Math.min(perBatch, quantity), config);
  const chunks = batches * Math.ceil(Math.min(perBatch, quantity) / chunkSize);
  const plan = planPacing(batchShape, config);
  const chunksPerBatch = chunks / batches;
  const c = Math.min(plan.maxConcurrency, chunksPerBatch); // chunks in flight
  // completeChunk writes the chunk's done shard (DONE_SHARD_SIZE chunks, a number set of offsets of ≤ 3 bytes): each
  // completion pays the shard's size in write units, and one shard item takes at most the partition's write units per
  // second (the Map starts chunks in index order, so the chunks in flight mostly share a shard)
  const shardChunks = Math.min(chunksPerBatch, DONE_SHARD_SIZE);
  const shardItemKb = 0.1 + (shardChunks * 3) / 2 / 1024; // ~100 B of key and counts, plus the set, averaged
  const chunksPerSecondByItem = a('dynamoItemWriteUnitsPerSecond') / Math.ceil(shardItemKb);

  // time: the Map runs at the slower of the chunks' own speed and the binding quota
  const cpu = inputs.assumptions.externalCpuSeconds.value[signer];
  const aloneChunkSeconds = a('chunkOverheadSeconds') + chunkSize * (cpu + plan.secondsPerCertificate);
  const throughput = Math.min(
    (c * chunkSize) / aloneChunkSeconds,
    plan.certificatesPerSecond,
    chunksPerSecondByItem * chunkSize,
  );
  const chunkSeconds = (c * chunkSize) / throughput; // wall time of a chunk with c in flight, waits included
  const zipBytes = quantity * inputs.measured.zipBytesPerCertificate.value;
  const assemblySeconds = zipBytes / batches / a('assemblyBytesPerSecond'); // the last batch's, after its Map
  const seconds = a('workflowOverheadSeconds') + quantity / throughput + assemblySeconds;

  // cost, USD for the whole quantity
  const lambda =
    chunks * (a('issueChunkMemoryGb') * chunkSeconds * p('lambdaArmGbSecond') + p('lambdaRequest')) +
    batches * (a('assembleMemoryGb') * assemblySeconds * p('lambdaArmGbSecond') + 4 * p('lambdaRequest'));
  const stepFunctions =
    (batches * a('standardTransitionsPerBatch') + chunks * a('standardTransitionsPerChunk')) *
      p('sfnStandardTransition') +
    chunks * (p('sfnExpressRequest') + a('expressChildGb') * chunkSeconds * p('sfnExpressGbSecond'));
  const parts = Math.ceil(zipBytes / (8 * 1024 * 1024)) + batches; // 8 MiB multipart parts, one create/complete
  const putsPerChunk =
    2 + (shape.register ? 2 : 0) + (shape.ca === 'acm-pca' || shape.ca === 'aws-iot' ? 1 + chunkSize / 25 : 0);
  const s3 =
    (chunks * putsPerChunk + parts + 2 * batches) * p('s3Put') +
    chunks * 4 * p('s3Get') +
    ((2 * zipBytes) / 1e9) * (a('lifecycleDays') / 30) * p('s3GbMonth');
  // one schedule write (DynamoRateLimiter) per paced call
  const pacedCalls =
    quantity * Object.values(callsPerCertificate(batchShape, shape.caKeyStore)).reduce((sum, n) => sum + n, 0);
  const dynamodb =
    chunks * (Math.ceil(shardItemKb) * p('dynamoWriteUnit') + Math.ceil(shardItemKb / 4) * p('dynamoReadUnit')) +
    pacedCalls * p('dynamoWriteUnit') +
    quantity * a('inventoryWriteUnitsPerCertificate') * p('dynamoWriteUnit');
  const eventsPerChunk = Math.ceil(chunkSize / 500);
  const eventBytes = quantity * a('eventBytesPerCertificate');
  const billedEvents =
    chunks * eventsPerChunk * Math.ceil((Math.min(500, chunkSize) * a('eventBytesPerCertificate')) / 65536);
  const eventBridge = billedEvents * p('eventBridgeEvent') + (eventBytes / 1e9) * p('eventBridgeArchiveGb');
  const inventory =
    chunks * eventsPerChunk * (p('sfnExpressRequest') + p('lambdaRequest')) +
    quantity * a('inventoryLambdaSecondsPerCertificate') * a('inventoryLambdaGb') * p('lambdaArmGbSecond');
  const kms = shape.caKeyStore === 'kms' ? quantity * p('kmsAsymmetricRequest') : 0;
  const pca = shape.ca === 'acm-pca' ? pcaFee(quantity, inputs.prices.pcaCertificateTiers.value) : 0;
  const registration = shape.register || shape.ca === 'aws-iot' ? quantity * p('iotRegistration') : 0;

  const perCertificate = {
    lambda: lambda / quantity,
    stepFunctions: stepFunctions / quantity,
    s3: s3 / quantity,
    dynamodb: dynamodb / quantity,
    eventBridge: eventBridge / quantity,
    inventory: inventory / quantity,
    kms: kms / quantity,
    pca: (pca + registration) / quantity,
  };
  const total = Object.values(perCertificate).reduce((s, v) => s + v, 0);
  const fixedMonthly =
    (shape.ca === 'acm-pca' ? Math.ceil(quantity / config.pcaCertificatesPerCa) * p('pcaCaMonth') : 0) +
    (shape.caKeyStore === 'kms' ? p('kmsKeyMonth') : 0);
  return {
    quantity,
    signer,
    quotas: level,
    ...(plan.bindingApi ? { bindingApi: plan.bindingApi } : {}),
    batches,
    chunkSize,
    chunks,
    maxConcurrency: plan.maxConcurrency,
    throughput,
    seconds,
    perCertificate,
    total,
    fixedMonthly,
  };
}

export function runModel(inputs: ModelInputs, quantities = [10_000, 1_000_000, 10_000_000]): ModelRow[] {
  const rows: ModelRow[] = [];
  for (const quantity of quantities) {
    for (const signer of SIGNERS) {
      for (const level of ['default', 'raised'] as const) rows.push(modelRow(inputs, quantity, signer, level));
    }
  }
  return rows;
}

export function formatDuration(seconds: number): string {
  if (seconds < 120) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(0)} min`;
  if (seconds < 172_800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86_400).toFixed(1)} d`;
}

const usd = (v: number) => (v >= 0.01 ? `$${v.toFixed(4)}` : `$${v.toExponential(2)}`);
const count = (n: number) => n.toLocaleString('en-US');
const money = (v: number) => (v >= 100 ? `$${count(Math.round(v))}` : `$${v.toFixed(2)}`);

export function markdown(rows: ModelRow[]): string {
  const lines = [
    '| certificates | signer | quotas | binding quota | batches × chunk size | MaxConcurrency | certificates/s | time | $/certificate | $ total | fixed $/month |',
    '| ---: | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of rows) {
    lines.push(
      `| ${count(r.quantity)} | ${r.signer} | ${r.quotas} | ${r.bindingApi ?? '—'} | ${r.batches} × ${count(r.chunkSize)} | ${r.maxConcurrency} | ${count(Math.round(r.throughput))} | ${formatDuration(r.seconds)} | ${usd(r.total)} | ${money(r.total * r.quantity)} | ${r.fixedMonthly ? money(r.fixedMonthly) : '—'} |`,
    );
  }
  lines.push(
    '',
    '| certificates | signer | quotas | Lambda | Step Functions | S3 | DynamoDB | EventBridge | inventory | KMS | ACM PCA / AWS IoT fees |',
  );
  lines.push('| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows.filter((row) => row.quotas === 'default')) {
    const c = r.perCertificate;
    lines.push(
      `| ${count(r.quantity)} | ${r.signer} | ${r.quotas} | ${usd(c.lambda)} | ${usd(c.stepFunctions)} | ${usd(c.s3)} | ${usd(c.dynamodb)} | ${usd(c.eventBridge)} | ${usd(c.inventory)} | ${usd(c.kms)} | ${usd(c.pca)} |`,
    );
  }
  return lines.join('\n');
}

/**
 * Every price and quota names its source, the day it was read and a status; a cited figure carries the sentence it was
 * read in, a last-known one what was searched. Returns the problems found (none: the inputs are fit to publish).
 */
export function sourceProblems(inputs: ModelInputs): string[] {
  const problems: string[] = [];
  const entries = [
    ...Object.entries(inputs.prices).map(([name, e]) => [name, e] as const),
    ...Object.entries(inputs.quotas).map(([name, e]) => [`quota ${name}`, e] as const),
  ];
  for (const [name, e] of entries) {
    if (!e.source?.trim()) problems.push(`${name}: no source`);
    if (!/^\d{4}-\d{2}-\d{2}$/.test(e.date ?? '')) problems.push(`${name}: no date read (YYYY-MM-DD)`);
    if (!SOURCE_STATUSES.includes(e.status))
      problems.push(`${name}: status ${String(e.status)} is not one of ${SOURCE_STATUSES.join(', ')}`);
    if (e.status !== 'last-known' && !e.quote?.trim())
      problems.push(`${name}: ${e.status} without the quote it was read in`);
    if (e.status === 'last-known' && !e.note?.trim())
      problems.push(`${name}: last-known without a note of what was searched`);
  }
  return problems;
}

/** A markdown table cell: pipes escaped, line breaks flattened. */
const cell = (text: string) => text.replace(/\s+/g, ' ').replace(/\|/g, '\\|').trim();

function priceValue(name: string, value: number | [number | null, number][]): string {
  if (name === 'pcaCertificateTiers' && Array.isArray(value)) {
    return value
      .map(([size, price]) => (size === null ? `rest at $${price}` : `${count(size)} at $${price}`))
      .join('; ');
  }
  return String(value);
}

/** The sources table of docs/scale-and-cost.md: every input, its value, where and when it was read, and the quote. */
export function sourcesMarkdown(inputs: ModelInputs): string {
  const lines = [
    '| input | value | source | read | status | quote (or what was searched) |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  const row = (name: string, value: string, e: Partial<Sourced> & { source: string; date: string }, status: string) => {
    const said = [e.quote ? `“${e.quote}”` : '', e.note ?? ''].filter(Boolean).join(' — ');
    lines.push(
      `| ${cell(e.unit ? `${name} (${e.unit})` : name)} | ${cell(value)} | ${cell(e.source)} | ${e.date} | ${status} | ${cell(said) || '—'} |`,
    );
  };
  for (const [name, e] of Object.entries(inputs.prices)) row(name, priceValue(name, e.value), e, e.status);
  for (const [name, e] of Object.entries(inputs.quotas)) {
    const value = e.raised === undefined ? count(e.default) : `${count(e.default)} (raised example ${count(e.raised)})`;
    row(`quota ${name}`, value, e, e.status);
  }
  for (const [name, e] of Object.entries(inputs.measured)) row(`measured ${name}`, String(e.value), e, 'measured');
  return lines.join('\n');
}

export function loadInputs(file = join(__dirname, 'model-inputs.json')): ModelInputs {
  return JSON.parse(readFileSync(file, 'utf8')) as ModelInputs;
}

if (require.main === module) {
  const inputs = loadInputs(process.argv[2]);
  const problems = sourceProblems(inputs);
  if (problems.length) {
    console.error(`model inputs without a usable source:\n${problems.join('\n')}`);
    process.exitCode = 1;
  }
  console.log(`${markdown(runModel(inputs))}\n\n${sourcesMarkdown(inputs)}`);
}
