/**
 * A worker thread that does the CPU-bound part of a chunk (keys, signatures, zip) for the IssueChunk handler,
 * which runs on the main thread with the same ports as on Lambda. Loads only the PKI core and the CA key store.
 */
import { workerData } from 'node:worker_threads';
import { FileCaKeyStore } from '../lambdas/adapters/local/file-ca-key-store';
import type { BuildJob } from '../lambdas/core/bulk/chunk';
import { buildChunk } from '../lambdas/core/bulk/chunk-builder';
import { zipBufferSlack } from '../lambdas/core/packaging/zip';
import { serve } from './worker-side';

export interface ChunkWorkerData {
  dataDir: string;
}

const caKeys = new FileCaKeyStore((workerData as ChunkWorkerData).dataDir);

/** Zip buffers the main thread handed back once it had stored their chunk (WorkerPool.recycle): the next zips' */
const spare: ArrayBuffer[] = [];
const MAX_SPARE = 2;

serve(
  async (input) => {
    const job = input as BuildJob;
    const output = spare.pop();
    const chunk = await buildChunk(job.request, job.range, await caKeys.load(job.caId), new Date(job.now), job.level, {
      keepCertificates: job.keepCertificates,
      ...(output ? { output: Buffer.from(output) } : {}),
    });
    const { zip } = chunk;
    // hand the zip's memory over instead of copying it: a chunk zip starts its own ArrayBuffer (ZipChunkBuilder),
    // which it fills but for at most zipBufferSlack; anything else (a pooled Buffer) is copied
    const transfer =
      zip.byteOffset === 0 && zip.buffer.byteLength <= zip.byteLength + zipBufferSlack(zip.byteLength)
        ? [zip.buffer as ArrayBuffer]
        : [];
    return { value: chunk, transfer };
  },
  (buffer) => {
    if (spare.length < MAX_SPARE) spare.push(buffer);
  },
);
