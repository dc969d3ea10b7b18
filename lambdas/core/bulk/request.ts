import { z } from 'zod';
import { ValidationError } from '../errors';
import { CommonNameSpec, parseCommonNameTemplate, resolveQuantity, validateCommonNames } from '../naming/common-name';
import { DEFAULT_KEY_TYPE, KEY_TYPES, KeyType } from '../pki/keys';
import { resolveValidity } from '../pki/certificate';
import { checkSubjectField, SubjectFields } from '../pki/name';
import { subjectFieldsShape } from '../pki/name-schema';
import { DEFAULT_API_RATES, type ApiRates } from '../pacing';
import type { SupplierCa } from '../ports';
import { type BatchShape, planPacing } from './plan';

/** certInfo as CDF's bulkcerts accepts it. */
export const CertInfoSchema = z
  .object({
    commonName: z.string().min(1).optional(),
    commonNameList: z.array(z.string().min(1)).optional(),
    ...subjectFieldsShape,
    includeCA: z.boolean().optional(),
    daysExpiry: z.number().int().min(1).max(825).optional(),
  })
  .strict();

/** Body of POST /supplier/{supplierId}/certificates. */
export const CreateBatchBodySchema = z
  .object({
    quantity: z.number().int().min(1).optional(),
    register: z.boolean().optional(),
    certificateStatus: z.enum(['ACTIVE', 'INACTIVE']).optional(),
    keyType: z.enum(KEY_TYPES).optional(),
    layout: z.enum(['certflow', 'cdf']).optional(),
    certInfo: CertInfoSchema.optional(),
  })
  .strict();
export type CreateBatchBody = z.infer<typeof CreateBatchBodySchema>;

export interface BulkConfig {
  /** certificates per chunk (one Lambda invocation / worker task); CDF's default was 100, ours 1,000 */
  chunkSize: number;
  /** largest batch accepted */
  maxQuantity: number;
  defaultDaysExpiry: number;
  /** chunks signed at once (Distributed Map MaxConcurrency); derived from quotas where they bind */
  maxConcurrency: number;
  /** subject defaults, field by field, as CDF's deviceCertificateInfo configuration */
  defaults: SubjectFields;
  /** calls per second of each paced AWS API (the account's quotas) */
  rates: ApiRates;
  /** where certflow CA keys live (KMS: each certificate costs a paced kms:Sign) */
  caKeyStore: 'ssm' | 'kms';
  /** seconds a chunk may spend on paced calls (inside IssueChunk's timeout) */
  chunkBudgetSeconds: number;
  /** certificates one ACM PCA CA may issue in its lifetime (the AWS quota) */
  pcaCertificatesPerCa: number;
}

export const DEFAULT_BULK_CONFIG: BulkConfig = {
  chunkSize: 1000,
  maxQuantity: 1_000_000,
  defaultDaysExpiry: 365,
  maxConcurrency: 100,
  defaults: { commonName: 'certflow-device' },
  rates: DEFAULT_API_RATES,
  caKeyStore: 'ssm',
  chunkBudgetSeconds: 40,
  pcaCertificatesPerCa: 1_000_000,
};

/** The validated, defaulted request a batch is made from; stored with the task, read by every chunk worker. */
export interface BatchRequest {
  supplierId: string;
  /** where the supplier's certificates are signed */
  ca: SupplierCa;
  quantity: number;
  keyType: KeyType;
  register: boolean;
  certificateStatus: 'ACTIVE' | 'INACTIVE';
  layout: 'certflow' | 'cdf';
  includeCA: boolean;
  daysExpiry: number;
  /** ISO dates fixed when the batch is accepted, the same for every certificate in it */
  notBefore: string;
  notAfter: string;
  /** subject fields other than the common name */
  subject: Omit<SubjectFields, 'commonName'>;
  commonName: CommonNameSpec;
  /** whether every certificate gets a distinct common name (decides zip folder names) */
  uniqueNames: boolean;
  chunkSize: number;
}

const SUBJECT_FIELDS = [
  'organization',
  'organizationalUnit',
  'locality',
  'stateName',
  'country',
  'emailAddress',
  'distinguishedNameQualifier',
] as const;

/** zod issues → one ValidationError naming the first faulty field. */
export function fromZodError(error: z.ZodError, prefix = ''): ValidationError {
  const issue = error.issues[0]!;
  const field = [prefix, ...issue.path.map(String)].filter(Boolean).join('.') || '(body)';
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') message = `unknown field(s): ${issue.keys.join(', ')}`;
  return new ValidationError('INVALID_REQUEST', `${field}: ${message}`, { details: { field } });
}

/** Validates a request body against CDF's rules and certflow's limits; fills defaults from configuration. */
export function normalizeBatchRequest(
  supplierId: string,
  ca: SupplierCa,
  body: unknown,
  config: BulkConfig,
  now: Date,
): BatchRequest {
  const parsed = CreateBatchBodySchema.safeParse(body ?? {});
  if (!parsed.success) throw fromZodError(parsed.error);
  const req = parsed.data;
  const info = req.certInfo ?? {};

  const template = info.commonName ?? config.defaults.commonName ?? 'certflow-device';
  const spec = parseCommonNameTemplate(template, info.commonNameList);
  const quantity = resolveQuantity(spec, req.quantity);
  if (quantity === undefined) {
    throw new ValidationError('INVALID_REQUEST', 'quantity: required (a whole number ≥ 1)', {
      details: { field: 'quantity' },
    });
  }
  if (quantity > config.maxQuantity) {
    throw new ValidationError('QUANTITY_TOO_LARGE', `quantity: at most ${config.maxQuantity} certificates per batch`, {
      details: { field: 'quantity' },
    });
  }
  validateCommonNames(spec, quantity);

  const subject: Omit<SubjectFields, 'commonName'> = {};
  for (const field of SUBJECT_FIELDS) {
    const value = info[field] ?? config.defaults[field];
    if (value === undefined || value === '') continue;
    const error = checkSubjectField(field, value, `certInfo.${field}`);
    if (error) throw error;
    subject[field] = value;
  }

  const daysExpiry = info.daysExpiry ?? config.defaultDaysExpiry;
  // the same validity as a single certificate of `daysExpiry` days, fixed once for the whole batch
  const { notBefore, notAfter } = resolveValidity({ days: daysExpiry }, now);
  const uniqueNames =
    spec.generator === 'increment' ||
    (spec.generator === 'list' && new Set(spec.list.map((n) => n.toUpperCase())).size === spec.list.length) ||
    (spec.generator === 'static' && quantity === 1);

  const keyType = req.keyType ?? DEFAULT_KEY_TYPE;
  if (ca.type === 'acm-pca' && quantity > config.pcaCertificatesPerCa) {
    throw new ValidationError(
      'CA_CAPACITY_EXCEEDED',
      `quantity: one ACM Private CA issues at most ${config.pcaCertificatesPerCa} certificates in its lifetime`,
      { details: { field: 'quantity', limit: config.pcaCertificatesPerCa } },
    );
  }
  return {
    supplierId,
    ca,
    quantity,
    keyType,
    register: req.register ?? false,
    certificateStatus: req.certificateStatus ?? 'ACTIVE',
    layout: req.layout ?? 'certflow',
    includeCA: info.includeCA ?? false,
    daysExpiry,
    notBefore: notBefore.toISOString(),
    notAfter: notAfter.toISOString(),
    subject,
    commonName: spec,
    uniqueNames,
    chunkSize: batchChunkSize({ ca: ca.type, register: req.register ?? false }, keyType, quantity, config),
  };
}

/**
 * Largest chunk per key type: RSA key generation costs ~0.2 s (2048) to ~2 s (4096) per key on one core, so RSA
 * chunks are smaller to spread them over cores and keep each well inside a Lambda's 15 minutes.
 */
export const CHUNK_CAP: Record<KeyType, number> = {
  'ec-p256': Infinity,
  'ec-p384': Infinity,
  'rsa-2048': 50,
  'rsa-3072': 20,
  'rsa-4096': 10,
};

/**
 * Most chunks in one batch. Every Step Functions payload must stay under 256 KiB: PlanChunks lists the chunk
 * indexes (109 KB of JSON at this count) and the Map collects one `{}` per chunk (60 KB); a failed chunk records
 * its error on the task instead of in the results (checked in test/unit/bulk-plan.test.ts with the largest batch).
 */
export const MAX_CHUNKS = 20_000;

/** Largest chunk when a batch would otherwise pass MAX_CHUNKS and nothing is paced (EC keys: ~0.1 ms each). */
export const MAX_CHUNK_SIZE = 10_000;

/**
 * The chunk size of a batch: the configured size, capped per key type (CHUNK_CAP) and by pacing (a chunk's paced
 * calls — AWS IoT registration, ACM PCA, KMS — must finish inside its time budget at the shared rate; see
 * plan.ts), raised for very large unpaced batches so that the chunk count stays under MAX_CHUNKS. A batch that
 * cannot be cut into MAX_CHUNKS chunks is refused (400 BATCH_TOO_LARGE) with the largest quantity that fits.
 */
export function batchChunkSize(batch: BatchShape, keyType: KeyType, quantity: number, config: BulkConfig): number {
  const { chunkCap } = planPacing(batch, config);
  const cap = Math.min(CHUNK_CAP[keyType], chunkCap);
  let size = Math.min(config.chunkSize, cap);
  if (chunkCount(quantity, size) > MAX_CHUNKS) size = Math.min(Math.ceil(quantity / MAX_CHUNKS), cap, MAX_CHUNK_SIZE);
  if (chunkCount(quantity, size) > MAX_CHUNKS) {
    throw new ValidationError(
      'BATCH_TOO_LARGE',
      `quantity: at most ${size * MAX_CHUNKS} certificates per batch for this supplier and key type ` +
        `(${MAX_CHUNKS} chunks of ${size}); split the batch`,
      { details: { field: 'quantity', limit: size * MAX_CHUNKS } },
    );
  }
  return size;
}

export interface ChunkRange {
  index: number;
  start: number;
  count: number;
}

export const chunkCount = (quantity: number, chunkSize: number): number => Math.ceil(quantity / chunkSize);

/** Chunk `index` of a batch: certificates [start, start + count). */
export function chunkRange(request: Pick<BatchRequest, 'quantity' | 'chunkSize'>, index: number): ChunkRange {
  const total = chunkCount(request.quantity, request.chunkSize);
  if (!Number.isInteger(index) || index < 0 || index >= total) throw new RangeError(`no chunk ${index}`);
  const start = index * request.chunkSize;
  return { index, start, count: Math.min(request.chunkSize, request.quantity - start) };
}
