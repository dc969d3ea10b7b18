/**
 * A small pool of worker threads for CPU-bound work (signing chunks), so a batch uses every core. Workers load
 * TypeScript through tsx, exactly as the main process does. Errors keep their `name`, `message` and `code`, so
 * the state machine's Retry/Catch match them as they match a Lambda's errors on AWS.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

export interface WorkerRequest {
  id: number;
  input: unknown;
}

/** An ArrayBuffer a result carried, handed back to a worker to reuse. */
export interface RecycleMessage {
  recycle: ArrayBuffer;
}

export type WorkerMessage =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: { name: string; message: string; code?: string } };

export interface SerializedError {
  name: string;
  message: string;
  code?: string;
}

export class RemoteError extends Error {
  readonly code?: string;
  constructor(e: SerializedError) {
    super(e.message);
    this.name = e.name;
    if (e.code) this.code = e.code;
  }
}

interface Slot {
  worker: Worker;
  busy: boolean;
}

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly queue: { request: WorkerRequest; resolve: (v: unknown) => void; reject: (e: unknown) => void }[] =
    [];
  private readonly inflight = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: unknown) => void; slot: Slot }
  >();
  private nextId = 1;
  private nextRecycle = 0;
  private closed = false;

  constructor(
    private readonly file: string,
    private readonly workerData: unknown,
    readonly size = Math.max(1, availableParallelism()),
  ) {}

  private spawn(): Slot {
    // a bundled worker (.js, see scripts/bundle.mjs) runs as it is; TypeScript sources load through tsx
    const source = this.file.endsWith('.ts')
      ? `require(${JSON.stringify(require.resolve('tsx/cjs/api'))}).register(); require(${JSON.stringify(this.file)});`
      : `require(${JSON.stringify(this.file)});`;
    // bounded heaps: a chunk needs a few MB, and a runaway worker fails its chunk (retried) instead of the process
    const worker = new Worker(source, {
      eval: true,
      workerData: this.workerData,
      resourceLimits: { maxOldGenerationSizeMb: 128, maxYoungGenerationSizeMb: 16 },
    });
    const slot: Slot = { worker, busy: false };
    worker.on('message', (msg: WorkerMessage) => this.onMessage(slot, msg));
    worker.on('error', (error) => this.onExit(slot, error));
    worker.on('exit', (code) => this.onExit(slot, new Error(`worker exited with code ${code}`)));
    worker.unref();
    this.slots.push(slot);
    return slot;
  }

  private onMessage(slot: Slot, msg: WorkerMessage): void {
    const pending = this.inflight.get(msg.id);
    if (!pending) return;
    this.inflight.delete(msg.id);
    slot.busy = false;
    if (msg.ok) pending.resolve(msg.result);
    else pending.reject(new RemoteError(msg.error));
    this.pump();
  }

  private onExit(slot: Slot, error: Error): void {
    const index = this.slots.indexOf(slot);
    if (index < 0) return;
    this.slots.splice(index, 1);
    for (const [id, pending] of this.inflight) {
      if (pending.slot !== slot) continue;
      this.inflight.delete(id);
      pending.reject(
        Object.assign(new Error(`chunk worker crashed: ${error.message}`), { name: 'TransientChunkError' }),
      );
    }
    if (!this.closed) this.pump();
  }

  private pump(): void {
    while (this.queue.length > 0) {
      let slot = this.slots.find((s) => !s.busy);
      if (!slot && this.slots.length < this.size) slot = this.spawn();
      if (!slot) return;
      const job = this.queue.shift()!;
      slot.busy = true;
      slot.worker.ref();
      this.inflight.set(job.request.id, { resolve: job.resolve, reject: job.reject, slot });
      slot.worker.postMessage(job.request);
    }
    for (const s of this.slots) if (!s.busy) s.worker.unref();
  }

  /**
   * Moves `buffer` (an ArrayBuffer a result brought from a worker, no longer needed here) back to a worker to reuse,
   * the next one in turn: its memory leaves this thread at once, instead of waiting here for a full collection.
   */
  recycle(buffer: ArrayBuffer): void {
    if (this.closed || this.slots.length === 0 || buffer.byteLength === 0) return;
    const slot = this.slots[this.nextRecycle++ % this.slots.length]!;
    slot.worker.postMessage({ recycle: buffer } satisfies RecycleMessage, [buffer]);
  }

  /** Starts every worker now, so the first batch does not pay for loading them. */
  warm(): void {
    while (this.slots.length < this.size) this.spawn();
    for (const s of this.slots) if (!s.busy) s.worker.unref();
  }

  run(input: unknown): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error('the worker pool is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ request: { id: this.nextId++, input }, resolve, reject });
      this.pump();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const slots = [...this.slots];
    this.slots.length = 0;
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
