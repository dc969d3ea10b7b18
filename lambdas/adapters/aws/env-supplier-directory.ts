import { z } from 'zod';
import type { SupplierCa, SupplierDirectory } from '../../core/ports';

/** CDF's value of `SUPPLIER_CA_{SUPPLIER}` for "AWS IoT signs the CSR" (CreateCertificateFromCsr). */
export const AWS_IOT_DEFAULT = 'AwsIotDefault';
export const SUPPLIER_CA_PREFIX = 'SUPPLIER_CA_';

const PCA_ARN = /^arn:aws[a-z-]*:acm-pca:[a-z0-9-]+:\d{12}:certificate-authority\/[0-9a-f-]{36}$/;
/** a certflow CA id ends up in SSM parameter names (`cdf-ca-key-{caId}`): keep to their characters */
const CA_ID = /^[A-Za-z0-9_.-]{1,128}$/;

export const SupplierCaSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('certflow'), caId: z.string().regex(CA_ID, 'not a CA id') }),
  z.strictObject({
    type: z.literal('acm-pca'),
    arn: z.string().regex(PCA_ARN, 'not an ACM PCA certificate authority ARN'),
  }),
  z.strictObject({ type: z.literal('aws-iot') }),
]);

/** `SUPPLIERS`: JSON object supplier id → CA. */
export const SuppliersSchema = z.record(z.string().min(1), SupplierCaSchema);

/** A CDF `SUPPLIER_CA_{SUPPLIER}` value: `AwsIotDefault`, an ACM PCA ARN, or a certflow (AWS IoT) CA id. */
export const CdfSupplierCaSchema = z
  .string()
  .trim()
  .min(1)
  .transform((value): SupplierCa => {
    if (value === AWS_IOT_DEFAULT) return { type: 'aws-iot' };
    if (value.startsWith('arn:')) return { type: 'acm-pca', arn: value };
    return { type: 'certflow', caId: value };
  })
  .pipe(SupplierCaSchema);

export type SupplierEnv = Readonly<Record<string, string | undefined>>;

/**
 * SupplierDirectory from the environment: `SUPPLIERS` (JSON) and CDF's `SUPPLIER_CA_{SUPPLIER}` variables
 * (supplier id upper-cased). `SUPPLIERS` wins when both name a supplier. The configuration is validated once, when
 * the directory is built: a bad value fails the cold start rather than a request.
 */
export class EnvSupplierDirectory implements SupplierDirectory {
  private readonly suppliers = new Map<string, SupplierCa>();
  private readonly cdfSuppliers = new Map<string, SupplierCa>();

  constructor(env: SupplierEnv = process.env) {
    const problems: string[] = [];
    if (env.SUPPLIERS !== undefined && env.SUPPLIERS.trim() !== '') {
      let json: unknown;
      try {
        json = JSON.parse(env.SUPPLIERS);
      } catch {
        problems.push('SUPPLIERS: not valid JSON');
      }
      if (json !== undefined) {
        const parsed = SuppliersSchema.safeParse(json);
        if (parsed.success) for (const [id, ca] of Object.entries(parsed.data)) this.suppliers.set(id, ca);
        else problems.push(`SUPPLIERS: ${z.prettifyError(parsed.error)}`);
      }
    }
    for (const [name, value] of Object.entries(env)) {
      if (!name.startsWith(SUPPLIER_CA_PREFIX) || name.length === SUPPLIER_CA_PREFIX.length || value === undefined) {
        continue;
      }
      const parsed = CdfSupplierCaSchema.safeParse(value);
      if (parsed.success) this.cdfSuppliers.set(name.slice(SUPPLIER_CA_PREFIX.length), parsed.data);
      else problems.push(`${name}: ${z.prettifyError(parsed.error)}`);
    }
    if (problems.length > 0) throw new Error(`invalid supplier configuration:\n${problems.join('\n')}`);
  }

  get(supplierId: string): Promise<SupplierCa | undefined> {
    return Promise.resolve(this.suppliers.get(supplierId) ?? this.cdfSuppliers.get(supplierId.toUpperCase()));
  }
}
