/** Helpers to recognise AWS SDK v3 service errors by name (robust to duplicate SDK copies, unlike instanceof). */

/** The `name` of an SDK service error (`NoSuchKey`, `ThrottlingException` …), or undefined for anything else. */
export function awsErrorName(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const name = (error as { name?: unknown }).name;
  return typeof name === 'string' ? name : undefined;
}

/** The HTTP status the service answered with, when the error carries one. */
export function awsHttpStatus(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const metadata = (error as { $metadata?: { httpStatusCode?: unknown } }).$metadata;
  return typeof metadata?.httpStatusCode === 'number' ? metadata.httpStatusCode : undefined;
}

export const isAwsError = (error: unknown, ...names: string[]): boolean => {
  const name = awsErrorName(error);
  return name !== undefined && names.includes(name);
};

export const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The error names the AWS SDK v3 itself classifies as throttling (`THROTTLING_ERROR_CODES` of
 * @smithy/service-error-classification), HTTP 429, or an error the SDK marked `$retryable.throttling`.
 */
export const THROTTLING_ERROR_NAMES = [
  'BandwidthLimitExceeded',
  'EC2ThrottledException',
  'LimitExceededException',
  'PriorRequestNotComplete',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
  'ThrottledException',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'TransactionInProgressException',
];

export function isThrottlingError(error: unknown): boolean {
  if (isAwsError(error, ...THROTTLING_ERROR_NAMES) || awsHttpStatus(error) === 429) return true;
  const retryable = (error as { $retryable?: { throttling?: unknown } } | null)?.$retryable;
  return retryable?.throttling === true;
}
