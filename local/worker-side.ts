/** The worker-thread side of WorkerPool: answers each request with `handle`'s result or its error. */
import { parentPort } from 'node:worker_threads';
import type { RecycleMessage, WorkerMessage, WorkerRequest } from './worker-pool';

/**
 * `handle` returns `{ value, transfer }`: the result and the ArrayBuffers to move (not copy) to the main thread.
 * `recycled` receives the ArrayBuffers the main thread hands back (WorkerPool.recycle) for reuse.
 */
export function serve(
  handle: (input: unknown) => Promise<{ value: unknown; transfer?: ArrayBuffer[] }>,
  recycled?: (buffer: ArrayBuffer) => void,
): void {
  const port = parentPort;
  if (!port) throw new Error('not in a worker thread');
  port.on('message', (request: WorkerRequest | RecycleMessage) => {
    if ('recycle' in request) {
      recycled?.(request.recycle);
      return;
    }
    handle(request.input).then(
      ({ value, transfer }) =>
        port.postMessage({ id: request.id, ok: true, result: value } satisfies WorkerMessage, transfer ?? []),
      (e: { name?: string; message?: string; code?: string }) =>
        port.postMessage({
          id: request.id,
          ok: false,
          error: { name: e?.name ?? 'Error', message: e?.message ?? String(e), ...(e?.code ? { code: e.code } : {}) },
        } satisfies WorkerMessage),
    );
  });
}
