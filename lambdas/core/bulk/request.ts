import { z } from 'zod';
import { ValidationError } from '../errors';
import { CommonNameSpec, parseCommonNameTemplate, resolveQuantity, validateCommonNames } from '../naming/common-name';
import { DEFAULT_KEY_TYPE, KEY_TYPES, KeyType } from '../pki/keys';
import { resolveValidity } from '../pki/certificate';
import { checkSubjectField, SubjectFields, subjectFieldsShape } from '../pki/name';
import type { SupplierCa } from '../ports';

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
}

export const DEFAULT_BULK_CONFIG: BulkConfig = {
  chunkSize: 1000,
  maxQuantity: 1_000_000,
  defaultDaysExpiry: 365,
  maxConcurrency: 100,
  defaults: { commonName: 'certflow-device' },
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

  return {
    supplierId,
    ca,
    quantity,
    keyType: req.keyType ?? DEFAULT_KEY_TYPE,
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
    chunkSize: Math.min(
      config.chunkSize,
      CHUNK_CAP[req.keyType ?? DEFAULT_KEY_TYPE],
      req.register ? REGISTER_CHUNK_CAP : Infinity,
    ),
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
 * Largest chunk when every certificate is registered with AWS IoT: RegisterCertificate runs at ~10 TPS by
 * default, so a chunk must finish its registrations well inside the chunk's time budget.
 */
export const REGISTER_CHUNK_CAP = 200;

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
