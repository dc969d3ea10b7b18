/**
 * The `CDF` section of a provisioning template (CDF's provisioning extensions) and the `cdfProvisioningParameters`
 * of a request. One pre-step makes or registers the certificate, chosen in CDF's order: `createDeviceCertificate`,
 * `registerDeviceCertificateWithoutCA`, `acmpca` (`useACMPCA` as CDF spells it, or an `acmpca` object alone);
 * post-steps attach additional policies, a client-id policy, and thing groups.
 */
import { z } from 'zod';
import { InvalidTemplateError, ValidationError } from '../errors';
import { fromZodError } from '../bulk/request';
import { KEY_TYPES } from '../pki/keys';
import { subjectFieldsShape } from '../pki/name-schema';
import type { ProvisioningTemplate } from './template';

const isJsonObject = (text: string): boolean => {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
};

const PolicyDocument = z
  .union([z.string().refine(isJsonObject, 'a policy document is a JSON object'), z.record(z.string(), z.unknown())])
  .transform((d) => (typeof d === 'string' ? d : JSON.stringify(d)));

export const CdfSectionSchema = z
  .object({
    createDeviceCertificate: z.boolean().optional(),
    registerDeviceCertificateWithoutCA: z.boolean().optional(),
    useACMPCA: z.boolean().optional(),
    acmpca: z
      .object({ mode: z.enum(['REGISTER_WITH_CA', 'REGISTER_WITHOUT_CA']) })
      .strict()
      .optional(),
    /** policies attached to the certificate after provisioning: existing ones by name, or created from a document */
    attachAdditionalPolicies: z
      .array(
        z
          .object({
            name: z.string().regex(/^[\w+=,.@-]{1,100}$/, 'a policy name'),
            document: PolicyDocument.optional(),
          })
          .strict(),
      )
      .optional(),
    /** a policy that lets the certificate connect with the thing name as MQTT client id only */
    clientIdMustMatchThingName: z.boolean().optional(),
    /** certflow: thing groups the thing joins after provisioning (besides the template's ThingGroups) */
    thingGroups: z.array(z.string().regex(/^[a-zA-Z0-9:_-]{1,128}$/, 'a thing group name')).optional(),
  })
  .strict();
export type CdfSection = z.infer<typeof CdfSectionSchema>;

export type PreStep = 'createDeviceCertificate' | 'registerDeviceCertificateWithoutCA' | 'acmpca';

export interface CdfExtensions {
  section: CdfSection;
  preStep?: PreStep;
  acmpcaMode?: 'REGISTER_WITH_CA' | 'REGISTER_WITHOUT_CA';
}

/** The parameters each pre-step sets, which the template must declare to use them. */
export const PRE_STEP_PARAMETERS: Record<PreStep, string[]> = {
  createDeviceCertificate: ['CertificatePem'],
  registerDeviceCertificateWithoutCA: ['CertificateId'],
  acmpca: ['CertificateId'],
};

/** Checks a template's CDF section (errors at `CDF.…`) and picks its pre-step. */
export function parseCdfSection(template: ProvisioningTemplate): CdfExtensions {
  if (template.cdf === undefined) return { section: {} };
  const parsed = CdfSectionSchema.safeParse(template.cdf);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = ['CDF', ...issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p)))]
      .join('.')
      .replace(/\.\[/g, '[');
    const message =
      issue.code === 'unrecognized_keys' ? `unknown CDF extension(s): ${issue.keys.join(', ')}` : issue.message;
    throw new InvalidTemplateError('INVALID_CDF_EXTENSION', path, message);
  }
  const section = parsed.data;
  let preStep: PreStep | undefined;
  if (section.createDeviceCertificate) preStep = 'createDeviceCertificate';
  else if (section.registerDeviceCertificateWithoutCA) preStep = 'registerDeviceCertificateWithoutCA';
  else if (section.useACMPCA || section.acmpca) preStep = 'acmpca';
  if (preStep === 'acmpca' && !section.acmpca) {
    throw new InvalidTemplateError(
      'INVALID_CDF_EXTENSION',
      'CDF.acmpca.mode',
      'REGISTER_WITH_CA | REGISTER_WITHOUT_CA',
    );
  }
  if (preStep) {
    for (const name of PRE_STEP_PARAMETERS[preStep]) {
      if (!(name in template.parameters)) {
        throw new InvalidTemplateError(
          'INVALID_CDF_EXTENSION',
          `CDF.${preStep}`,
          `${preStep} sets the parameter ${name}: declare it in Parameters and use it in the certificate resource`,
        );
      }
    }
    if (!Object.values(template.resources).some((r) => r.Type === 'AWS::IoT::Certificate')) {
      throw new InvalidTemplateError(
        'INVALID_CDF_EXTENSION',
        `CDF.${preStep}`,
        `${preStep} needs a certificate resource`,
      );
    }
  }
  return { section, ...(preStep ? { preStep } : {}), ...(section.acmpca ? { acmpcaMode: section.acmpca.mode } : {}) };
}

/** CDF's certInfo for one device certificate (the subject; days of validity). */
export const DeviceCertInfoSchema = z
  .object({
    commonName: z.string().min(1).max(64).optional(),
    ...subjectFieldsShape,
    daysExpiry: z.number().int().min(1).max(36_500).optional(),
  })
  .strict();
export type DeviceCertInfo = z.infer<typeof DeviceCertInfoSchema>;

const caArn = z
  .string()
  .regex(/^arn:aws[a-z-]*:acm-pca:[a-z0-9-]+:\d{12}:certificate-authority\/[\w-]+$/, 'an ACM PCA ARN');
const alias = z.string().regex(/^[A-Za-z0-9_]{1,64}$/, 'an alias (letters, digits, _)');

export const CreateDeviceCertificateParamsSchema = z
  .object({
    caId: z.string().regex(/^[0-9a-f]{64}$/, 'a certflow CA id (64 hex characters)'),
    certInfo: DeviceCertInfoSchema,
    keyType: z.enum(KEY_TYPES).optional(),
  })
  .strict();

export const RegisterWithoutCaParamsSchema = z
  .object({
    certificatePem: z.string().min(1),
    certificateStatus: z.enum(['ACTIVE', 'INACTIVE']).optional(),
  })
  .strict();

export const AcmPcaParamsSchema = z
  .object({
    acmpcaCaArn: caArn.optional(),
    acmpcaCaAlias: alias.optional(),
    awsiotCaArn: z.string().min(1).optional(),
    awsiotCaAlias: alias.optional(),
    /** PEM; when absent certflow makes the key and the CSR (and returns the key) */
    csr: z.string().min(1).optional(),
    certInfo: DeviceCertInfoSchema,
    keyType: z.enum(KEY_TYPES).optional(),
  })
  .strict();

export type PreStepParams =
  | { step: 'createDeviceCertificate'; params: z.infer<typeof CreateDeviceCertificateParamsSchema> }
  | { step: 'registerDeviceCertificateWithoutCA'; params: z.infer<typeof RegisterWithoutCaParamsSchema> }
  | { step: 'acmpca'; params: z.infer<typeof AcmPcaParamsSchema> };

/** cdfProvisioningParameters for the template's pre-step; errors at `cdfProvisioningParameters.…`. */
export function parsePreStepParams(preStep: PreStep | undefined, raw: unknown): PreStepParams | undefined {
  if (preStep === undefined) {
    if (raw !== undefined && raw !== null && Object.keys(raw as object).length > 0) {
      throw new ValidationError(
        'INVALID_REQUEST',
        'cdfProvisioningParameters: the template has no CDF pre-step that takes them',
        { details: { field: 'cdfProvisioningParameters' } },
      );
    }
    return undefined;
  }
  const schema = {
    createDeviceCertificate: CreateDeviceCertificateParamsSchema,
    registerDeviceCertificateWithoutCA: RegisterWithoutCaParamsSchema,
    acmpca: AcmPcaParamsSchema,
  }[preStep];
  const parsed = schema.safeParse(raw ?? {});
  if (!parsed.success) throw fromZodError(parsed.error, 'cdfProvisioningParameters');
  return { step: preStep, params: parsed.data } as PreStepParams;
}

/** CA aliases from configuration: `PCA_{ALIAS}` → ACM PCA ARN, `CA_{ALIAS}` → AWS IoT CA (id or ARN). */
export interface CaAliases {
  pca: Record<string, string>;
  ca: Record<string, string>;
}

/** Reads `PCA_{ALIAS}` and `CA_{ALIAS}` variables (CDF's configuration), aliases upper-cased. */
export function caAliasesFromEnv(env: Record<string, string | undefined>): CaAliases {
  const aliases: CaAliases = { pca: {}, ca: {} };
  for (const [name, value] of Object.entries(env)) {
    if (!value) continue;
    const pca = /^PCA_([A-Z0-9_]+)$/.exec(name);
    if (pca) aliases.pca[pca[1]!] = value;
    const ca = /^CA_([A-Z0-9_]+)$/.exec(name);
    if (ca && !['KEY_STORE', 'KEY_KMS_KEY_ID', 'TABLE_NAME'].includes(ca[1]!)) aliases.ca[ca[1]!] = value;
  }
  return aliases;
}

/** The ARN/id an alias names, or the explicit value; 400 when neither resolves. */
export function resolveCaRef(
  kind: 'pca' | 'ca',
  explicit: string | undefined,
  aliasName: string | undefined,
  aliases: CaAliases,
): string {
  const field = kind === 'pca' ? 'acmpcaCaAlias' : 'awsiotCaAlias';
  if (aliasName !== undefined) {
    const value = aliases[kind][aliasName.toUpperCase()];
    if (!value) {
      throw new ValidationError(
        'UNKNOWN_CA_ALIAS',
        `${field}: no ${kind === 'pca' ? 'PCA' : 'CA'}_${aliasName.toUpperCase()} is configured`,
        {
          details: { field: `cdfProvisioningParameters.${field}` },
        },
      );
    }
    return value;
  }
  if (explicit !== undefined) return explicit;
  const arnField = kind === 'pca' ? 'acmpcaCaArn' : 'awsiotCaArn';
  throw new ValidationError('INVALID_REQUEST', `cdfProvisioningParameters: ${arnField} or ${field} is required`, {
    details: { field: `cdfProvisioningParameters.${arnField}` },
  });
}
