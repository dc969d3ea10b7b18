/**
 * The event contract for subscribers: one custom bus, `source: "certflow"`, EventBridge-style detail types.
 * These zod schemas are the single source: docs/events.md and its JSON Schemas are generated from them, and tests
 * validate emitted events against them. No key material, ever.
 */
import { z } from 'zod';
import type { DomainEvent } from './ports';

export const EVENT_SOURCE = 'certflow';

/** The EventBridge rule pattern that starts the inventory workflow (the CDK stack and the local bus use it). */
export const INVENTORY_RULE_PATTERN = {
  source: [EVENT_SOURCE],
  'detail-type': ['Certificate Issued', 'Certificate Revoked'],
};

/**
 * The EventBridge rule pattern that starts the registry-revocation workflow (the CDK stack and the local bus use it):
 * a revoked device or server certificate is set REVOKED in the device registry. CA certificates are not device
 * certificates of the registry (AWS IoT keeps them apart, RegisterCACertificate), so their revocation is not matched.
 */
export const REGISTRY_REVOCATION_RULE_PATTERN = {
  source: [EVENT_SOURCE],
  'detail-type': ['Certificate Revoked'],
  detail: { kind: ['device', 'server'] },
};

/** certflow's own subscribers: each an EventBridge rule on AWS and a rule of the local bus, with the same pattern. */
export const EVENT_CONSUMERS: readonly { workflow: string; pattern: Record<string, unknown>; does: string }[] = [
  {
    workflow: 'inventory',
    pattern: INVENTORY_RULE_PATTERN,
    does: 'records issued certificates in the inventory and marks revoked ones (conditional writes: a replayed event changes nothing)',
  },
  {
    workflow: 'registry-revocation',
    pattern: REGISTRY_REVOCATION_RULE_PATTERN,
    does:
      'sets a revoked device or server certificate REVOKED in the device registry (AWS IoT UpdateCertificate, paced; ' +
      'locally the registry, and the broker drops the connected device); a certificate already REVOKED or never ' +
      'registered is left alone',
  },
];

const ErrorDetail = z.object({ code: z.string(), message: z.string() });

export const BatchCompletedDetail = z
  .object({
    taskId: z.string(),
    supplierId: z.string(),
    quantity: z.number().int(),
    chunksTotal: z.number().int(),
    zipKey: z.string(),
    zipSize: z.number().int(),
    completedAt: z.string(),
  })
  .strict()
  .describe('A bulk-issuance batch finished; its zip is ready.');

export const BatchFailedDetail = z
  .object({
    taskId: z.string(),
    supplierId: z.string(),
    error: ErrorDetail,
    failedAt: z.string(),
  })
  .strict()
  .describe('A bulk-issuance batch failed; no zip is offered.');

export const IssuedCertificate = z
  .object({
    certificateId: z.string().regex(/^[0-9a-f]{64}$/),
    serialNumber: z.string().regex(/^[0-9a-f]+$/),
    commonName: z.string(),
    notBefore: z.string(),
    notAfter: z.string(),
  })
  .strict();

export const CertificateIssuedDetail = z
  .object({
    issuerId: z.string().describe('the issuing CA: a certflow CA id, an ACM PCA ARN or "aws-iot"'),
    kind: z.enum(['root', 'intermediate', 'server', 'device']),
    origin: z.enum(['bulk', 'api', 'rotation', 'provisioning', 'certificate-provider']),
    taskId: z.string().optional(),
    chunk: z.number().int().optional(),
    supplierId: z.string().optional(),
    thingName: z.string().optional(),
    certificates: z.array(IssuedCertificate).min(1),
  })
  .strict()
  .describe('Certificates were issued (bulk batches send one event per slice of a chunk).');

export const CertificateRevokedDetail = z
  .object({
    certificateId: z.string().regex(/^[0-9a-f]{64}$/),
    serialNumber: z.string().regex(/^[0-9a-f]+$/),
    issuerId: z.string(),
    kind: z.enum(['root', 'intermediate', 'server', 'device']),
    reason: z.string(),
    revokedAt: z.string(),
    thingName: z.string().optional(),
  })
  .strict()
  .describe('A certificate was revoked; the issuing CA publishes a new CRL.');

export const CaCreatedDetail = z
  .object({
    caId: z.string().regex(/^[0-9a-f]{64}$/),
    kind: z.enum(['root', 'intermediate']),
    parentId: z.string().optional(),
    commonName: z.string(),
    serialNumber: z.string(),
    keyType: z.string(),
    notBefore: z.string(),
    notAfter: z.string(),
  })
  .strict()
  .describe('A certflow CA (root or intermediate) was created; its key is in the CA key store.');

export const CertificateExpiringDetail = z
  .object({
    certificateId: z.string().regex(/^[0-9a-f]{64}$/),
    serialNumber: z.string().regex(/^[0-9a-f]+$/),
    issuerId: z.string(),
    kind: z.enum(['root', 'intermediate', 'server', 'device']),
    commonName: z.string(),
    notAfter: z.string(),
    windowDays: z.number().int(),
    thingName: z.string().optional(),
  })
  .strict()
  .describe('A certificate expires within the sweep window; sent once per certificate and window.');

export const CertificateRotatedDetail = z
  .object({
    thingName: z.string(),
    certificateId: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .optional()
      .describe('the certificate the device acknowledged with (its MQTT principal)'),
    previousCertificateIds: z
      .array(z.string().regex(/^[0-9a-f]{64}$/))
      .describe('the certificates retired: detached from the thing (empty when deletion is off)'),
    deletedCertificateIds: z
      .array(z.string().regex(/^[0-9a-f]{64}$/))
      .describe('of those, the ones no other thing held: inactivated and deleted'),
    thingGroupName: z.string().describe('the rotation thing group the thing left'),
    rotatedAt: z.string(),
  })
  .strict()
  .describe('A device acknowledged its new certificate (rotation ack): it left the rotation group.');

export const EVENT_SCHEMAS = {
  'Batch Completed': BatchCompletedDetail,
  'Batch Failed': BatchFailedDetail,
  'Certificate Issued': CertificateIssuedDetail,
  'Certificate Revoked': CertificateRevokedDetail,
  'CA Created': CaCreatedDetail,
  'Certificate Expiring': CertificateExpiringDetail,
  'Certificate Rotated': CertificateRotatedDetail,
} as const;
export type DetailType = keyof typeof EVENT_SCHEMAS;

/** Builds an event, validating its detail against the contract (a bug here throws, it does not emit garbage). */
export function domainEvent<T extends DetailType>(
  detailType: T,
  detail: z.input<(typeof EVENT_SCHEMAS)[T]>,
): DomainEvent {
  return { detailType, detail: EVENT_SCHEMAS[detailType].parse(detail) as Record<string, unknown> };
}

/**
 * The whole EventBridge event of a detail type (envelope + detail), as subscribers receive it: the JSON Schema files
 * in docs/events/ and the EventBridge schema registry are generated from this.
 */
export function eventEnvelopeSchema<T extends DetailType>(detailType: T) {
  return z
    .object({
      version: z.string(),
      id: z.string(),
      'detail-type': z.literal(detailType),
      source: z.literal(EVENT_SOURCE),
      account: z.string(),
      time: z.string(),
      region: z.string(),
      resources: z.array(z.string()),
      detail: EVENT_SCHEMAS[detailType],
    })
    .describe(`${detailType}: ${EVENT_SCHEMAS[detailType].description ?? ''}`);
}

/** The registry name of an event's schema, AWS style: `certflow@CertificateIssued`. */
export const eventSchemaName = (detailType: DetailType): string => `${EVENT_SOURCE}@${detailType.replace(/ /g, '')}`;

/** The file name of an event's JSON Schema under docs/events/: `certificate-issued.schema.json`. */
export const eventSchemaFile = (detailType: DetailType): string =>
  `${detailType.toLowerCase().replace(/ /g, '-')}.schema.json`;

/** JSON Schema of the whole event (default draft 2020-12; the schema registry takes draft 4). */
export function eventJsonSchema(
  detailType: DetailType,
  target: 'draft-2020-12' | 'draft-04' = 'draft-2020-12',
): Record<string, unknown> {
  return {
    ...(z.toJSONSchema(eventEnvelopeSchema(detailType), { target, unrepresentable: 'throw' }) as Record<
      string,
      unknown
    >),
    title: eventSchemaName(detailType),
  };
}

/** Certificates per `Certificate Issued` event: keeps each entry well under EventBridge's 256 KB. */
export const CERTIFICATES_PER_EVENT = 500;

/** One example per event, documented in docs/events.md and checked against its schema by the tests. */
export const EVENT_EXAMPLES: { [K in DetailType]: z.input<(typeof EVENT_SCHEMAS)[K]> } = {
  'Certificate Revoked': {
    certificateId: '67013ed823dc3dcfc67a7bbedb79551ef7d1bb277a21a26c902dc8e48bc106f8',
    serialNumber: '4f1461f61b9edf049e9ded772c4e8108',
    issuerId: '9a3f1c0e5b7d2e4f6a8c0b1d3e5f7a9c1b3d5e7f9a1c3e5b7d9f1a3c5e7b9d1f',
    kind: 'device',
    reason: 'keyCompromise',
    revokedAt: '2026-11-25T08:00:00.000Z',
    thingName: 'thing-0042',
  },
  'Certificate Expiring': {
    certificateId: '67013ed823dc3dcfc67a7bbedb79551ef7d1bb277a21a26c902dc8e48bc106f8',
    serialNumber: '4f1461f61b9edf049e9ded772c4e8108',
    issuerId: '9a3f1c0e5b7d2e4f6a8c0b1d3e5f7a9c1b3d5e7f9a1c3e5b7d9f1a3c5e7b9d1f',
    kind: 'device',
    commonName: 'thing-0042',
    notAfter: '2026-12-20T21:36:47.000Z',
    windowDays: 30,
    thingName: 'thing-0042',
  },
  'Certificate Rotated': {
    thingName: 'thing-0042',
    certificateId: '0c4f2e9a7b5d3c1e8f6a4b2d0e9c7a5b3d1f8e6c4a2b0d9f7e5c3a1b8d6f4e2c',
    previousCertificateIds: ['67013ed823dc3dcfc67a7bbedb79551ef7d1bb277a21a26c902dc8e48bc106f8'],
    deletedCertificateIds: ['67013ed823dc3dcfc67a7bbedb79551ef7d1bb277a21a26c902dc8e48bc106f8'],
    thingGroupName: 'cdfRotateCertificates',
    rotatedAt: '2026-11-25T08:05:00.000Z',
  },
  'CA Created': {
    caId: '9a3f1c0e5b7d2e4f6a8c0b1d3e5f7a9c1b3d5e7f9a1c3e5b7d9f1a3c5e7b9d1f',
    kind: 'intermediate',
    parentId: '1b3d5e7f9a1c3e5b7d9f1a3c5e7b9d1f9a3f1c0e5b7d2e4f6a8c0b1d3e5f7a9c',
    commonName: 'Factory Line 3 Issuing CA',
    serialNumber: '5a0c1e2f3a4b5c6d7e8f9a0b1c2d3e4f',
    keyType: 'ec-p256',
    notBefore: '2026-11-24T21:00:00.000Z',
    notAfter: '2031-11-23T21:00:00.000Z',
  },
  'Batch Completed': {
    taskId: '5f0c2a57-3b9e-4f0e-9f5e-0d4f2b9c1a11',
    supplierId: 'demo',
    quantity: 10000,
    chunksTotal: 10,
    zipKey: 'batches/5f0c2a57-3b9e-4f0e-9f5e-0d4f2b9c1a11/certificates.zip',
    zipSize: 15832117,
    completedAt: '2026-11-24T21:36:38.662Z',
  },
  'Batch Failed': {
    taskId: '5f0c2a57-3b9e-4f0e-9f5e-0d4f2b9c1a11',
    supplierId: 'demo',
    error: {
      code: 'BatchIncompleteError',
      message: 'chunk 3 failed: the issuing CA expired on 2026-11-01T00:00:00.000Z',
    },
    failedAt: '2026-11-24T21:36:38.662Z',
  },
  'Certificate Issued': {
    issuerId: '9a3f1c0e5b7d2e4f6a8c0b1d3e5f7a9c1b3d5e7f9a1c3e5b7d9f1a3c5e7b9d1f',
    kind: 'device',
    origin: 'bulk',
    taskId: '5f0c2a57-3b9e-4f0e-9f5e-0d4f2b9c1a11',
    chunk: 0,
    supplierId: 'demo',
    certificates: [
      {
        certificateId: '67013ed823dc3dcfc67a7bbedb79551ef7d1bb277a21a26c902dc8e48bc106f8',
        serialNumber: '4f1461f61b9edf049e9ded772c4e8108',
        commonName: 'dev-AB00',
        notBefore: '2026-11-24T21:35:47.000Z',
        notAfter: '2027-11-24T21:36:47.000Z',
      },
    ],
  },
};

/** docs/events.md, generated from the schemas above (`npm run docs`; a test keeps the file in step). */
export function renderEventCatalogue(): string {
  const parts = [
    '# certflow events',
    '',
    'Generated from `lambdas/core/events.ts` by `npm run docs`; do not edit by hand.',
    '',
    'All events go to the certflow bus (AWS: the custom EventBridge bus of the stack; local: the in-process bus) with',
    '`source: "certflow"`. No event carries key material: certificates are named by id (lower-case hex SHA-256 of',
    'the DER, the AWS IoT certificate id) and serial number.',
    '',
    '## Consumers inside certflow',
    '',
    'Each is an EventBridge rule on the certflow bus (dead-letter queue, 185 retries over 24 hours) that starts an',
    'Express workflow of `statemachines/`; the local runtime evaluates the same pattern on its bus and runs the same',
    'workflow file and handler.',
    '',
    '| workflow | rule pattern | what it does |',
    '| --- | --- | --- |',
    ...EVENT_CONSUMERS.map((c) => `| \`${c.workflow}\` | \`${JSON.stringify(c.pattern)}\` | ${c.does} |`),
    '',
  ];
  for (const [detailType, schema] of Object.entries(EVENT_SCHEMAS)) {
    parts.push(
      `## ${detailType}`,
      '',
      schema.description ?? '',
      '',
      '```json',
      JSON.stringify(
        { source: EVENT_SOURCE, 'detail-type': detailType, detail: EVENT_EXAMPLES[detailType as DetailType] },
        null,
        2,
      ),
      '```',
      '',
      '<details><summary>JSON Schema of <code>detail</code></summary>',
      '',
      '```json',
      JSON.stringify(z.toJSONSchema(schema), null, 2),
      '```',
      '',
      '</details>',
      '',
    );
  }
  return parts.join('\n');
}
