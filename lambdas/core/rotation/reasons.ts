/**
 * Why a rotation request is refused: the `message` of the `{ message: REASON }` reply on `…/rejected`. CDF's reason
 * strings, plus one per failure CDF does not distinguish (bad CSR, CN mismatch, unknown previous certificate …).
 */
import { CertflowError } from '../errors';

/** CDF's certificate vendor reasons, as it spells them. */
export const CDF_REASONS = [
  'DEVICE_NOT_WHITELISTED',
  'MISSING_CERTIFICATE_ID',
  'CERTIFICATE_NOT_FOUND',
  'UNABLE_TO_ACTIVATE_CERTIFICATE',
  'UNABLE_TO_PRESIGN_URL',
  'UNABLE_TO_GET_CA_CERTIFICATE',
  'UNABLE_TO_FETCH_CA_KEY',
  'UNABLE_TO_REGISTER_CERTIFICATE',
  'UNABLE_TO_ATTACH_CERTIFICATE',
  'UNABLE_TO_ATTACH_POLICY',
  'UNABLE_TO_ISSUE_CERTIFICATE',
  'UNABLE_TO_CHECK_WHITELIST',
  'UNABLE_TO_UPDATE_ASSET_STATUS',
] as const;

/** parseCsr's codes (lambdas/core/pki/csr.ts), each a rejection reason of its own. */
export const CSR_REASONS = [
  'INVALID_CSR',
  'CSR_SIGNATURE_INVALID',
  'UNSUPPORTED_SIGNATURE_ALGORITHM',
  'WEAK_KEY',
  'UNSUPPORTED_KEY',
  'CSR_REQUESTS_CA',
] as const;

/** certflow's own reasons. */
export const CERTFLOW_REASONS = [
  /** the rule input is not a rotation request (no thing name, unknown action, malformed fields) */
  'INVALID_REQUEST',
  ...CSR_REASONS,
  'CSR_CN_MISMATCH',
  /** `previousCertificateId` names no registered certificate */
  'PREVIOUS_CERTIFICATE_NOT_FOUND',
  /** `previousCertificateId` is registered but not attached to this thing */
  'PREVIOUS_CERTIFICATE_NOT_ATTACHED',
  /** ack: the certificate the device connected with is not attached to the thing */
  'CERTIFICATE_NOT_ATTACHED',
  'UNABLE_TO_DELETE_PREVIOUS_CERTIFICATE',
  'UNABLE_TO_LEAVE_ROTATION_GROUP',
  /** a failure that outlasted every retry (throttling, a service outage) */
  'ROTATION_FAILED',
] as const;

export type RotationReason = (typeof CDF_REASONS)[number] | (typeof CERTFLOW_REASONS)[number];
export const ROTATION_REASONS: readonly RotationReason[] = [...CDF_REASONS, ...CERTFLOW_REASONS];
const REASON_SET = new Set<string>(ROTATION_REASONS);

/**
 * A rotation request certflow refuses. The ASL catches it by name and publishes `{ message: reason }` on the
 * request's `…/rejected` topic. The message starts with the reason (`REASON: detail`): Lambda serialises only an
 * error's type and message, so the reason travels in the message.
 */
export class RotationRejectedError extends CertflowError {
  override readonly name: string = 'RotationRejectedError';
  readonly status: number = 403;
  readonly reason: RotationReason;

  constructor(reason: RotationReason, detail: string, options?: { cause?: unknown }) {
    super(reason, `${reason}: ${detail}`, options);
    this.reason = reason;
  }
}

/**
 * Errors worth retrying (throttling, timeouts, service hiccups): the service undoes its half-done work and throws
 * them unchanged, and the ASL's Retry matches them by name. Anything else becomes a RotationRejectedError.
 */
export const TRANSIENT_ERROR_NAMES = [
  'ThrottlingException',
  'TooManyRequestsException',
  'ServiceUnavailableException',
  'ServiceUnavailable',
  'InternalFailureException',
  'InternalServerException',
  'InternalException',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  'SlowDown',
  'ProvisionedThroughputExceededException',
  'EventPublishError',
  'CertificateNotReadyError',
] as const;
const TRANSIENT = new Set<string>(TRANSIENT_ERROR_NAMES);

export const isTransient = (error: unknown): boolean =>
  typeof error === 'object' && error !== null && TRANSIENT.has(String((error as { name?: unknown }).name));

/**
 * The reason of a failure a Catch hands over (`{ Error, Cause }`): a RotationRejectedError's own reason (from its
 * message, which Step Functions puts in Cause, as JSON on AWS, as text locally), ROTATION_FAILED otherwise.
 */
export function reasonOfFailure(failure: unknown): RotationReason {
  const f = (failure ?? {}) as { Error?: unknown; Cause?: unknown };
  if (f.Error !== 'RotationRejectedError' || typeof f.Cause !== 'string') return 'ROTATION_FAILED';
  let message = f.Cause;
  try {
    const parsed = JSON.parse(f.Cause) as { errorMessage?: unknown };
    if (typeof parsed.errorMessage === 'string') message = parsed.errorMessage;
  } catch {
    /* plain text */
  }
  const reason = /^([A-Z_]+)(?::|$)/.exec(message)?.[1];
  return reason !== undefined && REASON_SET.has(reason) ? (reason as RotationReason) : 'ROTATION_FAILED';
}
