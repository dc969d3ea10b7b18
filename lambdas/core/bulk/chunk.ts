import { CERTIFICATES_PER_EVENT, domainEvent } from '../events';
import { commonNameAt } from '../naming/common-name';
import { safeEntryName, ZipChunkBuilder } from '../packaging/zip';
import { DeviceCertificateTemplate, generateDeviceKey, privateKeyPem, publicKeyPem } from '../pki/fast';
import { pemBundle } from '../pki/chain';
import { toPem } from '../pki/pem';
import type {
  CaKeyStore,
  CertificateRegistry,
  Clock,
  EventPublisher,
  LoadedCa,
  ObjectStore,
  SupplierCa,
  TaskStore,
} from '../ports';
import { chunkManifestKey, chunkZipKey, requestKey } from './keys';
import { BatchRequest, chunkRange } from './request';

export interface ChunkDeps {
  objects: ObjectStore;
  tasks: TaskStore;
  caKeys: CaKeyStore;
  events: EventPublisher;
  registry?: CertificateRegistry;
  clock: Clock;
  /** deflate level for zip entries (0 = store) */
  zipLevel?: number;
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

/** An error a workflow retries: the chunk can be run again from scratch. */
export class TransientChunkError extends Error {
  override readonly name = 'TransientChunkError';
}

/** Per-container caches: a Lambda container or worker thread signs many chunks of the same batch. */
const requestCache = new Map<string, BatchRequest>();
const caCache = new Map<string, Promise<LoadedCa>>();

export async function loadBatchRequest(objects: ObjectStore, taskId: string): Promise<BatchRequest> {
  const cached = requestCache.get(taskId);
  if (cached) return cached;
  const request = JSON.parse((await objects.get(requestKey(taskId))).toString('utf8')) as BatchRequest & {
    ca: SupplierCa;
  };
  if (requestCache.size > 32) requestCache.clear();
  requestCache.set(taskId, request);
  return request;
}

function loadCa(caKeys: CaKeyStore, caId: string): Promise<LoadedCa> {
  let ca = caCache.get(caId);
  if (!ca) {
    ca = caKeys.load(caId);
    ca.catch(() => caCache.delete(caId));
    caCache.set(caId, ca);
  }
  return ca;
}

const csvField = (v: string): string => (/[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
export const MANIFEST_HEADER = 'name,path,certificateId,serialNumber,notAfter\n';

interface ManifestRow {
  commonName: string;
  path: string;
  certificateId: string;
  serialNumber: string;
}

interface Issued extends ManifestRow {
  certificatePem: string;
}

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

async function publishIssued(
  deps: ChunkDeps,
  request: BatchRequest & { ca: SupplierCa },
  input: ChunkInput,
  rows: ManifestRow[],
): Promise<void> {
  const issuerId =
    request.ca.type === 'certflow' ? request.ca.caId : request.ca.type === 'acm-pca' ? request.ca.arn : 'aws-iot';
  const events = [];
  for (let off = 0; off < rows.length; off += CERTIFICATES_PER_EVENT) {
    events.push(
      domainEvent('Certificate Issued', {
        issuerId,
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

/**
 * Signs one chunk of a batch: fresh device keys, certificates from the batch template, a standalone zip of the
 * chunk (the assembler later copies its entries into the batch zip) and its manifest rows. The chunk zip is the
 * commit point: a replayed chunk whose zip exists is not signed again, so certificates are never issued twice.
 */
export async function signChunk(input: ChunkInput, deps: ChunkDeps): Promise<ChunkResult> {
  const request = (await loadBatchRequest(deps.objects, input.taskId)) as BatchRequest & { ca: SupplierCa };
  const range = chunkRange(request, input.index);
  const zipKey = chunkZipKey(input.taskId, input.index);

  if (await deps.tasks.isChunkDone(input.taskId, input.index)) {
    return { taskId: input.taskId, index: input.index, count: range.count, replayed: true };
  }
  if (await deps.objects.head(zipKey)) {
    // signed before but not counted (the worker stopped after its commit point): finish the bookkeeping only
    const rows = parseManifest((await deps.objects.get(chunkManifestKey(input.taskId, input.index))).toString('utf8'));
    await publishIssued(deps, request, input, rows);
    await deps.tasks.completeChunk(input.taskId, input.index);
    return { taskId: input.taskId, index: input.index, count: range.count, replayed: true };
  }

  if (request.ca.type !== 'certflow') {
    throw new Error(`supplier CA type ${request.ca.type} is not supported by the chunk signer yet`);
  }
  const ca = await loadCa(deps.caKeys, request.ca.caId);
  const notBefore = new Date(request.notBefore);
  const notAfter = new Date(request.notAfter);
  const template = new DeviceCertificateTemplate(ca.issuer, {
    subject: request.subject,
    keyType: request.keyType,
    notBefore,
    notAfter,
    now: deps.clock.now(),
  });
  const chainPem = request.includeCA ? pemBundle(ca.chain) : undefined;
  const zip = new ZipChunkBuilder({ mtime: notBefore });
  const level = deps.zipLevel ?? 1;
  const issued: Issued[] = [];
  let manifest = '';

  for (let i = range.start; i < range.start + range.count; i++) {
    const commonName = commonNameAt(request.commonName, i);
    const key = generateDeviceKey(request.keyType);
    const cert = await template.issue(commonName, key.spki);
    const certificatePem = toPem('CERTIFICATE', cert.der);
    let path: string;
    if (request.layout === 'cdf') {
      path = `certs/${cert.id}`;
      zip.add(`${path}_cert.pem`, Buffer.from(certificatePem), { level });
      zip.add(`${path}_key.pem`, Buffer.from(privateKeyPem(key)), { level });
    } else {
      path = request.uniqueNames ? safeEntryName(commonName) : `${safeEntryName(commonName)}-${i}`;
      zip.add(`${path}/certificate.pem`, Buffer.from(certificatePem), { level });
      zip.add(`${path}/private.key`, Buffer.from(privateKeyPem(key)), { level });
      zip.add(`${path}/public.key`, Buffer.from(publicKeyPem(key)), { level });
      if (chainPem) zip.add(`${path}/ca-chain.pem`, Buffer.from(chainPem), { level });
    }
    manifest += `${csvField(commonName)},${csvField(path)},${cert.id},${cert.serialNumber},${request.notAfter}\n`;
    issued.push({ commonName, path, certificateId: cert.id, serialNumber: cert.serialNumber, certificatePem });
  }

  const chunk = zip.finish();
  // manifest first, zip last: the zip's presence means the chunk is complete
  await deps.objects.put(chunkManifestKey(input.taskId, input.index), manifest, { contentType: 'text/csv' });
  await deps.objects.put(zipKey, chunk.zip, {
    contentType: 'application/zip',
    metadata: {
      'entries-length': String(chunk.entriesLength),
      'central-directory-length': String(chunk.centralDirectoryLength),
      'entry-count': String(chunk.entryCount),
    },
  });

  let registered = 0;
  if (request.register && deps.registry) {
    const caCertificatePem = ca.issuer.certificate.pem;
    for (const cert of issued) {
      await deps.registry.register({
        certificatePem: cert.certificatePem,
        caCertificatePem,
        status: request.certificateStatus,
      });
      registered++;
    }
  }

  await publishIssued(deps, request, input, issued);
  await deps.tasks.completeChunk(input.taskId, input.index, registered || undefined);
  return { taskId: input.taskId, index: input.index, count: range.count, replayed: false };
}
