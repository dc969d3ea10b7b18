/**
 * The environment of certflow's Lambdas, one zod schema per function family. The CDK constructs type each
 * function's `environment` from these schemas, so a missing variable fails at synth, not at 3 a.m.
 */
import { z } from 'zod';
import { TOPIC_PREFIX_PATTERN } from '../core/rotation/topics';
import { SupplierCaSchema } from '../adapters/aws/env-supplier-directory';
import { ApiRatesSchema } from '../core/pacing';

const positiveInt = (fallback: number) =>
  z.string().regex(/^\d+$/).transform(Number).pipe(z.number().int().min(1)).prefault(String(fallback)); // prefault: the fallback goes through the same parse as a given value

/** A variable holding JSON that `schema` validates. */
const jsonVariable = <T extends z.ZodType>(schema: T) =>
  z
    .string()
    .transform((text, ctx) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'not JSON' });
        return z.NEVER;
      }
    })
    .pipe(schema);

/** JSON of per-API rates, calls per second (`{"iot:RegisterCertificate": 50}`); unset APIs keep AWS's defaults. */
export const apiRatesVariable = jsonVariable(ApiRatesSchema).prefault('{}');

export const BulkEnv = z.object({
  TASK_TABLE_NAME: z.string().min(1),
  BUCKET_NAME: z.string().min(1),
  EVENT_BUS_NAME: z.string().min(1),
  /** JSON: { supplierId: { type: 'certflow', caId } | { type: 'acm-pca', arn } | { type: 'aws-iot' } } */
  SUPPLIERS: z.string().default('{}'),
  CA_KEY_STORE: z.enum(['ssm', 'kms']).default('ssm'),
  CHUNK_SIZE: positiveInt(1000),
  MAX_QUANTITY: positiveInt(1_000_000),
  MAX_CONCURRENCY: positiveInt(100),
  DEFAULT_DAYS_EXPIRY: positiveInt(365),
  /** JSON: CDF's deviceCertificateInfo defaults, e.g. { "commonName": "…", "organization": "…" } */
  DEFAULT_CERT_INFO: z.string().default('{}'),
  ZIP_LEVEL: z
    .string()
    .regex(/^[0-9]$/)
    .transform(Number)
    .prefault('0'),
  /** the AWS quotas certflow paces to (see API rates in README and docs/scale-and-cost.md) */
  API_RATES: apiRatesVariable,
  /** seconds a chunk may spend on paced calls: sizes paced chunks (IssueChunk's timeout minus a margin) */
  CHUNK_BUDGET_SECONDS: positiveInt(40),
  /** certificates one ACM Private CA may issue in its lifetime (AWS quota: 1,000,000) */
  PCA_CERTIFICATES_PER_CA: positiveInt(1_000_000),
});
export type BulkEnv = z.infer<typeof BulkEnv>;

/** The CA hierarchy and inventory (API, inventory workflow, expiry sweep). */
export const CaEnv = z.object({
  INVENTORY_TABLE_NAME: z.string().min(1),
  CA_TABLE_NAME: z.string().min(1),
  BUCKET_NAME: z.string().min(1),
  EVENT_BUS_NAME: z.string().min(1),
  /** KMS key (id or ARN) encrypting CA keys in SSM SecureString; empty: the account's aws/ssm key */
  CA_KEY_KMS_KEY_ID: z.string().default(''),
  ROTATION_THING_GROUP: z.string().min(1).default('cdfRotateCertificates'),
  CRL_VALIDITY_HOURS: positiveInt(24),
});
export type CaEnv = z.infer<typeof CaEnv>;

export const BulkApiEnv = BulkEnv.extend({
  BULK_STATE_MACHINE_ARN: z.string().min(1),
});
export type BulkApiEnv = z.infer<typeof BulkApiEnv>;

/** The REST API function serves bulk issuance and the CA hierarchy (they share /certificates/{id}). */
export const ApiEnv = BulkApiEnv.extend(CaEnv.shape).extend({
  /** the compromise-response workflow for CA revocations larger than one slice */
  REVOKE_ISSUED_STATE_MACHINE_ARN: z.string().min(1),
});
export type ApiEnv = z.infer<typeof ApiEnv>;

export const InventoryEnv = z.object({ INVENTORY_TABLE_NAME: z.string().min(1) });
export type InventoryEnv = z.infer<typeof InventoryEnv>;

/** The registry-revocation workflow's function: UpdateCertificate REVOKED at the paced rate. */
export const RegistryRevocationEnv = z.object({
  /** the table that holds the deployment's shared rate schedule (`rate#{api}` items; the task table) */
  RATE_TABLE_NAME: z.string().min(1),
  /** the AWS quotas certflow paces to (only `iot:UpdateCertificate` is used here) */
  API_RATES: apiRatesVariable,
});
export type RegistryRevocationEnv = z.infer<typeof RegistryRevocationEnv>;

/** Names of the variables each schema declares (the CDK side fills exactly these). */
export type EnvNames<T extends z.ZodObject> = keyof z.input<T>;

/** Reads and validates the environment; a bad one fails the cold start with every problem listed. */
export function readEnv<T extends z.ZodObject>(
  schema: T,
  env: Record<string, string | undefined> = process.env,
): z.infer<T> {
  const result = schema.safeParse(env);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`invalid environment: ${problems}`);
  }
  return result.data;
}

export const ExpiryEnv = z.object({
  INVENTORY_TABLE_NAME: z.string().min(1),
  EVENT_BUS_NAME: z.string().min(1),
  /** Certificate Expiring for certificates expiring within this many days */
  EXPIRY_WINDOW_DAYS: positiveInt(30),
});
export type ExpiryEnv = z.infer<typeof ExpiryEnv>;

/** Device provisioning (templates, POST /things, the bulk-provisioning workflow). `PCA_{ALIAS}` / `CA_{ALIAS}`
 * variables name ACM PCA and AWS IoT CAs as CDF configures them (read as they are, not declared here). */
export const ProvisioningEnv = z.object({
  BUCKET_NAME: z.string().min(1),
  EVENT_BUS_NAME: z.string().min(1),
  CA_TABLE_NAME: z.string().min(1),
  CA_KEY_STORE: z.enum(['ssm', 'kms']).default('ssm'),
  DEFAULT_DAYS_EXPIRY: positiveInt(365),
  /** a certflow CA that signs template CSRs when RegisterThing cannot run the template; empty: none */
  CSR_CA_ID: z.string().default(''),
  PROVISIONING_CHUNK_SIZE: positiveInt(100),
  PROVISIONING_MAX_CONCURRENCY: positiveInt(10),
  PROVISIONING_MAX_ITEMS: positiveInt(100_000),
  /** the table holding the deployment-wide rate schedule (the task table: DynamoRateLimiter), shared with bulk */
  RATE_LIMIT_TABLE_NAME: z.string().min(1),
  /** the AWS quotas provisioning's AWS IoT, ACM PCA and KMS calls pace to (as bulk's API_RATES) */
  API_RATES: apiRatesVariable,
});
export type ProvisioningEnv = z.infer<typeof ProvisioningEnv>;

export const ProvisioningApiEnv = ProvisioningEnv.extend({
  PROVISIONING_STATE_MACHINE_ARN: z.string().min(1),
});
export type ProvisioningApiEnv = z.infer<typeof ProvisioningApiEnv>;

const flag = (fallback: boolean) =>
  z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .prefault(String(fallback) as 'true' | 'false');

/** A certflow CA or an ACM Private CA: the CAs that sign CSRs (the certificate provider's and the rotation's; AWS
 * IoT's own CA is the behaviour without certflow, so it is refused). */
export const SigningCaSchema = SupplierCaSchema.refine((ca) => ca.type !== 'aws-iot', {
  message: 'CSRs are signed by a certflow CA or an ACM Private CA, not AWS IoT',
});
export type SigningCa = z.output<typeof SigningCaSchema>;

/** JSON of a SigningCaSchema CA (SIGNING_CA, ROTATION_SIGNING_CA). */
const signingCaVariable = jsonVariable(SigningCaSchema);

/** Certificate rotation over MQTT (the rotation-get and rotation-ack workflows' functions). */
export const RotationEnv = z.object({
  /** the pre-created packages `certificates/{thingName}.zip` */
  BUCKET_NAME: z.string().min(1),
  EVENT_BUS_NAME: z.string().min(1),
  ROTATION_TOPIC_PREFIX: z.string().regex(TOPIC_PREFIX_PATTERN).default('cdf/certificates'),
  ROTATION_THING_GROUP: z.string().min(1).default('cdfRotateCertificates'),
  /**
   * JSON, the CA that signs rotated certificates, as the provider's SIGNING_CA: { "type": "certflow", "caId": "…" }
   * (CDF's CERTIFICATES_CACERTIFICATEID) or { "type": "acm-pca", "arn": "…" }; empty: CSRs are refused
   */
  ROTATION_SIGNING_CA: z
    .union([z.literal(''), signingCaVariable])
    .default('')
    .transform((ca) => (ca === '' ? undefined : ca)),
  /** the table holding the deployment-wide rate schedule (the task table: DynamoRateLimiter), shared with bulk */
  RATE_LIMIT_TABLE_NAME: z.string().min(1),
  /** the AWS quotas the rotation's AWS IoT and ACM PCA calls pace to (as bulk's API_RATES) */
  API_RATES: apiRatesVariable,
  CA_KEY_STORE: z.enum(['ssm', 'kms']).default('ssm'),
  ROTATION_VALIDITY_DAYS: positiveInt(1095),
  /** attached to a rotated certificate when the device names no previous certificate */
  ROTATED_CERTIFICATE_POLICY_NAME: z.string().default(''),
  DELETE_PREVIOUS_CERTIFICATE: flag(false),
  /** approve only things that exist in the registry (DescribeThing) */
  ROTATION_REQUIRE_THING: flag(true),
  /** register rotated certificates with their CA certificate (RegisterCertificate) */
  ROTATION_REGISTER_WITH_CA: flag(true),
});
export type RotationEnv = z.infer<typeof RotationEnv>;
/** The AWS IoT certificate provider (fleet provisioning's CreateCertificateFromCsr). */
export const CertificateProviderEnv = z.object({
  EVENT_BUS_NAME: z.string().min(1),
  /** JSON: { "type": "certflow", "caId": "…" } or { "type": "acm-pca", "arn": "arn:aws:acm-pca:…" } */
  SIGNING_CA: signingCaVariable,
  /** where a certflow CA's key is: SSM SecureString or KMS */
  CA_KEY_STORE: z.enum(['ssm', 'kms']).default('ssm'),
  /** the CA table: a certflow CA revoked there stops signing (empty: not checked) */
  CA_TABLE_NAME: z.string().default(''),
  VALIDITY_DAYS: positiveInt(365),
  /** the table holding the deployment-wide rate schedule (the task table: DynamoRateLimiter), shared with bulk */
  RATE_LIMIT_TABLE_NAME: z.string().min(1),
  /** the AWS quotas the provider's ACM PCA and KMS calls pace to (as bulk's API_RATES) */
  API_RATES: apiRatesVariable,
});
export type CertificateProviderEnv = z.infer<typeof CertificateProviderEnv>;
