import { execFileSync } from 'node:child_process';

/** `unzip -t` (the oracle) on a file; returns stdout and throws if the archive is damaged. */
export const unzipTest = (file: string): string =>
  execFileSync('unzip', ['-t', file], { encoding: 'utf8', maxBuffer: 256 << 20 });

/** Entry names of an archive, via `unzip -Z1`. */
export const unzipList = (file: string): string[] =>
  execFileSync('unzip', ['-Z1', file], { encoding: 'utf8', maxBuffer: 256 << 20 })
    .split('\n')
    .filter(Boolean);

export const unzipRead = (file: string, entry: string): string =>
  execFileSync('unzip', ['-p', file, entry], { encoding: 'utf8', maxBuffer: 256 << 20 });
