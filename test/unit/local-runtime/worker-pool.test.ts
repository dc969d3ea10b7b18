import { join } from 'node:path';
import { WorkerPool } from '../../../local/worker-pool';

const WORKER = join(__dirname, '../../helpers/buffer-worker.ts');

describe('WorkerPool', () => {
  let pool: WorkerPool;
  afterEach(() => pool?.close());

  it('moves a result buffer back to a worker with recycle: detached here, received there', async () => {
    pool = new WorkerPool(WORKER, {}, 1);
    const first = (await pool.run({ size: 4096 })) as { buffer: Uint8Array; held: number[] };
    expect(first.buffer.byteLength).toBe(4096);
    expect(first.buffer[4095]).toBe(7);
    expect(first.held).toEqual([]);
    pool.recycle(first.buffer.buffer as ArrayBuffer);
    // the memory left this thread at once
    expect(first.buffer.byteLength).toBe(0);
    const second = (await pool.run({ size: 16 })) as { held: number[] };
    expect(second.held).toEqual([4096]);
  });

  it('keeps the name, message and code of a worker error', async () => {
    pool = new WorkerPool(WORKER, {}, 1);
    await expect(pool.run({ size: 1, fail: 'no such chunk' })).rejects.toMatchObject({
      name: 'TestError',
      message: 'no such chunk',
      code: 'TEST_CODE',
    });
  });

  it('ignores a recycle once closed', async () => {
    pool = new WorkerPool(WORKER, {}, 1);
    const { buffer } = (await pool.run({ size: 64 })) as { buffer: Uint8Array };
    await pool.close();
    pool.recycle(buffer.buffer as ArrayBuffer);
    expect(buffer.byteLength).toBe(64);
  });
});
