/**
 * Bulk provisioning: one template, thousands of parameter sets, run by `statemachines/provisioning.asl.json` as a
 * Distributed Map over chunk indexes. A task keeps its objects under `bulkprovisioning/{taskId}/`: `task.json`
 * (status and counts), `request.json` (the template as it was when the task was accepted, and the CDF
 * parameters), `items/{chunk}.json` (the chunk's parameter sets) and `results/{chunk}.json` (each item's outcome:
 * the thing, certificate and — when certflow made the key — the private key, or the item's error), and for items
 * ACM PCA signs `progress/{chunk}/{index}.json` (the key saved before IssueCertificate, then the certificate, so a
 * re-run chunk signs the same key under the same IdempotencyToken, billed once). A failing item
 * fails only itself; a failing chunk only its own items; the items that succeeded are always kept.
 */
import { z } from 'zod';
import { isCertflowError, NotFoundError, ValidationError } from '../errors';
import { fromZodError } from '../bulk/request';
import { describeFailure } from '../bulk/service';
import type { DeviceRegistry, ObjectStore, TaskError, TaskStatus, WorkflowStarter } from '../ports';
import {
  loadTemplate,
  provisionThing,
  TEMPLATE_ID_RE,
  validateTemplate,
  type ItemProgress,
  type ProvisionItem,
  type ProvisioningDeps,
  type ProvisionResult,
} from './service';

export const BULK_PROVISIONING_WORKFLOW = 'bulk-provisioning';

const prefix = (taskId: string): string => `bulkprovisioning/${taskId}/`;
const pad = (index: number): string => String(index).padStart(6, '0');
export const provisioningTaskKey = (taskId: string): string => `${prefix(taskId)}task.json`;
const requestKey = (taskId: string): string => `${prefix(taskId)}request.json`;
const itemsKey = (taskId: string, chunk: number): string => `${prefix(taskId)}items/${pad(chunk)}.json`;
export const resultsKey = (taskId: string, chunk: number): string => `${prefix(taskId)}results/${pad(chunk)}.json`;
/** a chunk's outcomes so far, kept when some items failed for a reason that may pass (the retry skips the others) */
const partialKey = (taskId: string, chunk: number): string => `${prefix(taskId)}partial/${pad(chunk)}.json`;
/** an item's saved progress (its key before ACM PCA signs it, then the certificate): `progress/{chunk}/{index}.json` */
const progressPrefix = (taskId: string, chunk: number): string => `${prefix(taskId)}progress/${pad(chunk)}/`;
export const itemProgressKey = (taskId: string, chunk: number, index: number): string =>
  `${progressPrefix(taskId, chunk)}${pad(index)}.json`;
/** ACM PCA's IdempotencyToken of a bulk item (hashed to PCA's 36 characters by the adapter) */
export const itemIdempotencyToken = (taskId: string, index: number): string => `${taskId}:${index}`;

/**
 * Some items of a chunk failed for a reason that may pass (throttling, a service error): the workflow retries the
 * chunk, which provisions only the items without an outcome.
 */
export class ChunkIncompleteError extends Error {
  override readonly name = 'ChunkIncompleteError';
}

export interface BulkProvisioningConfig {
  /** parameter sets per chunk (one Map iteration, one Lambda invocation) */
  chunkSize: number;
  /** chunks provisioned at once */
  maxConcurrency: number;
  /** items provisioned at once inside a chunk */
  itemConcurrency: number;
  maxItems: number;
}

export const DEFAULT_BULK_PROVISIONING_CONFIG: BulkProvisioningConfig = {
  chunkSize: 100,
  maxConcurrency: 10,
  itemConcurrency: 4,
  maxItems: 100_000,
};

export interface BulkProvisioningDeps extends ProvisioningDeps {
  workflows: WorkflowStarter;
  newId: () => string;
  bulk: BulkProvisioningConfig;
}

export interface ItemError {
  /** the parameter set's position in the request (0-based) */
  index: number;
  code: string;
  message: string;
  path?: string;
}

export interface ProvisioningTask {
  taskId: string;
  provisioningTemplateId: string;
  status: TaskStatus;
  total: number;
  chunkSize: number;
  chunksTotal: number;
  createdAt: string;
  completedAt?: string;
  succeeded?: number;
  failed?: number;
  /** per-item errors (complete tasks) */
  errors?: ItemError[];
  /** why the whole task failed */
  error?: TaskError;
}

interface ItemSucceeded extends ProvisionResult {
  index: number;
}

interface ChunkResults {
  chunk: number;
  succeeded: ItemSucceeded[];
  failed: ItemError[];
}

const Parameters = z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.array(z.string())]));

export const BulkProvisioningBodySchema = z
  .object({
    provisioningTemplateId: z.string().regex(TEMPLATE_ID_RE, 'a template id (1–128 of A–Z a–z 0–9 _ . -)'),
    parameters: z.array(Parameters).min(1),
    cdfProvisioningParameters: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

const json = (value: unknown): string => JSON.stringify(value);
async function readJson<T>(objects: ObjectStore, key: string): Promise<T> {
  return JSON.parse((await objects.get(key)).toString('utf8')) as T;
}

export async function getProvisioningTask(
  deps: Pick<ProvisioningDeps, 'objects'>,
  taskId: string,
): Promise<ProvisioningTask> {
  return readJson<ProvisioningTask>(deps.objects, provisioningTaskKey(taskId)).catch((e: unknown) => {
    if (e instanceof NotFoundError) {
      throw new NotFoundError('TASK_NOT_FOUND', `no bulk provisioning task ${taskId}`, { details: { taskId } });
    }
    throw e;
  });
}

const saveTask = (objects: ObjectStore, task: ProvisioningTask) =>
  objects.put(provisioningTaskKey(task.taskId), json(task), { contentType: 'application/json' });

/** POST /bulkprovisioningtasks: stores the parameter sets chunk by chunk and starts the workflow. */
export async function createBulkProvisioningTask(
  deps: BulkProvisioningDeps,
  body: unknown,
): Promise<{ taskId: string; status: TaskStatus; total: number; chunksTotal: number }> {
  const parsed = BulkProvisioningBodySchema.safeParse(body ?? {});
  if (!parsed.success) throw fromZodError(parsed.error);
  const request = parsed.data;
  if (request.parameters.length > deps.bulk.maxItems) {
    throw new ValidationError(
      'QUANTITY_TOO_LARGE',
      `parameters: at most ${deps.bulk.maxItems} parameter sets per task`,
      {
        details: { field: 'parameters' },
      },
    );
  }
  const loaded = await loadTemplate(deps, request.provisioningTemplateId);
  const taskId = deps.newId();
  const chunkSize = deps.bulk.chunkSize;
  const chunksTotal = Math.ceil(request.parameters.length / chunkSize);
  await deps.objects.put(
    requestKey(taskId),
    json({
      provisioningTemplateId: request.provisioningTemplateId,
      template: loaded.template.body,
      ...(request.cdfProvisioningParameters ? { cdfProvisioningParameters: request.cdfProvisioningParameters } : {}),
    }),
    { contentType: 'application/json' },
  );
  for (let chunk = 0; chunk < chunksTotal; chunk++) {
    const items = request.parameters.slice(chunk * chunkSize, (chunk + 1) * chunkSize);
    await deps.objects.put(itemsKey(taskId, chunk), json(items), { contentType: 'application/json' });
  }
  const task: ProvisioningTask = {
    taskId,
    provisioningTemplateId: request.provisioningTemplateId,
    status: 'pending',
    total: request.parameters.length,
    chunkSize,
    chunksTotal,
    createdAt: deps.clock.now().toISOString(),
  };
  await saveTask(deps.objects, task);
  await deps.workflows.start(BULK_PROVISIONING_WORKFLOW, taskId, { taskId });
  return { taskId, status: task.status, total: task.total, chunksTotal };
}

/** First state of the workflow: the task is in progress; its chunks are the Map's items (indexes only). */
export async function planProvisioning(
  deps: Pick<BulkProvisioningDeps, 'objects' | 'bulk'>,
  input: { taskId: string },
): Promise<{ taskId: string; chunks: number[]; maxConcurrency: number }> {
  const task = await getProvisioningTask(deps, input.taskId);
  if (task.status === 'pending') await saveTask(deps.objects, { ...task, status: 'in_progress' });
  return {
    taskId: task.taskId,
    chunks: Array.from({ length: task.chunksTotal }, (_, i) => i),
    maxConcurrency: deps.bulk.maxConcurrency,
  };
}

function itemError(index: number, error: unknown): ItemError {
  if (isCertflowError(error)) {
    const path = error.details?.path ?? error.details?.field;
    return { index, code: error.code, message: error.message, ...(typeof path === 'string' ? { path } : {}) };
  }
  const e = error as { name?: string; message?: string };
  return { index, code: e?.name ?? 'Error', message: (e?.message ?? String(error)).slice(0, 500) };
}

/**
 * One Map iteration: provisions the chunk's items (a few at a time), each item's failure recorded as its own, and
 * writes the chunk's results. A chunk whose results exist already (a retried iteration) is not provisioned again.
 */
export async function provisionChunk(
  deps: BulkProvisioningDeps,
  input: { taskId: string; index: number },
): Promise<{ index: number; succeeded: number; failed: number }> {
  const done = await deps.objects.head(resultsKey(input.taskId, input.index));
  if (done) {
    const previous = await readJson<ChunkResults>(deps.objects, resultsKey(input.taskId, input.index));
    return { index: input.index, succeeded: previous.succeeded.length, failed: previous.failed.length };
  }
  const task = await getProvisioningTask(deps, input.taskId);
  const request = await readJson<{
    provisioningTemplateId: string;
    template: unknown;
    cdfProvisioningParameters?: Record<string, unknown>;
  }>(deps.objects, requestKey(input.taskId));
  const items = await readJson<Record<string, unknown>[]>(deps.objects, itemsKey(input.taskId, input.index));
  const loaded = validateTemplate(request.provisioningTemplateId, request.template);
  const partial = await readJson<ChunkResults>(deps.objects, partialKey(input.taskId, input.index)).catch(
    (e: unknown) => {
      if (e instanceof NotFoundError) return undefined;
      throw e;
    },
  );
  const results: ChunkResults = partial ?? { chunk: input.index, succeeded: [], failed: [] };
  const settled = new Set([...results.succeeded, ...results.failed].map((r) => r.index));
  const transient: ItemError[] = [];
  const chunkDeps = { ...deps, registry: withPolicyCache(deps.registry) };
  // progress earlier attempts saved: listed once per chunk, when the first item needs it (ACM PCA items only)
  let saved: Promise<Set<string>> | undefined;
  const itemOf = (index: number): ProvisionItem => {
    const key = itemProgressKey(input.taskId, input.index, index);
    return {
      idempotencyToken: itemIdempotencyToken(input.taskId, index),
      load: async () => {
        saved ??= deps.objects.list(progressPrefix(input.taskId, input.index)).then((keys) => new Set(keys));
        return (await saved).has(key) ? readJson<ItemProgress>(deps.objects, key) : undefined;
      },
      save: (progress) => deps.objects.put(key, json(progress), { contentType: 'application/json' }),
    };
  };
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const position = next++;
      const index = input.index * task.chunkSize + position;
      if (settled.has(index)) continue;
      try {
        const result = await provisionThing(
          chunkDeps,
          {
            provisioningTemplateId: request.provisioningTemplateId,
            parameters: items[position],
            ...(request.cdfProvisioningParameters
              ? { cdfProvisioningParameters: request.cdfProvisioningParameters }
              : {}),
          },
          loaded,
          itemOf(index),
        );
        results.succeeded.push({ index, ...result });
      } catch (error) {
        // the item's own fault (a 4xx: its parameters, the template, a conflict) is its outcome; anything else may
        // pass, and the chunk is retried for it
        (isCertflowError(error) ? results.failed : transient).push(itemError(index, error));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(deps.bulk.itemConcurrency, items.length) }, worker));
  results.succeeded.sort((a, b) => a.index - b.index);
  results.failed.sort((a, b) => a.index - b.index);
  if (transient.length > 0) {
    await deps.objects.put(partialKey(input.taskId, input.index), json(results), { contentType: 'application/json' });
    const first = transient[0]!;
    throw new ChunkIncompleteError(
      `${transient.length} item(s) of chunk ${input.index} failed for a reason that may pass (item ${first.index}: ${first.code}: ${first.message})`,
    );
  }
  await deps.objects.put(resultsKey(input.taskId, input.index), json(results), { contentType: 'application/json' });
  return { index: input.index, succeeded: results.succeeded.length, failed: results.failed.length };
}

/**
 * The registry as one chunk uses it: every item of a template creates the same policies, so a chunk creates (or
 * finds) each policy once instead of once per item.
 */
function withPolicyCache(registry: DeviceRegistry): DeviceRegistry {
  const policies = new Map<string, Promise<{ policyName: string; policyArn: string }>>();
  return new Proxy(registry, {
    get(target, prop) {
      if (prop === 'createPolicy') {
        return (policyName: string, document: string) => {
          const key = `${policyName}\n${document}`;
          let created = policies.get(key);
          if (!created) {
            created = target.createPolicy(policyName, document);
            policies.set(key, created);
            created.catch(() => policies.delete(key));
          }
          return created;
        };
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

type ChunkOutcome = { index: number; failed?: boolean; error?: unknown };

/**
 * The check after the Map: every chunk's results are counted; a chunk that failed as a whole (caught in the Map)
 * lists each of its items as an error, and the task is complete with its counts and per-item errors.
 */
export async function finishProvisioning(
  deps: Pick<ProvisioningDeps, 'objects' | 'clock'>,
  input: { taskId: string; chunkResults?: ChunkOutcome[] },
): Promise<{ taskId: string; succeeded: number; failed: number }> {
  const task = await getProvisioningTask(deps, input.taskId);
  const outcomes = new Map((input.chunkResults ?? []).map((r) => [r.index, r]));
  let succeeded = 0;
  const errors: ItemError[] = [];
  for (let chunk = 0; chunk < task.chunksTotal; chunk++) {
    const results = await readJson<ChunkResults>(deps.objects, resultsKey(task.taskId, chunk)).catch((e: unknown) => {
      if (e instanceof NotFoundError) return undefined;
      throw e;
    });
    if (results) {
      succeeded += results.succeeded.length;
      errors.push(...results.failed);
      continue;
    }
    const outcome = outcomes.get(chunk);
    const cause = outcome?.failed ? describeFailure(outcome.error) : { code: 'CHUNK_NOT_RUN', message: 'no result' };
    // the items a failed chunk settled before it gave up keep their outcome
    const partial = await readJson<ChunkResults>(deps.objects, partialKey(task.taskId, chunk)).catch(() => undefined);
    const settled = new Set<number>();
    if (partial) {
      succeeded += partial.succeeded.length;
      errors.push(...partial.failed);
      for (const r of [...partial.succeeded, ...partial.failed]) settled.add(r.index);
    }
    const count = Math.min(task.chunkSize, task.total - chunk * task.chunkSize);
    for (let i = 0; i < count; i++) {
      if (settled.has(chunk * task.chunkSize + i)) continue;
      errors.push({
        index: chunk * task.chunkSize + i,
        code: 'CHUNK_FAILED',
        message: `${cause.code}: ${cause.message}`,
      });
    }
  }
  errors.sort((a, b) => a.index - b.index);
  const completed: ProvisioningTask = {
    ...task,
    status: 'complete',
    succeeded,
    failed: errors.length,
    errors,
    completedAt: deps.clock.now().toISOString(),
  };
  await saveTask(deps.objects, completed);
  await deleteIntermediates(deps.objects, task.taskId);
  return { taskId: task.taskId, succeeded, failed: errors.length };
}

/**
 * Once a task is finished, its items' saved progress (keys certflow made, before ACM PCA signed them) and the
 * partial results of failed chunks are deleted: the results files keep what the user downloads. Best effort: the
 * task is already recorded, and the bucket's lifecycle rule removes what a failed deletion leaves.
 */
async function deleteIntermediates(objects: ProvisioningDeps['objects'], taskId: string): Promise<void> {
  try {
    const keys = [
      ...(await objects.list(`${prefix(taskId)}progress/`)),
      ...(await objects.list(`${prefix(taskId)}partial/`)),
    ];
    if (keys.length > 0) await objects.delete(keys);
  } catch {
    // left to the lifecycle rule
  }
}

/** The workflow's failure path (the task could not be planned or finished): status failed with the reason. */
export async function recordProvisioningFailure(
  deps: Pick<ProvisioningDeps, 'objects' | 'clock'>,
  input: { taskId: string; error?: unknown },
): Promise<{ taskId: string; error: TaskError }> {
  const task = await getProvisioningTask(deps, input.taskId);
  const error = describeFailure(input.error);
  await saveTask(deps.objects, { ...task, status: 'failed', error, completedAt: deps.clock.now().toISOString() });
  await deleteIntermediates(deps.objects, task.taskId);
  return { taskId: task.taskId, error };
}

export interface ProvisioningTaskView extends Omit<ProvisioningTask, 'chunkSize'> {
  chunksDone: number;
  /** presigned URLs of the chunks' results (things, certificates, keys certflow made); one hour */
  results: { chunk: number; url: string }[];
}

/** GET /bulkprovisioningtasks/{taskId}: status, counts (so far, while running), per-item errors, result URLs. */
export async function provisioningTaskView(
  deps: Pick<ProvisioningDeps, 'objects'>,
  taskId: string,
): Promise<ProvisioningTaskView> {
  const { chunkSize: _chunkSize, ...task } = await getProvisioningTask(deps, taskId);
  void _chunkSize;
  const keys = new Set(await deps.objects.list(`${prefix(taskId)}results/`));
  const done: number[] = [];
  for (let chunk = 0; chunk < task.chunksTotal; chunk++) if (keys.has(resultsKey(taskId, chunk))) done.push(chunk);
  const view: ProvisioningTaskView = { ...task, chunksDone: done.length, results: [] };
  if (task.status !== 'complete' && task.status !== 'failed') {
    let succeeded = 0;
    const errors: ItemError[] = [];
    for (const chunk of done) {
      const results = await readJson<ChunkResults>(deps.objects, resultsKey(taskId, chunk));
      succeeded += results.succeeded.length;
      errors.push(...results.failed);
    }
    Object.assign(view, { succeeded, failed: errors.length, errors });
  }
  for (const chunk of done) {
    view.results.push({
      chunk,
      url: await deps.objects.presignGet(resultsKey(taskId, chunk), 3600, `results-${pad(chunk)}.json`),
    });
  }
  return view;
}
