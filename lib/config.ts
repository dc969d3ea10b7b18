/**
 * Deploy configuration of the CDK app, validated with zod. Defaults live here; CDK context overrides them, either
 * as one object in cdk.json (`"context": { "certflow": { "chunkSize": 500 } }`) or key by key on the command line
 * (`npx cdk deploy -c certflow:chunkSize=500 -c certflow:suppliers='{"acme":{"type":"certflow","caId":"…"}}'`).
 * The command line wins. A bad value fails the synth with every problem listed.
 */
import type { Node } from 'constructs';
import { z } from 'zod';
import { SuppliersSchema } from '../lambdas/adapters/aws/env-supplier-directory';
import { DEFAULT_ROTATION_TOPIC_PREFIX, TOPIC_PREFIX_PATTERN } from '../lambdas/core/rotation/topics';
import { SigningCaSchema } from '../lambdas/handlers/env';
import { ApiRatesSchema } from '../lambdas/core/pacing';

/** The CDK context key of the configuration object, and the prefix of the per-key overrides. */
export const CONTEXT_KEY = 'certflow';

const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/;

/** Context values given on the command line arrive as strings: JSON objects and arrays are parsed first. */
const fromJson = <T extends z.ZodType>(schema: T) =>
  z.preprocess((value) => {
    if (typeof value !== 'string') return value;
    try {
      return JSON.parse(value) as unknown;
    } catch {
      return value; // the schema reports the type error
    }
  }, schema);

const wholeNumber = (min: number, max: number, fallback: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

export const DeployConfigSchema = z
  .object({
    /** supplier id → CA, as the Lambdas' `SUPPLIERS` variable (the same schema validates both) */
    suppliers: fromJson(SuppliersSchema).default({}),
    /** certificates per chunk (one IssueChunk invocation) */
    chunkSize: wholeNumber(1, 10_000, 1000),
    /** chunks signed at once (the Distributed Map's MaxConcurrency; Step Functions allows up to 10,000) */
    maxConcurrency: wholeNumber(1, 10_000, 100),
    /** largest batch accepted by the API */
    maxQuantity: wholeNumber(1, 100_000_000, 1_000_000),
    /**
     * The account's request quotas, calls per second, for the AWS APIs certflow paces (all Distributed Map children
     * share one schedule per API): `iot:RegisterCertificate`, `iot:RegisterCertificateWithoutCA`,
     * `iot:CreateKeysAndCertificate`, `iot:CreateThing`, `iot:AttachThingPrincipal`, `iot:AttachPolicy`,
     * `iot:UpdateCertificate`, `iot:RegisterThing`, `acm-pca:IssueCertificate`, `acm-pca:GetCertificate`, `kms:Sign`.
     * Unset: AWS's defaults (core/pacing.ts). Bulk issuance, rotation, provisioning and registry revocation share them.
     * Set what Service Quotas shows after an increase; MaxConcurrency and paced chunk sizes follow.
     */
    apiRates: fromJson(ApiRatesSchema).default({}),
    /** certificates one ACM Private CA may issue in its lifetime (AWS quota, 1,000,000 by default) */
    pcaCertificatesPerCa: wholeNumber(1, 1_000_000_000, 1_000_000),
    /** days after which the objects under `batches/` expire (chunk zips, manifests, batch zips) */
    lifecycleDays: wholeNumber(1, 3650, 30),
    /** where CA private keys live: SSM SecureString PEMs, or KMS asymmetric keys */
    caKeyStore: z.enum(['ssm', 'kms']).default('ssm'),
    /** the KMS keys the CAs sign with (required with caKeyStore 'kms': kms:Sign is granted on these only) */
    caKmsKeyArns: fromJson(z.array(z.string().regex(KMS_KEY_ARN, 'not a KMS key ARN'))).default([]),
    /** name of the custom EventBridge bus */
    eventBusName: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,256}$/, 'an event bus name: letters, digits, . _ -')
      .default('certflow'),
    /** days the bus archive keeps events for replay */
    eventArchiveDays: wholeNumber(1, 3650, 90),
    /** the AWS IoT static thing group that devices join to rotate their certificates (CDF's name by default) */
    rotationThingGroupName: z
      .string()
      .regex(/^[a-zA-Z0-9:_-]{1,128}$/, 'an AWS IoT thing group name: 1-128 of a-z A-Z 0-9 : _ -')
      .default('cdfRotateCertificates'),
    /** false when the group exists already (e.g. made by CDF): the stack then uses it by name and does not own it */
    createRotationThingGroup: fromJson(z.boolean()).default(true),
    /** hours until a CRL's nextUpdate (the CA API re-publishes a CA's CRL on each revocation) */
    crlValidityHours: wholeNumber(1, 8760, 24),
    /** hours between two runs of the expiry sweep (its EventBridge schedule), up to a week */
    expirySweepHours: wholeNumber(1, 168, 24),
    /** the expiry sweep's window: `Certificate Expiring` for certificates expiring within this many days */
    expiryWindowDays: wholeNumber(1, 3650, 30),
    /** provisioning: CDF's `PCA_{ALIAS}` settings, alias → ACM PCA ARN (the acmpca extension's CAs) */
    provisioningPcaAliases: fromJson(
      z.record(
        z.string().regex(/^[A-Za-z0-9_]{1,64}$/),
        z.string().regex(/^arn:aws[a-z-]*:acm-pca:/, 'an ACM PCA ARN'),
      ),
    ).default({}),
    /** provisioning: CDF's `CA_{ALIAS}` settings, alias → AWS IoT CA certificate id (REGISTER_WITH_CA) */
    provisioningCaAliases: fromJson(z.record(z.string().regex(/^[A-Za-z0-9_]{1,64}$/), z.string().min(1))).default({}),
    /** provisioning: parameter sets per bulk chunk */
    provisioningChunkSize: wholeNumber(1, 1000, 100),
    /** rotation over MQTT: devices publish to `{prefix}/{thingName}/get` and `…/ack` (CDF's prefix by default) */
    rotationTopicPrefix: z
      .string()
      .regex(TOPIC_PREFIX_PATTERN, 'MQTT topic levels without wildcards, no leading or trailing /')
      .default(DEFAULT_ROTATION_TOPIC_PREFIX),
    /**
     * the CA that signs rotated certificates, in the certificate provider's shape (SigningCaSchema):
     * { type: 'certflow', caId } (key in SSM `cdf-ca-key-{caId}`, as CDF keeps it) or { type: 'acm-pca', arn }
     */
    rotationCa: fromJson(SigningCaSchema).optional(),
    /** days a rotated certificate is valid (CDF: 1095) */
    rotationValidityDays: wholeNumber(1, 3650, 1095),
    /** the IoT policy the stack creates (each device on its own topics) and attaches when no previous certificate is named */
    rotatedCertificatePolicyName: z
      .string()
      .regex(/^[\w+=,.@-]{1,128}$/, 'an AWS IoT policy name')
      .default('certflow-rotation-device'),
    /** ack: detach and delete the previous certificate(s) */
    deletePreviousCertificate: fromJson(z.boolean()).default(false),
    /** approve only devices that exist in the AWS IoT registry (DescribeThing), besides the group membership */
    rotationRequireRegisteredThing: fromJson(z.boolean()).default(true),
    /** register rotated certificates with their CA's certificate (the CA must be registered with AWS IoT) */
    rotationRegisterWithCa: fromJson(z.boolean()).default(true),
    /**
     * The AWS IoT certificate provider (fleet provisioning's CreateCertificateFromCsr signed by certflow). Off by
     * default: an account has one provider, and it takes over CreateCertificateFromCsr for the account's whole fleet.
     */
    certificateProvider: fromJson(
      z.strictObject({
        enabled: fromJson(z.boolean()).default(false),
        /** the CA that signs: { type: 'certflow', caId } (key per caKeyStore) or { type: 'acm-pca', arn } */
        ca: SigningCaSchema.optional(),
        /** days the certificates are valid for */
        validityDays: wholeNumber(1, 3650, 365),
        /** the provider's name (its ARN ends in certificateprovider/{name}) */
        name: z
          .string()
          .regex(/^[\w=,@-]{1,128}$/, 'a certificate provider name: 1-128 of letters, digits, _ = , @ -')
          .default('certflow'),
      }),
    ).prefault({}),
  })
  .strict()
  .superRefine((config, ctx) => {
    if (config.certificateProvider.enabled && !config.certificateProvider.ca) {
      ctx.addIssue({
        code: 'custom',
        path: ['certificateProvider', 'ca'],
        message: 'an enabled certificate provider needs the CA that signs (a certflow CA id or an ACM PCA ARN)',
      });
    }
    if (config.caKeyStore === 'kms' && config.caKmsKeyArns.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['caKmsKeyArns'],
        message: "caKeyStore 'kms' needs the ARNs of the CA keys (kms:Sign is granted on those keys only)",
      });
    }
  });

export type DeployConfig = z.output<typeof DeployConfigSchema>;
export type DeployConfigInput = z.input<typeof DeployConfigSchema>;

/** Validates a configuration object; throws with every problem listed. */
export function parseDeployConfig(input: unknown): DeployConfig {
  const result = DeployConfigSchema.safeParse(input ?? {});
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.') || '(config)'}: ${i.message}`).join('; ');
    throw new Error(`invalid certflow deploy configuration: ${problems}`);
  }
  return result.data;
}

/** The configuration from the CDK context of `node`: the `certflow` object, then `certflow:<key>` overrides. */
export function loadDeployConfig(node: Node): DeployConfig {
  const base: unknown = node.tryGetContext(CONTEXT_KEY) ?? {};
  if (typeof base !== 'object' || base === null || Array.isArray(base)) {
    throw new Error(`invalid certflow deploy configuration: context "${CONTEXT_KEY}" must be an object`);
  }
  const merged: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const key of Object.keys(DeployConfigSchema.shape)) {
    const override: unknown = node.tryGetContext(`${CONTEXT_KEY}:${key}`);
    if (override !== undefined) merged[key] = override;
  }
  return parseDeployConfig(merged);
}
