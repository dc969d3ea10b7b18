import { ValidationError } from '../errors';
import { CERTIFICATES_PER_EVENT, domainEvent } from '../events';
import { commonNameAt } from '../naming/common-name';
import type {
  CaKeyStore,
  CertificateRegistry,
  Clock,
  DeviceCertificateIssuer,
  EventPublisher,
  ObjectStore,
  SupplierCa,
  TaskStore,
} from '../ports';
import { buildChunk, BuiltChunk, ChunkPackager, ManifestRow } from './chunk-builder';
import { chunkCertificatesKey, chunkManifestKey, chunkZipKey, requestKey } from './keys';
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
    buildChunk(job.request, job.range, await caKeys.load(job.caId), new Date(job.now), job.level);

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

/** Signs with ACM Private CA or AWS IoT, one certificate at a time (their APIs are per certificate). */
async function buildExternally(
  issuer: DeviceCertificateIssuer,
  request: BatchRequest,
  input: ChunkInput,
  range: ChunkRange,
  level: number,
): Promise<BuiltChunk> {
  const packager = new ChunkPackager(request, level);
  const validityDays = Math.max(
    1,
    Math.round((Date.parse(request.notAfter) - Date.parse(request.notBefore)) / 86_400_000),
  );
  for (let i = range.start; i < range.start + range.count; i++) {
    const files = await issuer.issue({
      commonName: commonNameAt(request.commonName, i),
      subject: { ...request.subject },
      keyType: request.keyType,
      validityDays,
      idempotencyToken: `${input.taskId}:${i}`,
      includeChain: request.includeCA,
    });
    packager.add(i, files);
  }
  return packager.finish();
}

/** AWS IoT's own CA registers as it issues; other certificates are registered when the batch asks for it. */
const registers = (request: BatchRequest, deps: ChunkDeps): boolean =>
  request.register && request.ca.type !== 'aws-iot' && deps.registry !== undefined;

/** Registers every certificate (re-registering one is a no-op, so a retried chunk can run this again). */
async function registerAll(deps: ChunkDeps, request: BatchRequest, pems: string[]): Promise<number> {
  const caCertificatePem =
    request.ca.type === 'certflow' ? (await deps.caKeys.load(request.ca.caId)).issuer.certificate.pem : undefined;
  for (const certificatePem of pems) {
    await deps.registry!.register({
      certificatePem,
      ...(caCertificatePem ? { caCertificatePem } : {}),
      status: request.certificateStatus,
    });
  }
  return pems.length;
}

/**
 * Signs one chunk of a batch and writes a standalone zip of it plus its manifest rows (the assembler later
 * copies the zip's entries into the batch zip). The chunk zip is the commit point: a replayed chunk whose zip
 * exists is not signed again — certificates are never issued twice into a batch — and only its bookkeeping
 * (events, the chunk count) is redone, which is idempotent.
 */
export async function signChunk(input: ChunkInput, deps: ChunkDeps): Promise<ChunkResult> {
  const request = await loadBatchRequest(deps.objects, input.taskId);
  const range = chunkRange(request, input.index);
  const zipKey = chunkZipKey(input.taskId, input.index);
  const result = (replayed: boolean): ChunkResult => ({
    taskId: input.taskId,
    index: input.index,
    count: range.count,
    replayed,
  });

  if (await deps.tasks.isChunkDone(input.taskId, input.index)) return result(true);
  if (await deps.objects.head(zipKey)) {
    // signed before, but the bookkeeping did not finish (e.g. registration throttled): redo only that
    const rows = parseManifest((await deps.objects.get(chunkManifestKey(input.taskId, input.index))).toString('utf8'));
    let registered: number | undefined;
    if (registers(request, deps)) {
      const bundle = (await deps.objects.get(chunkCertificatesKey(input.taskId, input.index))).toString('utf8');
      registered = await registerAll(
        deps,
        request,
        decodePemBlocks(bundle).map((b) => toPem('CERTIFICATE', b.der)),
      );
    }
    await publishIssued(deps, request, input, rows);
    await deps.tasks.completeChunk(input.taskId, input.index, registered);
    return result(true);
  }

  const level = deps.zipLevel ?? 0;
  let chunk: BuiltChunk;
  if (request.ca.type === 'certflow') {
    const build = deps.build ?? buildInProcess(deps.caKeys);
    chunk = await build({ request, range, caId: request.ca.caId, now: deps.clock.now().toISOString(), level });
  } else {
    if (!deps.externalIssuer) {
      throw new ValidationError('SUPPLIER_CA_UNAVAILABLE', `a ${request.ca.type} CA is not available in this runtime`);
    }
    chunk = await buildExternally(deps.externalIssuer(request.ca), request, input, range, level);
  }

  // manifest (and certificates to register) first, zip last: the zip's presence means the chunk is signed
  await deps.objects.put(chunkManifestKey(input.taskId, input.index), chunk.manifest, { contentType: 'text/csv' });
  if (registers(request, deps)) {
    await deps.objects.put(
      chunkCertificatesKey(input.taskId, input.index),
      chunk.issued.map((c) => c.certificatePem).join(''),
      {
        contentType: 'application/x-pem-file',
      },
    );
  }
  await deps.objects.put(zipKey, chunk.zip, {
    contentType: 'application/zip',
    metadata: {
      'entries-length': String(chunk.entriesLength),
      'central-directory-length': String(chunk.centralDirectoryLength),
      'entry-count': String(chunk.entryCount),
    },
  });

  // AWS IoT's own CA registers as it issues; other certificates are registered when the batch asks for it
  let registered = 0;
  if (request.register && request.ca.type !== 'aws-iot' && deps.registry) {
    const caCertificatePem =
      request.ca.type === 'certflow' ? (await deps.caKeys.load(request.ca.caId)).issuer.certificate.pem : undefined;
    for (const cert of chunk.issued) {
      await deps.registry.register({
        certificatePem: cert.certificatePem,
        ...(caCertificatePem ? { caCertificatePem } : {}),
        status: request.certificateStatus,
      });
      registered++;
    }
  }

  await publishIssued(deps, request, input, chunk.issued);
  await deps.tasks.completeChunk(input.taskId, input.index, registered || undefined);
  return result(false);
}
