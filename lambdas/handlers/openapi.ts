/**
 * The OpenAPI 3.1 document of the REST API, generated: paths from every route table the server exposes (routes.ts:
 * ROUTE_TABLES), request bodies from the schemas the handlers parse with (BODY_SCHEMAS), query strings from theirs,
 * responses from responses.ts.
 * A route without a description here fails the generation, so a new route cannot go undocumented.
 */
import { z } from 'zod';
import { EVENT_EXAMPLES } from '../core/events';
import { ListCertificatesQuerySchema } from '../core/ca/requests';
import { CDF_MEDIA_TYPE, type Route } from './http';
import {
  BatchAcceptedSchema,
  BulkProvisioningAcceptedSchema,
  CaListSchema,
  CaRevokedSchema,
  CaViewSchema,
  CertificateRevokedSchema,
  CertificateViewSchema,
  ErrorResponseSchema,
  InventoryPageSchema,
  IssuedViewSchema,
  ProvisioningTaskViewSchema,
  ProvisionResultSchema,
  RevokeResultSchema,
  SignedUrlsSchema,
  TaskInProgressSchema,
  TaskViewSchema,
  TemplateListSchema,
  TemplateSummarySchema,
} from './responses';
import { BODY_SCHEMAS, routeKey, SERVED_ROUTES, TemplateBodySchema } from './routes';

type Json = Record<string, unknown>;

const TAGS = ['bulk issuance', 'CA hierarchy', 'inventory', 'provisioning'] as const;
type Tag = (typeof TAGS)[number];

interface ResponseDoc {
  description: string;
  /** JSON body (both JSON media types); absent for bodies described by `content` */
  schema?: z.ZodType;
  example?: unknown;
  /** non-JSON bodies: media type → description */
  content?: Record<string, string>;
  headers?: Record<string, string>;
}

export interface OperationDoc {
  operationId: string;
  summary: string;
  description?: string;
  tag: Tag;
  /** path parameter → description (and an optional pattern) */
  params?: Record<string, { description: string; pattern?: string }>;
  query?: z.ZodObject;
  /** extra query parameters the handler reads without a schema */
  extraQuery?: Record<string, { description: string; enum?: string[] }>;
  headers?: Record<string, string>;
  bodyExample?: unknown;
  responses: Record<string, ResponseDoc>;
}

// -- examples ---------------------------------------------------------------------------------------------------

const TASK_ID = '5f0c2a57-3b9e-4f0e-9f5e-0d4f2b9c1a11';
const ROOT_ID = '1b3d5e7f9a1c3e5b7d9f1a3c5e7b9d1f9a3f1c0e5b7d2e4f6a8c0b1d3e5f7a9c';
const CA_ID = '9a3f1c0e5b7d2e4f6a8c0b1d3e5f7a9c1b3d5e7f9a1c3e5b7d9f1a3c5e7b9d1f';
const CERT_ID = '67013ed823dc3dcfc67a7bbedb79551ef7d1bb277a21a26c902dc8e48bc106f8';
const PEM = '-----BEGIN CERTIFICATE-----\nMIIB…\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nMIGH…\n-----END PRIVATE KEY-----\n';

const taskExample = {
  taskId: TASK_ID,
  supplierId: 'demo',
  status: 'in_progress',
  quantity: 10000,
  chunksPending: 4,
  chunksTotal: 10,
  createdAt: '2026-11-24T21:36:30.102Z',
  batchDate: 1795642590102,
};
const caExample = {
  caId: CA_ID,
  kind: 'intermediate',
  parentId: ROOT_ID,
  commonName: 'Factory Line 3 Issuing CA',
  subject: 'CN=Factory Line 3 Issuing CA, O=Acme',
  serialNumber: '5a0c1e2f3a4b5c6d7e8f9a0b1c2d3e4f',
  keyType: 'ec-p256',
  status: 'active',
  notBefore: '2026-11-24T21:00:00.000Z',
  notAfter: '2031-11-23T21:00:00.000Z',
  pathLength: 0,
  certificatePem: PEM,
  createdAt: '2026-11-24T21:00:00.000Z',
  crlNumber: 1,
};
const issued = EVENT_EXAMPLES['Certificate Issued'].certificates[0]!;
const inventoryExample = {
  certificateId: CERT_ID,
  kind: 'device',
  commonName: issued.commonName,
  issuerId: CA_ID,
  serialNumber: issued.serialNumber,
  notBefore: issued.notBefore,
  notAfter: issued.notAfter,
  status: 'active',
  issuedAt: '2026-11-24T21:36:48.210Z',
  batchId: TASK_ID,
  supplierId: 'demo',
  origin: 'bulk',
};
const issuedExample = {
  certificateId: CERT_ID,
  serialNumber: issued.serialNumber,
  commonName: 'thing-0042',
  issuerId: CA_ID,
  notBefore: issued.notBefore,
  notAfter: issued.notAfter,
  certificatePem: PEM,
  chainPem: PEM + PEM,
  privateKeyPem: KEY,
  thingName: 'thing-0042',
};
const TEMPLATE_ID = 'factory-line';
const PROVISIONING_TASK_ID = '8d2e6b1a-7c4f-4e2a-9b3d-5f1e0c7a9d24';
const templateExample = {
  Parameters: {
    ThingName: { Type: 'String' },
    Site: { Type: 'String', Default: 'berlin' },
    CertificatePem: { Type: 'String' },
    CaCertificatePem: { Type: 'String' },
  },
  Resources: {
    thing: {
      Type: 'AWS::IoT::Thing',
      Properties: { ThingName: { Ref: 'ThingName' }, AttributePayload: { site: { Ref: 'Site' } } },
    },
    certificate: {
      Type: 'AWS::IoT::Certificate',
      Properties: {
        CertificatePem: { Ref: 'CertificatePem' },
        CACertificatePem: { Ref: 'CaCertificatePem' },
        Status: 'ACTIVE',
      },
    },
    policy: {
      Type: 'AWS::IoT::Policy',
      Properties: {
        PolicyName: 'fleet-basic',
        PolicyDocument:
          '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}',
      },
    },
  },
  CDF: { createDeviceCertificate: true, thingGroups: ['provisioned'] },
};
const templateSummaryExample = {
  templateId: TEMPLATE_ID,
  parameters: {
    ThingName: { type: 'String' },
    Site: { type: 'String', default: 'berlin' },
    CertificatePem: { type: 'String' },
    CaCertificatePem: { type: 'String' },
  },
  resources: { thing: 'AWS::IoT::Thing', certificate: 'AWS::IoT::Certificate', policy: 'AWS::IoT::Policy' },
  cdf: ['createDeviceCertificate', 'thingGroups'],
};
const provisionBodyExample = {
  provisioningTemplateId: TEMPLATE_ID,
  parameters: { ThingName: 'sensor-0001', Site: 'berlin' },
  cdfProvisioningParameters: { caId: CA_ID, certInfo: { organization: 'Acme', country: 'DE', daysExpiry: 365 } },
};
const ARN = 'arn:aws:iot:eu-west-1:123456789012';
const provisionedExample = {
  thingName: 'sensor-0001',
  resourceArns: {
    thing: `${ARN}:thing/sensor-0001`,
    certificate: `${ARN}:cert/${CERT_ID}`,
    policy: `${ARN}:policy/fleet-basic`,
  },
  certificateId: CERT_ID,
  certificatePem: PEM,
  privateKey: KEY,
  publicKey: '-----BEGIN PUBLIC KEY-----\nMFkw…\n-----END PUBLIC KEY-----\n',
};
const provisioningTaskExample = {
  taskId: PROVISIONING_TASK_ID,
  provisioningTemplateId: TEMPLATE_ID,
  status: 'complete',
  total: 1000,
  chunksTotal: 10,
  chunksDone: 10,
  createdAt: '2026-11-24T21:40:00.000Z',
  completedAt: '2026-11-24T21:41:12.000Z',
  succeeded: 999,
  failed: 1,
  errors: [
    {
      index: 250,
      code: 'INVALID_PROPERTY',
      message: 'Resources.thing.Properties.ThingName: "sensor 250" is not a thing name (1–128 of a-z A-Z 0-9 : _ -)',
      path: 'Resources.thing.Properties.ThingName',
    },
  ],
  results: [
    {
      chunk: 0,
      url: `https://certflow-batches.s3.eu-west-1.amazonaws.com/bulkprovisioning/${PROVISIONING_TASK_ID}/results/00000.json?X-Amz-Signature=…`,
    },
  ],
};
const templateIdParam = {
  templateId: { description: 'a template id (1–128 of A–Z a–z 0–9 _ . -)', pattern: '^[A-Za-z0-9_.-]{1,128}$' },
};

const error = (code: string, message: string, details?: Record<string, unknown>): ResponseDoc => ({
  description: message,
  schema: ErrorResponseSchema,
  example: { code, message, ...(details ? { details } : {}) },
});
const invalid = error('INVALID_REQUEST', 'quantity: Too small: expected number to be >=1');
const caIdParam = { caId: { description: 'a certflow CA id (its certificate id)', pattern: '^[0-9a-f]{64}$' } };
const certificateIdParam = {
  taskId: {
    description: 'a certificate id (64 lower-case hex characters, the AWS IoT certificate id)',
    pattern: '^[0-9a-f]{64}$',
  },
};

// -- operations, by route ---------------------------------------------------------------------------------------

export const API_OPERATIONS: Readonly<Record<string, OperationDoc>> = {
  'POST /supplier/{supplierId}/certificates': {
    operationId: 'createBatch',
    summary: 'Start a bulk-issuance batch',
    description:
      'Validates the request, stores a `pending` task and starts the bulk-issuance workflow named by the task id. ' +
      'A repeated `Idempotency-Key` returns the first task.',
    tag: 'bulk issuance',
    params: { supplierId: { description: 'a configured supplier (maps to its signing CA)' } },
    headers: { 'Idempotency-Key': '1–128 characters of A–Z a–z 0–9 _ . : -; the same key returns the same task' },
    bodyExample: { quantity: 1000, keyType: 'ec-p256', certInfo: { commonName: '`dev-`A000${increment}' } },
    responses: {
      '202': {
        description: 'accepted; poll the task',
        schema: BatchAcceptedSchema,
        example: { taskId: TASK_ID, status: 'pending' },
        headers: { location: '/certificates/{taskId}', 'x-taskid': 'the task id' },
      },
      '400': invalid,
      '404': error('SUPPLIER_NOT_FOUND', 'supplier acme is not configured'),
      '409': error('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used for a different request'),
      '415': error(
        'UNSUPPORTED_MEDIA_TYPE',
        'Content-Type: send application/vnd.aws-cdf-v1.0+json or application/json',
      ),
    },
  },
  'GET /certificates/{taskId}/task': {
    operationId: 'getTask',
    summary: 'Where a batch stands',
    tag: 'bulk issuance',
    params: { taskId: { description: 'the task id returned when the batch was accepted' } },
    responses: {
      '200': { description: 'the task', schema: TaskViewSchema, example: taskExample },
      '404': error('TASK_NOT_FOUND', `no batch task ${TASK_ID}`),
    },
  },
  'GET /certificates/{taskId}': {
    operationId: 'getBatchOrCertificate',
    summary: "A batch's zip (task id) or one certificate (certificate id)",
    description:
      'With a task id: `303` while the batch runs, the zip when complete (inline up to 4 MiB, else `302` to a ' +
      "presigned URL), a list with the zip's presigned URL with `downloadtype=signedUrl` (CDF lists one per chunk; " +
      'certflow deletes the chunk zips once the batch zip is complete), `409` when it failed. With a ' +
      'certificate id (64 hex characters): the certificate from the inventory.',
    tag: 'bulk issuance',
    params: { taskId: { description: 'a task id, or a certificate id (64 lower-case hex characters)' } },
    extraQuery: {
      downloadtype: {
        description: 'signedUrl: a JSON list with the presigned URL of the batch zip; zip (default)',
        enum: ['signedUrl', 'zip'],
      },
    },
    responses: {
      '200': {
        description: 'the zip, the presigned URLs, or the certificate',
        content: { 'application/zip': 'the batch zip (certificates, keys, manifest.csv)' },
        schema: z.union([CertificateViewSchema, SignedUrlsSchema]),
        example: { ...inventoryExample, certificatePem: PEM, chainPem: PEM + PEM },
      },
      '302': { description: 'the zip is larger than 4 MiB: a presigned URL', headers: { location: 'presigned URL' } },
      '303': {
        description: 'the batch is not complete yet',
        schema: TaskInProgressSchema,
        example: { ...taskExample, message: 'the batch is not complete yet' },
        headers: { location: '/certificates/{taskId}/task' },
      },
      '400': error('INVALID_DOWNLOAD_TYPE', 'downloadType must be signedUrl or zip'),
      '404': error('TASK_NOT_FOUND', `no batch task ${TASK_ID}`),
      '409': error('BATCH_FAILED', 'the batch failed: chunk 3 failed'),
    },
  },
  'POST /cas/root': {
    operationId: 'createRootCa',
    summary: 'Create a root CA',
    tag: 'CA hierarchy',
    bodyExample: { subject: { commonName: 'Acme Fleet Root', organization: 'Acme' }, validityDays: 3650 },
    responses: {
      '201': {
        description: 'the root',
        schema: CaViewSchema,
        example: { ...caExample, kind: 'root', parentId: undefined },
      },
      '400': invalid,
    },
  },
  'GET /cas': {
    operationId: 'listCas',
    summary: 'Every CA, oldest first',
    tag: 'CA hierarchy',
    responses: { '200': { description: 'the CAs', schema: CaListSchema, example: { cas: [caExample] } } },
  },
  'GET /cas/{caId}': {
    operationId: 'getCa',
    summary: 'One CA',
    tag: 'CA hierarchy',
    params: caIdParam,
    responses: {
      '200': { description: 'the CA', schema: CaViewSchema, example: caExample },
      '404': error('CA_NOT_FOUND', `no CA ${CA_ID}`),
    },
  },
  'POST /cas/{caId}/intermediates': {
    operationId: 'createIntermediateCa',
    summary: 'Create an intermediate under a CA',
    tag: 'CA hierarchy',
    params: caIdParam,
    bodyExample: { subject: { commonName: 'Factory Line 3 Issuing CA' }, pathLength: 0 },
    responses: {
      '201': { description: 'the intermediate', schema: CaViewSchema, example: caExample },
      '400': invalid,
      '404': error('CA_NOT_FOUND', `no CA ${ROOT_ID}`),
      '409': error('ISSUER_REVOKED', `CA ${ROOT_ID} is revoked`),
    },
  },
  'POST /cas/{caId}/revoke': {
    operationId: 'revokeCa',
    summary: 'Compromise response: revoke a CA and everything it issued',
    description:
      'The CA is revoked (its parent publishes a new CRL), every certificate it issued is revoked, the things ' +
      'that held them join the rotation thing group. Beyond one slice the revoke-issued workflow continues ' +
      '(`complete: false`).',
    tag: 'CA hierarchy',
    params: caIdParam,
    bodyExample: { reason: 'cACompromise' },
    responses: {
      '200': {
        description: 'revoked',
        schema: CaRevokedSchema,
        example: {
          caId: CA_ID,
          status: 'revoked',
          reason: 'cACompromise',
          revokedAt: '2026-11-25T08:00:00.000Z',
          certificatesRevoked: 2000,
          thingsToRotate: 2000,
          complete: false,
        },
      },
      '404': error('CA_NOT_FOUND', `no CA ${CA_ID}`),
      '409': error('ALREADY_REVOKED', `CA ${CA_ID} is revoked already`),
    },
  },
  'GET /cas/{caId}/crl': {
    operationId: 'getCrl',
    summary: "The CA's current CRL (DER, or PEM with Accept: application/x-pem-file)",
    tag: 'CA hierarchy',
    params: caIdParam,
    responses: {
      '200': {
        description: 'the CRL',
        content: { 'application/pkix-crl': 'DER', 'application/x-pem-file': 'PEM' },
      },
      '404': error('CA_NOT_FOUND', `no CA ${CA_ID}`),
    },
  },
  'POST /certificates/server': {
    operationId: 'issueServerCertificate',
    summary: 'Issue a TLS server certificate (the key is returned once)',
    tag: 'CA hierarchy',
    bodyExample: { issuerId: CA_ID, fqdn: 'mqtt.example.com', sans: { dns: ['mqtt.example.com'] } },
    responses: {
      '201': {
        description: 'the certificate, its chain and key',
        schema: IssuedViewSchema,
        example: { ...issuedExample, commonName: 'mqtt.example.com', thingName: undefined },
      },
      '400': invalid,
      '404': error('CA_NOT_FOUND', `no CA ${CA_ID}`),
      '409': error('ISSUER_EXPIRED', `CA ${CA_ID} expired`),
    },
  },
  'POST /certificates/device': {
    operationId: 'issueDeviceCertificate',
    summary: 'Issue a device certificate, from a fresh key (returned once) or from a CSR',
    tag: 'CA hierarchy',
    bodyExample: { issuerId: CA_ID, thingName: 'thing-0042' },
    responses: {
      '201': { description: 'the certificate, its chain (and key)', schema: IssuedViewSchema, example: issuedExample },
      '400': invalid,
      '404': error('CA_NOT_FOUND', `no CA ${CA_ID}`),
      '409': error('ISSUER_EXPIRED', `CA ${CA_ID} expired`),
    },
  },
  'GET /certificates': {
    operationId: 'listCertificates',
    summary: 'The inventory: by issuer (and status), or expiring before a date; paginated',
    tag: 'inventory',
    query: ListCertificatesQuerySchema,
    responses: {
      '200': {
        description: 'one page',
        schema: InventoryPageSchema,
        example: { items: [inventoryExample], nextToken: 'eyJwayI6Ii4uLiJ9' },
      },
      '400': error('INVALID_REQUEST', 'issuer or expiringBefore is required'),
    },
  },
  'POST /certificates/{taskId}/revoke': {
    operationId: 'revokeCertificate',
    summary: 'Revoke one certificate (a CA id revokes the CA as POST /cas/{caId}/revoke)',
    tag: 'inventory',
    params: certificateIdParam,
    bodyExample: { reason: 'keyCompromise' },
    responses: {
      '200': {
        description: 'revoked; the issuer published a new CRL',
        schema: RevokeResultSchema,
        example: {
          certificateId: CERT_ID,
          status: 'revoked',
          reason: 'keyCompromise',
          revokedAt: '2026-11-25T08:00:00.000Z',
          crlNumber: 2,
        } satisfies z.input<typeof CertificateRevokedSchema>,
      },
      '404': error('CERTIFICATE_NOT_FOUND', `no certificate ${CERT_ID} in the inventory`),
      '409': error('ALREADY_REVOKED', `certificate ${CERT_ID} is revoked already`),
    },
  },
  'GET /templates': {
    operationId: 'listTemplates',
    summary: 'The stored provisioning templates, by id',
    tag: 'provisioning',
    responses: {
      '200': {
        description: 'the template ids, sorted',
        schema: TemplateListSchema,
        example: { templates: [{ templateId: TEMPLATE_ID }] },
      },
    },
  },
  'PUT /templates/{templateId}': {
    operationId: 'putTemplate',
    summary: 'Store a provisioning template (validated on upload)',
    description:
      'The AWS IoT provisioning template JSON (`Parameters`, `Mappings`, `Conditions`, `Resources` with ' +
      '`AWS::IoT::Thing`, `AWS::IoT::Certificate`, `AWS::IoT::Policy`) with certflow’s `CDF` section, checked ' +
      'whole before it is stored: a bad template is refused with the JSON path of its fault and nothing is stored.',
    tag: 'provisioning',
    params: templateIdParam,
    bodyExample: templateExample,
    responses: {
      '201': {
        description: 'stored (new)',
        schema: TemplateSummarySchema,
        example: templateSummaryExample,
        headers: { location: '/templates/{templateId}' },
      },
      '200': {
        description: 'replaced',
        schema: TemplateSummarySchema,
        example: templateSummaryExample,
        headers: { location: '/templates/{templateId}' },
      },
      '400': error(
        'REFERENCE_CYCLE',
        'Resources.policy.Properties.PolicyName.Ref: reference cycle thing → policy → thing',
        { path: 'Resources.policy.Properties.PolicyName.Ref' },
      ),
    },
  },
  'GET /templates/{templateId}': {
    operationId: 'getTemplate',
    summary: 'A provisioning template, as uploaded',
    tag: 'provisioning',
    params: templateIdParam,
    responses: {
      '200': { description: 'the template', schema: TemplateBodySchema, example: templateExample },
      '404': error('TEMPLATE_NOT_FOUND', `no provisioning template ${TEMPLATE_ID}`),
    },
  },
  'POST /things': {
    operationId: 'provisionThing',
    summary: 'Provision one thing from a template (CDF provision)',
    description:
      'Creates the thing (type, attributes, groups), its certificate and policies as the template says. With the ' +
      'CDF `createDeviceCertificate` extension certflow makes the key and a certificate from a certflow CA and ' +
      'returns the key once; `registerDeviceCertificateWithoutCA` and `PCA_{alias}`/`CA_{alias}` are the others.',
    tag: 'provisioning',
    bodyExample: provisionBodyExample,
    responses: {
      '201': {
        description: 'the thing, its ARNs, certificate (and key)',
        schema: ProvisionResultSchema,
        example: provisionedExample,
      },
      '400': error('MISSING_PARAMETER', 'Parameters.ThingName: no value given for ThingName and it has no Default'),
      '404': error('TEMPLATE_NOT_FOUND', `no provisioning template ${TEMPLATE_ID}`),
      '409': error('THING_EXISTS', 'thing sensor-0001 exists with other attributes'),
    },
  },
  'POST /bulkprovisioningtasks': {
    operationId: 'createBulkProvisioningTask',
    summary: 'Provision many things from one template (the bulk-provisioning workflow)',
    description:
      'Stores the parameter sets chunk by chunk and starts the bulk-provisioning workflow; a failing item fails ' +
      'only itself. Poll the task.',
    tag: 'provisioning',
    bodyExample: {
      provisioningTemplateId: TEMPLATE_ID,
      parameters: [{ ThingName: 'sensor-0001' }, { ThingName: 'sensor-0002', Site: 'austin' }],
      cdfProvisioningParameters: { caId: CA_ID, certInfo: { organization: 'Acme' } },
    },
    responses: {
      '202': {
        description: 'accepted; poll the task',
        schema: BulkProvisioningAcceptedSchema,
        example: { taskId: PROVISIONING_TASK_ID, status: 'pending', total: 2, chunksTotal: 1 },
        headers: { location: '/bulkprovisioningtasks/{taskId}' },
      },
      '400': error('QUANTITY_TOO_LARGE', 'parameters: at most 100000 parameter sets per task'),
      '404': error('TEMPLATE_NOT_FOUND', `no provisioning template ${TEMPLATE_ID}`),
    },
  },
  'GET /bulkprovisioningtasks/{taskId}': {
    operationId: 'getBulkProvisioningTask',
    summary: 'Where a bulk provisioning task stands: counts, per-item errors, result URLs',
    tag: 'provisioning',
    params: {
      taskId: { description: 'the task id returned when the task was accepted', pattern: '^[A-Za-z0-9-]{1,64}$' },
    },
    responses: {
      '200': { description: 'the task', schema: ProvisioningTaskViewSchema, example: provisioningTaskExample },
      '400': error('INVALID_REQUEST', 'taskId: a task id'),
      '404': error('TASK_NOT_FOUND', `no bulk provisioning task ${PROVISIONING_TASK_ID}`),
    },
  },
};

// -- generation -------------------------------------------------------------------------------------------------

const JSON_TYPES = ['application/json', CDF_MEDIA_TYPE];

/** JSON Schema 2020-12 (OpenAPI 3.1's dialect) of a zod schema, without `$schema` (the document declares it). */
export function schemaOf(schema: z.ZodType, io: 'input' | 'output'): Json {
  const json = z.toJSONSchema(schema, { io, unrepresentable: 'throw' }) as Json;
  delete json.$schema;
  return json;
}

const jsonContent = (schema: Json, example: unknown): Json =>
  Object.fromEntries(JSON_TYPES.map((t) => [t, { schema, ...(example !== undefined ? { example } : {}) }]));

/** Drops `undefined` (examples written with `field: undefined` to remove a field of a spread). */
const plain = (value: unknown): unknown => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));

function operation(route: Route, doc: OperationDoc, body: z.ZodType | undefined): Json {
  const names = [...route.resource.matchAll(/\{([^}+]+)\+?\}/g)].map((m) => m[1]!);
  const parameters: Json[] = names.map((name) => {
    const p = doc.params?.[name];
    if (!p) throw new Error(`${routeKey(route)}: path parameter {${name}} has no description`);
    return {
      name,
      in: 'path',
      required: true,
      description: p.description,
      schema: { type: 'string', ...(p.pattern ? { pattern: p.pattern } : {}) },
    };
  });
  for (const name of Object.keys(doc.params ?? {})) {
    if (!names.includes(name)) throw new Error(`${routeKey(route)}: no path parameter {${name}}`);
  }
  if (doc.query) {
    const query = schemaOf(doc.query, 'input') as { properties: Record<string, Json>; required?: string[] };
    for (const [name, schema] of Object.entries(query.properties)) {
      parameters.push({ name, in: 'query', required: query.required?.includes(name) ?? false, schema });
    }
  }
  for (const [name, q] of Object.entries(doc.extraQuery ?? {})) {
    parameters.push({
      name,
      in: 'query',
      required: false,
      description: q.description,
      schema: { type: 'string', ...(q.enum ? { enum: q.enum } : {}) },
    });
  }
  for (const [name, description] of Object.entries(doc.headers ?? {})) {
    parameters.push({ name, in: 'header', required: false, description, schema: { type: 'string' } });
  }
  const responses: Json = {};
  for (const [status, r] of Object.entries(doc.responses)) {
    const content: Json = r.schema ? jsonContent(schemaOf(r.schema, 'output'), plain(r.example)) : {};
    for (const [type, description] of Object.entries(r.content ?? {})) {
      content[type] = { schema: { type: 'string', contentMediaType: type, description } };
    }
    responses[status] = {
      description: r.description,
      ...(Object.keys(content).length ? { content } : {}),
      ...(r.headers
        ? {
            headers: Object.fromEntries(
              Object.entries(r.headers).map(([h, d]) => [h, { description: d, schema: { type: 'string' } }]),
            ),
          }
        : {}),
    };
  }
  responses.default = {
    description: 'an error: 4xx with a machine-readable code, or 500 INTERNAL_ERROR',
    content: jsonContent(schemaOf(ErrorResponseSchema, 'output'), undefined),
  };
  return {
    operationId: doc.operationId,
    summary: doc.summary,
    ...(doc.description ? { description: doc.description } : {}),
    tags: [doc.tag],
    ...(parameters.length ? { parameters } : {}),
    ...(body
      ? { requestBody: { required: true, content: jsonContent(schemaOf(body, 'input'), plain(doc.bodyExample)) } }
      : {}),
    responses,
  };
}

/**
 * The document for these routes (default: every route of every route table). Throws for a route without an OperationDoc, a
 * described route that does not exist, or a body schema without an example.
 */
export function openApiDocument(
  routes: readonly Route[] = SERVED_ROUTES,
  operations: Readonly<Record<string, OperationDoc>> = API_OPERATIONS,
  bodies: Readonly<Record<string, z.ZodType>> = BODY_SCHEMAS,
): Json {
  const problems: string[] = [];
  const paths: Record<string, Json> = {};
  const keys = new Set(routes.map(routeKey));
  for (const route of routes) {
    const key = routeKey(route);
    const doc = operations[key];
    if (!doc) {
      problems.push(`${key}: no OperationDoc in lambdas/handlers/openapi.ts`);
      continue;
    }
    const body = bodies[key];
    if (body && doc.bodyExample === undefined) problems.push(`${key}: a body schema without an example`);
    try {
      (paths[route.resource] ??= {})[route.method.toLowerCase()] = operation(route, doc, body);
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  for (const key of Object.keys(operations)) if (!keys.has(key)) problems.push(`${key}: documented but no route`);
  if (problems.length > 0) throw new Error(`OpenAPI: ${problems.join('; ')}`);
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: 'certflow',
      version: '0.1.0',
      description:
        'X.509 certificates for IoT fleets: bulk issuance (CDF bulkcerts compatible), CA hierarchy, inventory, ' +
        'revocation, device provisioning with templates (CDF provisioning compatible). Generated from the handlers’ route tables and zod schemas by `npm run docs`.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [
      { url: 'http://127.0.0.1:4010', description: 'the local runtime (npm start)' },
      {
        url: 'https://{apiId}.execute-api.{region}.amazonaws.com/{stage}',
        description: 'API Gateway (requests signed with SigV4)',
        variables: { apiId: { default: 'API_ID' }, region: { default: 'eu-west-1' }, stage: { default: 'prod' } },
      },
    ],
    tags: TAGS.map((name) => ({ name })),
    security: [{ sigv4: [] }],
    components: {
      securitySchemes: {
        sigv4: {
          type: 'apiKey',
          name: 'Authorization',
          in: 'header',
          description: 'AWS Signature Version 4 (API Gateway IAM authorization); the local runtime needs none',
          'x-amazon-apigateway-authtype': 'awsSigv4',
        },
      },
    },
    paths,
  };
}
