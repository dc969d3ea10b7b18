/** The worker-thread side of WorkerPool: serve requests with `handle`, call main-thread services by name. */
import { parentPort } from 'node:worker_threads';
import type { WorkerMessage, WorkerRequest } from './worker-pool';

const port = parentPort;
let nextCall = 1_000_000_000;
const calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();

export function callMain(service: string, ...args: unknown[]): Promise<unknown> {
  if (!port) throw new Error('not in a worker thread');
  const id = nextCall++;
  return new Promise((resolve, reject) => {
    calls.set(id, { resolve, reject });
    port.postMessage({ id, call: service, args } satisfies WorkerMessage);
  });
}

/** `handle` returns `{ value, transfer }`: the result and the ArrayBuffers to move (not copy) to the main thread. */
export function serve(handle: (input: unknown) => Promise<{ value: unknown; transfer?: ArrayBuffer[] }>): void {
  if (!port) throw new Error('not in a worker thread');
  port.on('message', (msg: WorkerRequest | WorkerMessage) => {
    const pending = calls.get(msg.id);
    if (pending && 'ok' in msg) {
      calls.delete(msg.id);
      if (msg.ok) pending.resolve(msg.result);
      else pending.reject(Object.assign(new Error(msg.error.message), { name: msg.error.name }));
      return;
    }
    const request = msg as WorkerRequest;
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
