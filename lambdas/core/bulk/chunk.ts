import { randomUUID } from 'node:crypto';
import { NotFoundError, ValidationError } from '../errors';
import { CERTIFICATES_PER_EVENT, domainEvent } from '../events';
import { commonNameAt } from '../naming/common-name';
import type {
  CaKeyStore,
  CertificateRegistry,
  Clock,
  DeviceCertificateIssuer,
  DeviceFiles,
  EventPublisher,
  ExternalIssueProgress,
  ObjectStore,
  SupplierCa,
  TaskStore,
} from '../ports';
import { buildChunk, BuiltChunk, ChunkPackager, ManifestRow } from './chunk-builder';
import {
  chunkCertificatesKey,
  chunkManifestKey,
  chunkProgressKey,
  chunkRegisteredKey,
  chunkZipKey,
  requestKey,
} from './keys';
import { decodePemBlocks, toPem } from '../pki/pem';
import { BatchRequest, ChunkRange, chunkRange } from './request';

export { MANIFEST_HEADER } from './chunk-builder';

export interface ChunkDeps {
  objects: ObjectStore;
  tasks: TaskStore;
  caKeys: CaKeyStore;
  events: EventPublisher;
  registry?: CertificateRegistry;
  clock: Clock;
  /** deflate level for zip entries (0 = store, the default: PEM text gains ~25 % and costs twice the CPU) */
  zipLevel?: number;
  /** runs the CPU-bound part for a certflow CA; default in-process (the local runtime uses worker threads) */
  build?: (job: BuildJob) => Promise<BuiltChunk>;
  /** issuers for suppliers whose CA is outside certflow (ACM Private CA, AWS IoT) */
  externalIssuer?: (ca: Exclude<SupplierCa, { type: 'certflow' }>) => DeviceCertificateIssuer;
}

export interface BuildJob {
  request: BatchRequest;
  range: ChunkRange;
  caId: string;
  now: string;
  level: number;
  /** return the certificates as one PEM bundle too (to register them) */
  keepCertificates?: boolean;
}

/** The chunk cannot run now but will later (another attempt holds it, a worker crashed): the workflow retries. */
export class TransientChunkError extends Error {
  override readonly name = 'TransientChunkError';

  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ChunkInput {
  taskId: string;
  index: number;
}

export interface ChunkResult {
  taskId: string;
  index: number;
  count: number;
  /** true when the chunk had been done before (a replay) */
  replayed: boolean;
}

/** Per-container cache: a Lambda container or the local runtime signs many chunks of the same batch. */
const requestCache = new Map<string, BatchRequest>();

export async function loadBatchRequest(objects: ObjectStore, taskId: string): Promise<BatchRequest> {
  const cached = requestCache.get(taskId);
  if (cached) return cached;
  const request = JSON.parse((await objects.get(requestKey(taskId))).toString('utf8')) as BatchRequest;
  if (requestCache.size > 32) requestCache.clear();
  requestCache.set(taskId, request);
  return request;
}

/** The in-process builder: loads the CA (the key stores cache it) and signs. */
export const buildInProcess =
  (caKeys: CaKeyStore) =>
  async (job: BuildJob): Promise<BuiltChunk> =>
    buildChunk(job.request, job.range, await caKeys.load(job.caId), new Date(job.now), job.level, {
      keepCertificates: job.keepCertificates,
    });

/** Reads the rows this module writes (RFC 4180 quoting). */
export function parseManifest(text: string): ManifestRow[] {
  const rows: ManifestRow[] = [];
  const fieldRe = /("(?:[^"]|"")*"|[^,\n]*)(,|\n|$)/g;
  let fields: string[] = [];
  for (const m of text.matchAll(fieldRe)) {
    if (m[0] === '') break;
    const raw = m[1]!;
    fields.push(raw.startsWith('"') ? raw.slice(1, -1).replace(/""/g, '"') : raw);
    if (m[2] !== ',') {
      const [commonName = '', path = '', certificateId = '', serialNumber = ''] = fields;
      rows.push({ commonName, path, certificateId, serialNumber });
      fields = [];
    }
  }
  return rows;
}

const issuerIdOf = (ca: SupplierCa): string =>
  ca.type === 'certflow' ? ca.caId : ca.type === 'acm-pca' ? ca.arn : 'aws-iot';

async function publishIssued(
  deps: ChunkDeps,
  request: BatchRequest,
  input: ChunkInput,
  rows: ManifestRow[],
): Promise<void> {
  const events = [];
  for (let off = 0; off < rows.length; off += CERTIFICATES_PER_EVENT) {
    events.push(
      domainEvent('Certificate Issued', {
        issuerId: issuerIdOf(request.ca),
        kind: 'device',
        origin: 'bulk',
        taskId: input.taskId,
        chunk: input.index,
        supplierId: request.supplierId,
        certificates: rows.slice(off, off + CERTIFICATES_PER_EVENT).map((c) => ({
          certificateId: c.certificateId,
          serialNumber: c.serialNumber,
          commonName: c.commonName,
          notBefore: request.notBefore,
          notAfter: request.notAfter,
        })),
      }),
    );
  }
  await deps.events.publish(events);
}

/** Certificates issued (or keys made) between two saves of an external chunk's progress. */
export const PROGRESS_SAVE_EVERY = 25;

interface ChunkProgress {
  certificates: Record<string, ExternalIssueProgress & { files?: DeviceFiles }>;
}

async function readOptional(objects: ObjectStore, key: string): Promise<Buffer | undefined> {
  try {
    return await objects.get(key);
  } catch (e) {
    if (e instanceof NotFoundError) return undefined;
    throw e;
  }
}

/**
 * Signs with ACM Private CA or AWS IoT, one certificate at a time (their APIs are per certificate). Progress is kept
 * in S3 until the chunk zip exists: the device keys certflow makes are saved before the first certificate is
 * requested, then every PROGRESS_SAVE_EVERY certificates and when the attempt fails. A re-run reuses what was saved:
 * a certificate received is not requested again (AWS IoT: not created twice), one requested is fetched by its ARN,
 * and one requested again with the same key and idempotency token is the same certificate (ACM PCA: not billed
 * twice). Only a hard stop (timeout) can lose the last few records, and those are re-requested with their key.
 */
async function buildExternally(
  deps: ChunkDeps,
  issuer: DeviceCertificateIssuer,
  request: BatchRequest,
  input: ChunkInput,
  range: ChunkRange,
  level: number,
): Promise<BuiltChunk> {
  const progressKey = chunkProgressKey(input.taskId, input.index);
  const saved = await readOptional(deps.objects, progressKey);
  const progress: ChunkProgress = saved ? (JSON.parse(saved.toString('utf8')) as ChunkProgress) : { certificates: {} };
  let unsaved = 0;
  const save = async () => {
    await deps.objects.put(progressKey, JSON.stringify(progress), { contentType: 'application/json' });
    unsaved = 0;
  };
  const stateOf = (i: number) => (progress.certificates[String(i)] ??= {});

  if (issuer.makeKey) {
    for (let i = range.start; i < range.start + range.count; i++) {
      const state = stateOf(i);
      if (state.files || state.privateKeyPem) continue;
      state.privateKeyPem = issuer.makeKey(request.keyType);
      unsaved++;
    }
    if (unsaved > 0) await save(); // the keys exist before any certificate is requested for them
  }

  const packager = new ChunkPackager(request, level, { keepCertificates: registers(request, deps) });
  const validityDays = Math.max(
    1,
    Math.round((Date.parse(request.notAfter) - Date.parse(request.notBefore)) / 86_400_000),
  );
  try {
    for (let i = range.start; i < range.start + range.count; i++) {
      const state = stateOf(i);
      if (!state.files) {
        state.files = await issuer.issue(
          {
            commonName: commonNameAt(request.commonName, i),
            subject: { ...request.subject },
            keyType: request.keyType,
            validityDays,
            idempotencyToken: `${input.taskId}:${i}`,
            includeChain: request.includeCA,
          },
          { ...state },
          (more) => {
            Object.assign(state, more);
            unsaved++;
          },
        );
        delete state.privateKeyPem; // in files now
        if (++unsaved >= PROGRESS_SAVE_EVERY) await save();
      }
      packager.add(i, state.files);
    }
  } catch (error) {
    if (unsaved > 0) await save().catch(() => undefined); // keep what this attempt did; the error is what matters
    throw error;
  }
  return packager.finish();
}

/** The PEM bundle a chunk built to be registered must carry. */
function certificatesOf(chunk: BuiltChunk): string {
  if (chunk.certificatesPem === undefined) throw new Error('the chunk was built without its certificates');
  return chunk.certificatesPem;
}

/** The certificates of a chunk's PEM bundle, one PEM each. */
const certificatePems = (bundle: string): string[] => decodePemBlocks(bundle).map((b) => toPem('CERTIFICATE', b.der));

/** AWS IoT's own CA registers as it issues; other certificates are registered when the batch asks for it. */
const registers = (request: BatchRequest, deps: ChunkDeps): boolean =>
  request.register && request.ca.type !== 'aws-iot' && deps.registry !== undefined;

/** Registrations between two saves of a chunk's registration progress. */
export const REGISTERED_SAVE_EVERY = 25;

/**
 * Registers the chunk's certificates in order. How many are registered for sure is saved every
 * REGISTERED_SAVE_EVERY certificates and when the attempt fails, so a re-run (Step Functions retrying a throttled or
 * timed-out chunk) starts after them; the few in between are registered again, which the registry answers with
 * the existing registration (never a second one).
 */
async function registerAll(deps: ChunkDeps, request: BatchRequest, input: ChunkInput, pems: string[]): Promise<number> {
  const progressKey = chunkRegisteredKey(input.taskId, input.index);
  const saved = await readOptional(deps.objects, progressKey);
  let done = saved ? Math.min(pems.length, Number(saved.toString('utf8')) || 0) : 0;
  let savedCount = done;
  const save = async () => {
    await deps.objects.put(progressKey, String(done), { contentType: 'text/plain' });
    savedCount = done;
  };
  const caCertificatePem =
    request.ca.type === 'certflow' ? (await deps.caKeys.load(request.ca.caId)).issuer.certificate.pem : undefined;
  try {
    while (done < pems.length) {
      await deps.registry!.register({
        certificatePem: pems[done]!,
        ...(caCertificatePem ? { caCertificatePem } : {}),
        status: request.certificateStatus,
      });
      done++;
      if (done - savedCount >= REGISTERED_SAVE_EVERY) await save();
    }
  } catch (error) {
    if (done > savedCount) await save().catch(() => undefined);
    throw error;
  }
  if (done > savedCount) await save();
  return pems.length;
}

/**
 * Signs one chunk of a batch and writes a standalone zip of it plus its manifest rows (the assembler later
 * copies the zip's entries into the batch zip). The chunk zip is the commit point: a replayed chunk whose zip
 * exists is not signed again — certificates are never issued twice into a batch — and only its bookkeeping
 * (events, the chunk count) is redone, which is idempotent.
 */
export async function signChunk(
  input: ChunkInput,
  deps: ChunkDeps,
  options: { deadlineMs?: number } = {},
): Promise<ChunkResult> {
  const request = await loadBatchRequest(deps.objects, input.taskId);
  const range = chunkRange(request, input.index);
  const result = (replayed: boolean): ChunkResult => ({
    taskId: input.taskId,
    index: input.index,
    count: range.count,
    replayed,
  });

  if (await deps.tasks.isChunkDone(input.taskId, input.index)) return result(true);
  if (options.deadlineMs === undefined) return signOrFinish(input, deps, request, range, result);
  // two deliveries of one chunk at once (Express children run at least once) must not both sign: the first holds
  // a lease until its deadline, the second is retried by the workflow and then finds the chunk done
  const attemptId = randomUUID();
  if (!(await deps.tasks.claimChunk(input.taskId, input.index, attemptId, options.deadlineMs))) {
    throw new TransientChunkError(
      'CHUNK_BUSY',
      `chunk ${input.index} of ${input.taskId} is being signed by another attempt`,
    );
  }
  try {
    return await signOrFinish(input, deps, request, range, result);
  } finally {
    await deps.tasks.releaseChunk(input.taskId, input.index, attemptId).catch(() => undefined);
  }
}

/** Signs the chunk, or finishes the bookkeeping of one signed before (its zip exists). */
async function signOrFinish(
  input: ChunkInput,
  deps: ChunkDeps,
  request: BatchRequest,
  range: ChunkRange,
  result: (replayed: boolean) => ChunkResult,
): Promise<ChunkResult> {
  const zipKey = chunkZipKey(input.taskId, input.index);
  const register = registers(request, deps);
  if (await deps.objects.head(zipKey)) {
    // signed before, but the bookkeeping did not finish (e.g. registration throttled): redo only that
    const rows = parseManifest((await deps.objects.get(chunkManifestKey(input.taskId, input.index))).toString('utf8'));
    let registered: number | undefined;
    if (register) {
      const bundle = (await deps.objects.get(chunkCertificatesKey(input.taskId, input.index))).toString('utf8');
      registered = await registerAll(deps, request, input, certificatePems(bundle));
    }
    await publishIssued(deps, request, input, rows);
    await deps.tasks.completeChunk(input.taskId, input.index, registered);
    return result(true);
  }

  const level = deps.zipLevel ?? 0;
  let chunk: BuiltChunk;
  if (request.ca.type === 'certflow') {
    const build = deps.build ?? buildInProcess(deps.caKeys);
    chunk = await build({
      request,
      range,
      caId: request.ca.caId,
      now: deps.clock.now().toISOString(),
      level,
      keepCertificates: register,
    });
  } else {
    if (!deps.externalIssuer) {
      throw new ValidationError('SUPPLIER_CA_UNAVAILABLE', `a ${request.ca.type} CA is not available in this runtime`);
    }
    chunk = await buildExternally(deps, deps.externalIssuer(request.ca), request, input, range, level);
  }

  // manifest (and certificates to register) first, zip last: the zip's presence means the chunk is signed
  await deps.objects.put(chunkManifestKey(input.taskId, input.index), chunk.manifest, { contentType: 'text/csv' });
  const toRegister = register ? certificatesOf(chunk) : undefined;
  if (toRegister !== undefined) {
    await deps.objects.put(chunkCertificatesKey(input.taskId, input.index), toRegister, {
      contentType: 'application/x-pem-file',
    });
  }
  await deps.objects.put(zipKey, chunk.zip, {
    contentType: 'application/zip',
    metadata: {
      'entries-length': String(chunk.entriesLength),
      'central-directory-length': String(chunk.centralDirectoryLength),
      'entry-count': String(chunk.entryCount),
    },
  });
  chunk.release?.(); // stored: its memory can serve the next chunk

  const registered =
    toRegister !== undefined ? await registerAll(deps, request, input, certificatePems(toRegister)) : undefined;

  await publishIssued(deps, request, input, chunk.rows);
  await deps.tasks.completeChunk(input.taskId, input.index, registered);
  return result(false);
}
