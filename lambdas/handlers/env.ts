/**
 * The environment of certflow's Lambdas, one zod schema per function family. The CDK constructs type each
 * function's `environment` from these schemas, so a missing variable fails at synth, not at 3 a.m.
 */
import { z } from 'zod';

const positiveInt = (fallback: number) =>
  z.string().regex(/^\d+$/).transform(Number).pipe(z.number().int().min(1)).prefault(String(fallback)); // prefault: the fallback goes through the same parse as a given value

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
});
export type BulkEnv = z.infer<typeof BulkEnv>;

export const BulkApiEnv = BulkEnv.extend({
  BULK_STATE_MACHINE_ARN: z.string().min(1),
});
export type BulkApiEnv = z.infer<typeof BulkApiEnv>;

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
