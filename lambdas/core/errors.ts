/**
 * Typed errors of the domain. Each carries a machine-readable `code` and the HTTP status an API answers with,
 * so handlers map them without knowing the domain (smallstep's typed errors, Powertools' naming).
 */
export type ErrorDetails = Record<string, unknown>;

export abstract class CertflowError extends Error {
  abstract readonly status: number;
  readonly code: string;
  readonly details?: ErrorDetails;

  constructor(code: string, message: string, options?: { cause?: unknown; details?: ErrorDetails }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options?.details;
  }

  toJSON(): { code: string; message: string; details?: ErrorDetails } {
    return { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

/** The input is malformed or asks for something we refuse (400). */
export class ValidationError extends CertflowError {
  override readonly name: string = 'ValidationError';
  readonly status: number = 400;
}

/** A certificate request or key that is well-formed but not acceptable (weak key, CA:true, bad signature) (400). */
export class CsrRejectedError extends CertflowError {
  override readonly name: string = 'CsrRejectedError';
  readonly status: number = 400;
}

export class NotFoundError extends CertflowError {
  override readonly name: string = 'NotFoundError';
  readonly status: number = 404;
}

/** The request is valid but conflicts with the current state (revoked twice, CA revoked or expired) (409). */
export class ConflictError extends CertflowError {
  override readonly name: string = 'ConflictError';
  readonly status: number = 409;
}

export const isCertflowError = (e: unknown): e is CertflowError => e instanceof CertflowError;

/** The client accepts or sends a media type certflow does not speak (CDF answers 415 for both) (415). */
export class UnsupportedMediaTypeError extends CertflowError {
  override readonly name: string = 'UnsupportedMediaTypeError';
  readonly status: number = 415;
}

/**
 * A provisioning template that cannot be used: unknown resource type, missing parameter, reference cycle, bad
 * intrinsic … (400). `details.path` is the JSON path of the fault, e.g. `Resources.thing.Properties.ThingName`.
 */
export class InvalidTemplateError extends CertflowError {
  override readonly name: string = 'InvalidTemplateError';
  readonly status: number = 400;

  constructor(code: string, path: string, message: string, options?: { cause?: unknown }) {
    super(code, `${path}: ${message}`, { ...options, details: { path } });
  }
}
