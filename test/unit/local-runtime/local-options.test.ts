import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocal } from '../../../local/certflow';

describe('startLocal options', () => {
  it.each([-1, 1.5, Number.NaN])('refuses heapGrowingPercent %p before it starts anything', async (value) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'certflow-options-'));
    try {
      await expect(startLocal({ dataDir, port: 0, heapGrowingPercent: value })).rejects.toThrow(
        /heapGrowingPercent must be an integer ≥ 0/,
      );
      expect(readdirSync(dataDir)).toEqual([]);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
