import { createHash } from 'node:crypto';
import { ConflictError, NotFoundError, ValidationError } from '../errors';
import { domainEvent } from '../events';
import type {
  BatchTask,
  Clock,
  EventPublisher,
  ObjectStore,
  SupplierDirectory,
  TaskError,
  TaskStore,
  WorkflowStarter,
} from '../ports';
import { batchZipKey, chunkFileKeys, requestKey } from './keys';
import { planPacing } from './plan';
import { BulkConfig, chunkCount, normalizeBatchRequest } from './request';

export const BULK_WORKFLOW = 'bulk-issuance';

export interface BatchDeps {
  tasks: TaskStore;
  objects: ObjectStore;
  workflows: WorkflowStarter;
  suppliers: SupplierDirectory;
  events: EventPublisher;
  clock: Clock;
  config: BulkConfig;
  newId: () => string;
  /** false where only certflow CAs sign (the local runtime has no ACM Private CA or AWS IoT) */
  externalCas?: boolean;
}

/** What GET /certificates/{taskId}/task shows (CDF's fields plus certflow's). */
export interface TaskView {
  taskId: string;
  supplierId: string;
  status: BatchTask['status'];
  quantity: number;
  chunksPending: number;
  chunksTotal: number;
  createdAt: string;
  /** CDF's name for the creation time, in epoch milliseconds */
  batchDate: number;
  completedAt?: string;
  error?: TaskError;
  /** certificates registered with AWS IoT so far (counted per finished chunk), when the batch registers them */
  registered?: number;
  /** how many the batch registers: "registered of registrationTotal" */
  registrationTotal?: number;
}

/** Does the batch register its certificates itself (AWS IoT's own CA registers as it issues)? */
const registersCertificates = (task: BatchTask): boolean =>
  task.request.register === true && task.request.ca !== 'aws-iot';

export function taskView(task: BatchTask): TaskView {
  return {
    taskId: task.taskId,
    supplierId: task.supplierId,
    status: task.status,
    quantity: task.quantity,
    chunksPending: task.chunksPending,
    chunksTotal: task.chunksTotal,
    createdAt: task.createdAt,
    batchDate: Date.parse(task.createdAt),
    ...(task.completedAt ? { completedAt: task.completedAt } : {}),
    ...(task.error ? { error: task.error } : {}),
    ...(registersCertificates(task)
      ? { registered: task.registered ?? 0, registrationTotal: task.quantity }
      : task.registered !== undefined
        ? { registered: task.registered }
        : {}),
  };
}

const IDEMPOTENCY_KEY_RE = /^[A-Za-z0-9_.:-]{1,128}$/;

/**
 * Accepts a batch: validates, stores the request and a `pending` task, starts the workflow named by the task id.
 * A repeated Idempotency-Key returns the task of the first request (and refuses a different body).
 */
export async function createBatch(
  deps: BatchDeps,
  supplierId: string,
  body: unknown,
  idempotencyKey?: string,
): Promise<{ task: BatchTask; created: boolean }> {
  const ca = await deps.suppliers.get(supplierId);
  if (!ca) throw new NotFoundError('SUPPLIER_NOT_FOUND', `supplier ${supplierId} is not configured`);
  if (ca.type !== 'certflow' && deps.externalCas === false) {
    throw new ValidationError(
      'SUPPLIER_CA_UNAVAILABLE',
      `supplier ${supplierId} signs with ${ca.type}, which this runtime cannot reach`,
    );
  }
  const now = deps.clock.now();
  const request = normalizeBatchRequest(supplierId, ca, body, deps.config, now);

  let taskId = deps.newId();
  if (idempotencyKey !== undefined) {
    if (!IDEMPOTENCY_KEY_RE.test(idempotencyKey)) {
      throw new ValidationError('INVALID_IDEMPOTENCY_KEY', 'Idempotency-Key: 1–128 characters of A–Z a–z 0–9 _ . : -', {
        details: { field: 'Idempotency-Key' },
      });
    }
    const fingerprint = createHash('sha256').update(JSON.stringify({ supplierId, body })).digest('hex');
    const prior = await deps.tasks.claimIdempotencyKey(supplierId, idempotencyKey, taskId, fingerprint);
    if (prior) {
      if (prior.fingerprint !== fingerprint) {
        throw new ConflictError('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used for a different request');
      }
      const existing = await deps.tasks.get(prior.taskId);
      if (existing) return { task: existing, created: false };
      taskId = prior.taskId; // the first request stopped before creating its task: finish its work
    }
  }

  const chunksTotal = chunkCount(request.quantity, request.chunkSize);
  const task: BatchTask = {
    taskId,
    supplierId,
    status: 'pending',
    quantity: request.quantity,
    chunkSize: request.chunkSize,
    chunksTotal,
    chunksPending: chunksTotal,
    createdAt: now.toISOString(),
    request: {
      ca: request.ca.type,
      keyType: request.keyType,
      register: request.register,
      includeCA: request.includeCA,
      layout: request.layout,
    },
  };
  await deps.objects.put(requestKey(taskId), JSON.stringify(request), { contentType: 'application/json' });
  try {
    await deps.tasks.create(task);
  } catch (e) {
    if (e instanceof ConflictError) {
      const existing = await deps.tasks.get(taskId);
      if (existing) return { task: existing, created: false };
    }
    throw e;
  }
  try {
    await deps.workflows.start(BULK_WORKFLOW, taskId, { taskId });
  } catch (cause) {
    const error = { code: 'WORKFLOW_START_FAILED', message: 'the batch workflow could not be started' };
    await deps.tasks.setStatus(taskId, 'failed', { error });
    throw new Error(error.message, { cause });
  }
  return { task, created: true };
}

export async function getTask(deps: Pick<BatchDeps, 'tasks'>, taskId: string): Promise<BatchTask> {
  const task = await deps.tasks.get(taskId);
  if (!task) throw new NotFoundError('TASK_NOT_FOUND', `no batch task ${taskId}`);
  return task;
}

/** Zips up to this size are returned in the response body; larger ones by redirect to a presigned URL. */
export const INLINE_ZIP_LIMIT = 4 * 1024 * 1024;
export const PRESIGN_SECONDS = 3600;

export type Download =
  | { kind: 'in-progress'; task: BatchTask }
  | { kind: 'zip'; body: Buffer; fileName: string }
  | { kind: 'redirect'; url: string }
  | { kind: 'urls'; urls: string[] };

/** GET /certificates/{taskId}: the batch's result, or where it stands. A failed batch never offers a zip. */
export async function getDownload(
  deps: Pick<BatchDeps, 'tasks' | 'objects'>,
  taskId: string,
  downloadType?: string,
): Promise<Download> {
  const task = await getTask(deps, taskId);
  if (task.status === 'failed') {
    throw new ConflictError('BATCH_FAILED', `the batch failed: ${task.error?.message ?? 'unknown reason'}`, {
      details: { error: task.error },
    });
  }
  if (task.status !== 'complete' || !task.zipKey) return { kind: 'in-progress', task };
  const fileName = `certificates-${taskId}.zip`;
  if (downloadType !== undefined && downloadType.toLowerCase() === 'signedurl') {
    // CDF answers one URL per chunk zip; certflow deletes the chunk zips (they hold private keys) once the batch zip
    // is complete, so the list holds the one URL of the batch zip
    return { kind: 'urls', urls: [await deps.objects.presignGet(task.zipKey, PRESIGN_SECONDS, fileName)] };
  }
  if (downloadType !== undefined && downloadType.toLowerCase() !== 'zip') {
    throw new ValidationError('INVALID_DOWNLOAD_TYPE', 'downloadType must be signedUrl or zip', {
      details: { field: 'downloadType' },
    });
  }
  if ((task.zipSize ?? Infinity) <= INLINE_ZIP_LIMIT) {
    return { kind: 'zip', body: await deps.objects.get(task.zipKey), fileName };
  }
  return { kind: 'redirect', url: await deps.objects.presignGet(task.zipKey, PRESIGN_SECONDS, fileName) };
}

/**
 * The Distributed Map's MaxConcurrency for a batch: the configured bound, lowered to what the binding quota can
 * keep busy when the batch makes paced calls (plan.ts). A task stored without its CA type gets the bound.
 */
export function batchConcurrency(task: Pick<BatchTask, 'request'>, config: BulkConfig): number {
  const ca = task.request.ca;
  if (ca !== 'certflow' && ca !== 'acm-pca' && ca !== 'aws-iot') return config.maxConcurrency;
  return planPacing({ ca, register: task.request.register === true }, config).maxConcurrency;
}

/** Step 1 of the workflow: mark the task in progress and list its chunks (just indexes: payloads stay small). */
export async function planChunks(
  deps: Pick<BatchDeps, 'tasks' | 'config'>,
  input: { taskId: string },
): Promise<{ taskId: string; chunksTotal: number; chunks: number[]; maxConcurrency: number }> {
  const task = await getTask(deps, input.taskId);
  if (task.status === 'pending') await deps.tasks.setStatus(task.taskId, 'in_progress');
  return {
    taskId: task.taskId,
    chunksTotal: task.chunksTotal,
    chunks: Array.from({ length: task.chunksTotal }, (_, i) => i),
    maxConcurrency: batchConcurrency(task, deps.config),
  };
}

/** Parses what Step Functions hands a Catch: `{ Error, Cause }`, Cause often a JSON Lambda error. */
export function describeFailure(error: unknown): TaskError {
  const e = (error ?? {}) as { Error?: string; Cause?: string };
  let message = e.Cause ?? 'unknown failure';
  let code = e.Error ?? 'BATCH_FAILED';
  try {
    const cause = JSON.parse(message) as { errorMessage?: string; errorType?: string; code?: string; message?: string };
    message = cause.errorMessage ?? cause.message ?? message;
    if (cause.code) code = cause.code;
  } catch {
    /* a plain-text cause */
  }
  return { code, message: message.slice(0, 1000) };
}

/**
 * The reason of a batch whose chunk failed, from the error the workflow recorded on the task (the Distributed
 * Map's own error only says that a child failed).
 */
export function describeChunkFailure(failure: { index: number; error: string }): TaskError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(failure.error);
  } catch {
    parsed = { Cause: failure.error };
  }
  const { message } = describeFailure(parsed);
  return { code: 'CHUNK_FAILED', message: `chunk ${failure.index} failed: ${message}`.slice(0, 1000) };
}

/** Objects deleted per call (S3's DeleteObjects takes 1,000 keys; the adapter splits larger lists). */
const DELETE_KEYS_PER_CALL = 5_000;

/**
 * Deletes what the batch's chunks left under its prefix (chunk zips and progress hold device private keys; manifests,
 * certificate bundles, registration counts): every chunk's keys, present or not (S3 deletes an absent key without
 * complaint), so nothing has to be listed. Idempotent; the request and the batch zip stay.
 */
export async function deleteChunkFiles(
  deps: Pick<BatchDeps, 'objects'>,
  task: Pick<BatchTask, 'taskId' | 'chunksTotal'>,
): Promise<{ taskId: string; deleted: number }> {
  let keys: string[] = [];
  let deleted = 0;
  for (let i = 0; i < task.chunksTotal; i++) {
    keys.push(...chunkFileKeys(task.taskId, i));
    if (keys.length >= DELETE_KEYS_PER_CALL || i === task.chunksTotal - 1) {
      await deps.objects.delete(keys);
      deleted += keys.length;
      keys = [];
    }
  }
  return { taskId: task.taskId, deleted };
}

/**
 * The workflow's failure path: the task becomes `failed` with its reason, no zip is kept and the chunks' files are
 * deleted (they hold private keys of certificates nobody will receive), Batch Failed is sent.
 */
export async function recordBatchFailure(
  deps: Pick<BatchDeps, 'tasks' | 'objects' | 'events' | 'clock'>,
  input: { taskId: string; error?: unknown },
): Promise<{ taskId: string; error: TaskError }> {
  const task = await getTask(deps, input.taskId);
  const error = task.chunkFailure ? describeChunkFailure(task.chunkFailure) : describeFailure(input.error);
  const failedAt = deps.clock.now().toISOString();
  await deps.objects.delete([batchZipKey(task.taskId)]);
  await deleteChunkFiles(deps, task);
  await deps.tasks.setStatus(task.taskId, 'failed', { error, completedAt: failedAt });
  await deps.events.publish([
    domainEvent('Batch Failed', { taskId: task.taskId, supplierId: task.supplierId, error, failedAt }),
  ]);
  return { taskId: task.taskId, error };
}
