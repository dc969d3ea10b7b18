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

export async function recordInventoryEvent(
  deps: { inventory: Inventory },
  input: unknown,
): Promise<{ recorded: number; detailType: string }> {
  const parsed = InventoryEvent.safeParse(input);
  if (!parsed.success)
    throw new ValidationError('INVALID_EVENT', `not an inventory event: ${parsed.error.issues[0]?.message}`);
  const event = parsed.data;
  if (event['detail-type'] === 'Certificate Issued') {
    const detail = CertificateIssuedDetail.parse(event.detail);
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
