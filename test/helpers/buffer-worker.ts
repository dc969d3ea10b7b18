/** A worker for WorkerPool tests: answers with a transferred buffer, and says which handed-back buffers it holds. */
import { serve } from '../../local/worker-side';

const held: number[] = [];

serve(
  async (input) => {
    const { size, fail } = input as { size: number; fail?: string };
    if (fail) throw Object.assign(new Error(fail), { name: 'TestError', code: 'TEST_CODE' });
    const buffer = new ArrayBuffer(size);
    new Uint8Array(buffer).fill(7);
    return { value: { buffer: new Uint8Array(buffer), held: [...held] }, transfer: [buffer] };
  },
  (buffer) => held.push(buffer.byteLength),
);
