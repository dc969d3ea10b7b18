import { ConflictError } from '../errors';
import { assembleZip, ZipPart } from '../packaging/zip';
import type { ObjectHead, ObjectPiece } from '../ports';
import type { ObjectStore, TaskStore, Clock } from '../ports';
import { batchZipKey, chunkManifestKey, chunkZipKey } from './keys';
import { loadBatchRequest, MANIFEST_HEADER, parseManifest } from './chunk';
import { describeFailure, getTask } from './service';

export interface AssembleDeps {
  objects: ObjectStore;
  tasks: TaskStore;
  clock: Clock;
}

export interface AssembleInput {
  taskId: string;
  /** the Map's per-chunk results: `{ index }`, or `{ index, failed: true, error }` from the processor's Catch */
  chunkResults?: { index?: number; failed?: boolean; error?: { Error?: string; Cause?: string } }[];
}

export interface AssembleResult {
  taskId: string;
  supplierId: string;
  quantity: number;
  chunksTotal: number;
  zipKey: string;
  zipSize: number;
  completedAt: string;
}

/** The batch cannot be assembled: a chunk failed or is not counted done. Not retried; the batch fails. */
export class BatchIncompleteError extends ConflictError {
  override readonly name = 'BatchIncompleteError';
}

/** Chunk files read ahead of the one in hand, so one request's round trip overlaps the work on the one before. */
const READ_AHEAD = 2;

/**
 * `read(i)` for i = 0, 1, 2 … in order, each started READ_AHEAD reads early; only those in flight are held.
 * Asked again for the same index (a second pass), it reads again.
 */
function readingAhead<T>(count: number, read: (i: number) => Promise<T>): (i: number) => Promise<T> {
  const started = new Map<number, Promise<T>>();
  return (i) => {
    for (let j = i; j <= Math.min(count - 1, i + READ_AHEAD); j++) {
      if (!started.has(j)) {
        const pending = read(j);
        pending.catch(() => undefined); // surfaces when its turn comes
        started.set(j, pending);
      }
    }
    const mine = started.get(i)!;
    for (const j of started.keys()) if (j <= i) started.delete(j);
    return mine;
  };
}

async function* manifestStream(
  objects: ObjectStore,
  taskId: string,
  chunks: number,
  layout: 'certflow' | 'cdf',
): AsyncGenerator<Uint8Array> {
  const manifest = readingAhead(chunks, (i) => objects.get(chunkManifestKey(taskId, i)));
  if (layout === 'cdf') {
    // CDF's certs/certificate_manifest.json: { commonName: certificateId }
    yield Buffer.from('{');
    let first = true;
    for (let i = 0; i < chunks; i++) {
      const rows = parseManifest((await manifest(i)).toString('utf8'));
      const body = rows.map((r) => `${JSON.stringify(r.commonName)}:${JSON.stringify(r.certificateId)}`).join(',');
      if (body) {
        yield Buffer.from(first ? body : `,${body}`);
        first = false;
      }
    }
    yield Buffer.from('}\n');
    return;
  }
  yield Buffer.from(MANIFEST_HEADER);
  for (let i = 0; i < chunks; i++) yield await manifest(i);
}

/**
 * Checks that every chunk succeeded (the Map's results and the task's own count, so a lost result cannot
 * slip through); answers the batch zip when it exists already; else streams the chunk zips' entries and a manifest
 * into one zip object. Memory stays bounded: one chunk's central directory at a time, and the upload's parts.
 */
export async function assembleBatch(deps: AssembleDeps, input: AssembleInput): Promise<AssembleResult> {
  const task = await getTask(deps, input.taskId);
  const failed = (input.chunkResults ?? []).find((r) => r.failed);
  if (failed) {
    // the same reading of a Step Functions error as the failure path's (Lambda's JSON cause, or plain text)
    const { message } = describeFailure({ Cause: failed.error?.Cause ?? failed.error?.Error ?? 'unknown error' });
    throw new BatchIncompleteError('CHUNK_FAILED', `chunk ${failed.index ?? '?'} failed: ${message}`);
  }
  if (task.status === 'failed')
    throw new BatchIncompleteError('BATCH_FAILED', task.error?.message ?? 'the batch failed');
  if (task.chunksPending !== 0) {
    throw new BatchIncompleteError(
      'CHUNKS_PENDING',
      `${task.chunksPending} of ${task.chunksTotal} chunks are not done`,
    );
  }
  const zipKey = batchZipKey(task.taskId);
  const result = (zipSize: number): AssembleResult => ({
    taskId: task.taskId,
    supplierId: task.supplierId,
    quantity: task.quantity,
    chunksTotal: task.chunksTotal,
    zipKey,
    zipSize,
    completedAt: deps.clock.now().toISOString(),
  });
  // assembled before (a retried or redriven step): the upload is all or nothing, so the zip is whole, and the chunk
  // zips it was made from may be deleted by now
  const assembled = await deps.objects.head(zipKey);
  if (assembled) return result(assembled.size);

  const request = await loadBatchRequest(deps.objects, task.taskId);

  type Range = { key: string; start: number; end: number };
  // assembleZip walks the parts twice (entries, then central directories): each chunk zip's layout is read once
  const heads = new Map<number, Promise<ObjectHead | undefined>>();
  const headAhead = readingAhead(task.chunksTotal, (i) => deps.objects.head(chunkZipKey(task.taskId, i)));
  const headOf = (i: number): Promise<ObjectHead | undefined> => {
    if (!heads.has(i)) heads.set(i, headAhead(i));
    return heads.get(i)!;
  };
  const centralDirectoryAhead = readingAhead(task.chunksTotal, async (i) => {
    const head = (await headOf(i))!;
    const entriesLength = Number(head.metadata['entries-length']);
    const cdLength = Number(head.metadata['central-directory-length']);
    return deps.objects.getRange(chunkZipKey(task.taskId, i), entriesLength, entriesLength + cdLength);
  });
  async function* parts(): AsyncGenerator<ZipPart<Range>> {
    for (let i = 0; i < task.chunksTotal; i++) {
      const key = chunkZipKey(task.taskId, i);
      const head = await headOf(i);
      if (!head) throw new BatchIncompleteError('CHUNK_MISSING', `chunk ${i} has no zip`);
      const entriesLength = Number(head.metadata['entries-length']);
      const cdLength = Number(head.metadata['central-directory-length']);
      if (!Number.isSafeInteger(entriesLength) || !Number.isSafeInteger(cdLength)) {
        throw new BatchIncompleteError('CHUNK_MISSING', `chunk ${i} has no zip layout metadata`);
      }
      yield {
        entriesLength,
        // the store copies the chunk's entries into the batch zip itself where it can (S3 UploadPartCopy)
        entries: () => ({ reference: { key, start: 0, end: entriesLength }, length: entriesLength }),
        centralDirectory: () => centralDirectoryAhead(i),
      };
    }
  }

  const manifestName = request.layout === 'cdf' ? 'certs/certificate_manifest.json' : 'manifest.csv';
  async function* pieces(): AsyncGenerator<ObjectPiece> {
    for await (const piece of assembleZip(parts, {
      mtime: new Date(request.notBefore),
      trailingEntries: [
        {
          name: manifestName,
          content: manifestStream(deps.objects, task.taskId, task.chunksTotal, request.layout),
          level: 6,
        },
      ],
    })) {
      yield piece instanceof Uint8Array ? piece : { copyFrom: piece.reference };
    }
  }
  const { size } = await deps.objects.compose(zipKey, pieces(), { contentType: 'application/zip' });
  return result(size);
}
