/**
 * The response bodies of the REST API as zod schemas, for the OpenAPI document. Each is tied to the TypeScript type
 * the core returns by a compile-time equality check (below), so the document cannot drift from what the handlers
 * answer: change a view in the core and this file stops compiling until its schema says the same.
 */
import { z } from 'zod';
import type { TaskView } from '../core/bulk/service';
import type { CaView, CertificateView, IssuedView } from '../core/ca/service';
import type * as ca from '../core/ca/service';
import type { InventoryPage } from '../core/ports';
import type * as provisioning from '../core/provisioning/service';
import type * as bulkProvisioning from '../core/provisioning/bulk';
import { RevokeBodySchema } from '../core/ca/requests';

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const isoDate = z.string().describe('ISO 8601 date and time');
const kind = z.enum(['root', 'intermediate', 'server', 'device']);
const status = z.enum(['active', 'revoked']);
const reason = RevokeBodySchema.shape.reason.unwrap();

export const ErrorResponseSchema = z
  .object({
    code: z.string().describe('machine-readable, e.g. INVALID_REQUEST, TASK_NOT_FOUND'),
    message: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
  })
  .describe('Every 4xx and 5xx answer.');

export const BatchAcceptedSchema = z.object({
  taskId: z.string(),
  status: z.enum(['pending', 'in_progress', 'complete', 'failed']),
});

export const TaskViewSchema = z.object({
  taskId: z.string(),
  supplierId: z.string(),
  status: z.enum(['pending', 'in_progress', 'complete', 'failed']),
  quantity: z.number().int(),
  chunksPending: z.number().int(),
  chunksTotal: z.number().int(),
  createdAt: isoDate,
  batchDate: z.number().int().describe("CDF's name for the creation time, epoch milliseconds"),
  completedAt: isoDate.optional(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  registered: z
    .number()
    .int()
    .optional()
    .describe(
      'certificates registered with AWS IoT so far (counted per finished chunk), when the batch registers them',
    ),
  registrationTotal: z
    .number()
    .int()
    .optional()
    .describe('how many the batch registers: "registered of registrationTotal"'),
});

/** 303 while the batch runs: the task view and a message. */
export const TaskInProgressSchema = TaskViewSchema.extend({ message: z.string() });

export const SignedUrlsSchema = z
  .array(z.string().url())
  .describe('presigned URLs (CDF: one per chunk zip; certflow: the one batch zip, its chunk zips being deleted)');

export const CaViewSchema = z.object({
  caId: hex64,
  kind: z.enum(['root', 'intermediate']),
  parentId: hex64.optional(),
  commonName: z.string(),
  subject: z.string(),
  serialNumber: z.string(),
  keyType: z.string(),
  status,
  notBefore: isoDate,
  notAfter: isoDate,
  pathLength: z.number().int().optional(),
  certificatePem: z.string(),
  createdAt: isoDate,
  revokedAt: isoDate.optional(),
  revocationReason: z.string().optional(),
  crlNumber: z.number().int(),
});

export const CaListSchema = z.object({ cas: z.array(CaViewSchema) });

export const IssuedViewSchema = z.object({
  certificateId: hex64,
  serialNumber: z.string(),
  commonName: z.string(),
  issuerId: z.string(),
  notBefore: isoDate,
  notAfter: isoDate,
  certificatePem: z.string(),
  chainPem: z.string().describe('issuing CA first, root last'),
  privateKeyPem: z.string().optional().describe('PKCS#8, only when certflow made the key; returned once, never stored'),
  thingName: z.string().optional(),
});

const inventoryShape = {
  certificateId: hex64,
  kind,
  commonName: z.string(),
  issuerId: z.string(),
  serialNumber: z.string(),
  notBefore: isoDate,
  notAfter: isoDate,
  status,
  issuedAt: isoDate,
  revokedAt: isoDate.optional(),
  revocationReason: z.string().optional(),
  batchId: z.string().optional(),
  thingName: z.string().optional(),
  supplierId: z.string().optional(),
  origin: z.string().optional(),
};

export const InventoryRecordSchema = z.object(inventoryShape);

export const InventoryPageSchema = z.object({
  items: z.array(InventoryRecordSchema),
  nextToken: z.string().optional().describe('opaque; absent on the last page'),
});

export const CertificateViewSchema = z.object({
  ...inventoryShape,
  certificatePem: z.string().optional(),
  chainPem: z.string().optional(),
});

export const CertificateRevokedSchema = z.object({
  certificateId: hex64,
  status: z.literal('revoked'),
  reason,
  revokedAt: isoDate,
  crlNumber: z.number().int().optional(),
});

export const CaRevokedSchema = z.object({
  caId: hex64,
  status: z.literal('revoked'),
  reason,
  revokedAt: isoDate,
  certificatesRevoked: z.number().int(),
  thingsToRotate: z.number().int(),
  complete: z.boolean().describe('false: the revoke-issued workflow revokes the rest'),
  crlNumber: z.number().int().optional(),
});

/** POST /certificates/{id}/revoke answers like POST /cas/{caId}/revoke when the certificate is a CA's. */
export const RevokeResultSchema = z.union([CertificateRevokedSchema, CaRevokedSchema]);

// -- provisioning ----------------------------------------------------------------------------------------------

const taskStatus = z.enum(['pending', 'in_progress', 'complete', 'failed']);

export const TemplateListSchema = z.object({
  templates: z.array(z.object({ templateId: z.string() })).describe('the stored templates, by id'),
});

export const TemplateSummarySchema = z
  .object({
    templateId: z.string(),
    parameters: z.record(
      z.string(),
      z.object({ type: z.string(), default: z.union([z.string(), z.number()]).optional() }),
    ),
    resources: z.record(z.string(), z.string()).describe('logical name → resource type'),
    cdf: z.array(z.string()).describe('the CDF extensions the template uses'),
  })
  .describe('the template as certflow understood it');

export const ProvisionResultSchema = z.object({
  thingName: z.string(),
  resourceArns: z
    .record(z.string(), z.string())
    .describe('thing, certificate, and each policy by its logical name, as RegisterThing answers'),
  certificateId: hex64,
  certificatePem: z.string(),
  privateKey: z.string().optional().describe('PKCS#8, only when certflow made the key; returned once, never stored'),
  publicKey: z.string().optional(),
});

export const BulkProvisioningAcceptedSchema = z.object({
  taskId: z.string(),
  status: taskStatus,
  total: z.number().int().describe('parameter sets'),
  chunksTotal: z.number().int(),
});

const itemError = z.object({
  index: z.number().int().describe("the parameter set's position in the request (0-based)"),
  code: z.string(),
  message: z.string(),
  path: z.string().optional().describe('JSON path of the fault in the template'),
});

export const ProvisioningTaskViewSchema = z.object({
  taskId: z.string(),
  provisioningTemplateId: z.string(),
  status: taskStatus,
  total: z.number().int(),
  chunksTotal: z.number().int(),
  chunksDone: z.number().int(),
  createdAt: isoDate,
  completedAt: isoDate.optional(),
  succeeded: z.number().int().optional(),
  failed: z.number().int().optional(),
  errors: z.array(itemError).optional().describe('per-item errors; items that succeeded are in the results'),
  error: z.object({ code: z.string(), message: z.string() }).optional().describe('why the whole task failed'),
  results: z
    .array(z.object({ chunk: z.number().int(), url: z.string().url() }))
    .describe("presigned URLs (one hour) of the chunks' results: things, certificates, keys certflow made"),
});

// -- the schemas say exactly what the core returns (compile-time) --------------------------------------------------

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Expect<T extends true> = T;
/** optional fields compare as `?: T` on both sides (zod infers `?: T | undefined`) */
type Plain<T> = { [K in keyof T]: Exclude<T[K], undefined> };

export type ResponseSchemaChecks = [
  Expect<Equal<Plain<z.infer<typeof TaskViewSchema>>, Plain<TaskView>>>,
  Expect<Equal<Plain<z.infer<typeof CaViewSchema>>, Plain<CaView>>>,
  Expect<Equal<Plain<z.infer<typeof IssuedViewSchema>>, Plain<IssuedView>>>,
  Expect<Equal<Plain<z.infer<typeof CertificateViewSchema>>, Plain<CertificateView>>>,
  Expect<Equal<Plain<z.infer<typeof InventoryRecordSchema>>, Plain<InventoryPage['items'][number]>>>,
  Expect<Equal<Plain<z.infer<typeof CertificateRevokedSchema>>, Plain<CertificateRevoked>>>,
  Expect<Equal<Plain<z.infer<typeof CaRevokedSchema>>, Plain<Awaited<ReturnType<typeof ca.revokeCa>>>>>,
  Expect<Equal<z.infer<typeof TemplateListSchema>, Awaited<ReturnType<typeof provisioning.listTemplates>>>>,
  Expect<Equal<Plain<z.infer<typeof TemplateSummarySchema>>, Plain<provisioning.TemplateSummary>>>,
  Expect<Equal<Plain<z.infer<typeof ProvisionResultSchema>>, Plain<provisioning.ProvisionResult>>>,
  Expect<
    Equal<
      z.infer<typeof BulkProvisioningAcceptedSchema>,
      Awaited<ReturnType<typeof bulkProvisioning.createBulkProvisioningTask>>
    >
  >,
  Expect<Equal<Plain<z.infer<typeof ProvisioningTaskViewSchema>>, Plain<bulkProvisioning.ProvisioningTaskView>>>,
];
type CertificateRevoked = Exclude<
  Awaited<ReturnType<typeof ca.revokeCertificate>>,
  Awaited<ReturnType<typeof ca.revokeCa>>
>;
