/**
 * The inventory workflow's step: turns `Certificate Issued` / `Certificate Revoked` events (as an EventBridge rule
 * delivers them) into inventory records. Idempotent: a replayed event changes nothing.
 */
import { z } from 'zod';
import { ValidationError } from '../errors';
import { CertificateIssuedDetail, CertificateRevokedDetail } from '../events';
import type { Inventory, InventoryRecord } from '../ports';

export const InventoryEvent = z.object({
  'detail-type': z.enum(['Certificate Issued', 'Certificate Revoked']),
  time: z.string(),
  detail: z.record(z.string(), z.unknown()),
});

type IssuedDetail = z.infer<typeof CertificateIssuedDetail>;

const isPlain = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype;
const KINDS: ReadonlySet<unknown> = new Set(CertificateIssuedDetail.shape.kind.options);
const ORIGINS: ReadonlySet<unknown> = new Set(CertificateIssuedDetail.shape.origin.options);
const DETAIL_OPTIONAL_STRINGS: ReadonlySet<string> = new Set(['taskId', 'supplierId', 'thingName']);
const HEX64 = /^[0-9a-f]{64}$/;
const HEX = /^[0-9a-f]+$/;

/**
 * A Certificate Issued detail that CertificateIssuedDetail accepts as it is, checked without zod's copies: a bulk
 * event carries 500 certificates, and zod's parse of one cost more main-thread time and garbage than recording them
 * (~1.3 KB of allocations per certificate). It accepts only what the schema accepts (strict objects, the same
 * types, enums and patterns), and answers undefined for anything else, which the schema then judges and words.
 */
function validIssuedDetail(detail: unknown): IssuedDetail | undefined {
  if (!isPlain(detail)) return undefined;
  for (const key in detail) {
    const value = detail[key];
    if (key === 'issuerId') {
      if (typeof value !== 'string') return undefined;
    } else if (key === 'kind') {
      if (!KINDS.has(value)) return undefined;
    } else if (key === 'origin') {
      if (!ORIGINS.has(value)) return undefined;
    } else if (key === 'chunk') {
      if (!Number.isSafeInteger(value)) return undefined;
    } else if (DETAIL_OPTIONAL_STRINGS.has(key)) {
      if (typeof value !== 'string') return undefined;
    } else if (key !== 'certificates') return undefined;
  }
  if (!('issuerId' in detail && 'kind' in detail && 'origin' in detail)) return undefined;
  const { certificates } = detail;
  if (!Array.isArray(certificates) || certificates.length === 0) return undefined;
  for (const c of certificates as unknown[]) {
    if (!isPlain(c)) return undefined;
    let fields = 0;
    for (const key in c) {
      const value = c[key];
      if (typeof value !== 'string') return undefined;
      if (key === 'certificateId') {
        if (!HEX64.test(value)) return undefined;
      } else if (key === 'serialNumber') {
        if (!HEX.test(value)) return undefined;
      } else if (key !== 'commonName' && key !== 'notBefore' && key !== 'notAfter') return undefined;
      fields++;
    }
    if (fields !== 5) return undefined;
  }
  return detail as IssuedDetail;
}

/** The event as InventoryEvent reads it, without its copies when it is a plain Certificate Issued event. */
function inventoryEvent(input: unknown): z.infer<typeof InventoryEvent> {
  if (
    isPlain(input) &&
    input['detail-type'] === 'Certificate Issued' &&
    typeof input.time === 'string' &&
    isPlain(input.detail)
  ) {
    return input as z.infer<typeof InventoryEvent>;
  }
  const parsed = InventoryEvent.safeParse(input);
  if (!parsed.success)
    throw new ValidationError('INVALID_EVENT', `not an inventory event: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

export async function recordInventoryEvent(
  deps: { inventory: Inventory },
  input: unknown,
): Promise<{ recorded: number; detailType: string }> {
  const event = inventoryEvent(input);
  if (event['detail-type'] === 'Certificate Issued') {
    const detail = validIssuedDetail(event.detail) ?? CertificateIssuedDetail.parse(event.detail);
    const records: InventoryRecord[] = detail.certificates.map((c) => ({
      certificateId: c.certificateId,
      kind: detail.kind,
      commonName: c.commonName,
      // a root is its own issuer
      issuerId: detail.kind === 'root' && detail.issuerId === c.certificateId ? c.certificateId : detail.issuerId,
      serialNumber: c.serialNumber,
      notBefore: c.notBefore,
      notAfter: c.notAfter,
      status: 'active',
      issuedAt: event.time,
      origin: detail.origin,
      ...(detail.taskId ? { batchId: detail.taskId } : {}),
      ...(detail.thingName ? { thingName: detail.thingName } : {}),
      ...(detail.supplierId ? { supplierId: detail.supplierId } : {}),
    }));
    await deps.inventory.putIssued(records);
    return { recorded: records.length, detailType: event['detail-type'] };
  }
  const detail = CertificateRevokedDetail.parse(event.detail);
  const outcome = await deps.inventory.markRevoked(detail.certificateId, detail.revokedAt, detail.reason);
  return { recorded: outcome === 'revoked' ? 1 : 0, detailType: event['detail-type'] };
}
