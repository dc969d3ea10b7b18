/**
 * The registry-revocation workflow's step: a `Certificate Revoked` event (as an EventBridge rule delivers it) sets
 * the certificate's status to REVOKED in the device registry (AWS IoT UpdateCertificate, or the local registry), so
 * that a revoked device certificate stops connecting — AWS IoT disconnects a certificate that leaves ACTIVE and
 * refuses it from then on, and so does the local broker. Idempotent: a replayed event finds the certificate REVOKED
 * and changes nothing; a certificate that was never registered (a batch made without `register`, a server
 * certificate) is not an error, the result says so.
 */
import { z } from 'zod';
import { NotFoundError, ValidationError } from '../errors';
import { CertificateRevokedDetail } from '../events';
import { type Pace, unpaced } from '../pacing';
import type { DeviceRegistry, RegistryCertificateStatus } from '../ports';

export const RegistryRevocationEvent = z.object({
  'detail-type': z.literal('Certificate Revoked'),
  detail: z.record(z.string(), z.unknown()),
});

export type RegistryRevocationOutcome =
  /** the certificate was ACTIVE, INACTIVE or PENDING_ACTIVATION and is REVOKED now */
  | 'revoked'
  /** it was REVOKED already (a replayed event, or revoked in the registry by hand): nothing changed */
  | 'already-revoked'
  /** the registry does not know the certificate: nothing to do */
  | 'not-registered';

export interface RegistryRevocationResult {
  certificateId: string;
  outcome: RegistryRevocationOutcome;
  /** the registry status before this step (absent when not registered) */
  previousStatus?: RegistryCertificateStatus;
}

export interface RegistryRevocationDeps {
  registry: Pick<DeviceRegistry, 'describeCertificate' | 'updateCertificateStatus'>;
  /** UpdateCertificate at the account's shared rate (default: unpaced) */
  pace?: Pace;
  log?: (message: string, extra: Record<string, unknown>) => void;
}

export async function revokeInRegistry(
  deps: RegistryRevocationDeps,
  input: unknown,
): Promise<RegistryRevocationResult> {
  const parsed = RegistryRevocationEvent.safeParse(input);
  if (!parsed.success) {
    throw new ValidationError('INVALID_EVENT', `not a Certificate Revoked event: ${parsed.error.issues[0]?.message}`);
  }
  const detail = CertificateRevokedDetail.safeParse(parsed.data.detail);
  if (!detail.success) {
    throw new ValidationError('INVALID_EVENT', `not a Certificate Revoked detail: ${detail.error.issues[0]?.message}`);
  }
  const { certificateId, serialNumber } = detail.data;
  const log = deps.log ?? (() => undefined);
  const pace = deps.pace ?? unpaced;
  const notRegistered = (): RegistryRevocationResult => {
    log('certificate not registered with the device registry: nothing to revoke there', {
      certificateId,
      serialNumber,
    });
    return { certificateId, outcome: 'not-registered' };
  };

  const registered = await deps.registry.describeCertificate(certificateId);
  if (!registered) return notRegistered();
  if (registered.status === 'REVOKED') {
    log('certificate already REVOKED in the device registry', { certificateId, serialNumber });
    return { certificateId, outcome: 'already-revoked', previousStatus: 'REVOKED' };
  }
  try {
    await pace('iot:UpdateCertificate', () => deps.registry.updateCertificateStatus(certificateId, 'REVOKED'));
  } catch (error) {
    // deleted between the two calls
    if (error instanceof NotFoundError) return notRegistered();
    throw error;
  }
  log('certificate REVOKED in the device registry', { certificateId, serialNumber, previousStatus: registered.status });
  return { certificateId, outcome: 'revoked', previousStatus: registered.status };
}
