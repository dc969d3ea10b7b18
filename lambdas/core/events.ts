/**
 * The event contract for subscribers: one custom bus, `source: "certflow"`, EventBridge-style detail types.
 * These zod schemas are the single source: docs/events.md and its JSON Schemas are generated from them, and tests
 * validate emitted events against them. No key material, ever.
 */
import { z } from 'zod';
import type { DomainEvent } from './ports';

export const EVENT_SOURCE = 'certflow';

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

export const EVENT_SCHEMAS = {
  'Batch Completed': BatchCompletedDetail,
  'Batch Failed': BatchFailedDetail,
  'Certificate Issued': CertificateIssuedDetail,
} as const;
export type DetailType = keyof typeof EVENT_SCHEMAS;

/** Builds an event, validating its detail against the contract (a bug here throws, it does not emit garbage). */
export function domainEvent<T extends DetailType>(
  detailType: T,
  detail: z.input<(typeof EVENT_SCHEMAS)[T]>,
): DomainEvent {
  return { detailType, detail: EVENT_SCHEMAS[detailType].parse(detail) as Record<string, unknown> };
}

/** Certificates per `Certificate Issued` event: keeps each entry well under EventBridge's 256 KB. */
export const CERTIFICATES_PER_EVENT = 500;
