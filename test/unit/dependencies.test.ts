import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * The only @aws-sdk/client-acm-pca on the registry we install from (3.523.0) depends on the Smithy 1.x/2.x cores;
 * npm hoisted those, and every newer client then carried its own copy of @smithy/core 3 and @aws-sdk/core (31 and
 * 25 copies, ~15 MB of heap in the local runtime). package.json names the current cores so they are the hoisted
 * ones; this keeps a dependency bump from splitting them again.
 */
describe('package-lock.json', () => {
  const packages = (
    JSON.parse(readFileSync(join(__dirname, '../../package-lock.json'), 'utf8')) as {
      packages: Record<string, { version?: string }>;
    }
  ).packages;
  const copies = (name: string, current: (major: number, minor: number) => boolean): string[] =>
    Object.entries(packages)
      .filter(([path, p]) => {
        const [major = 0, minor = 0] = (p.version ?? '').split('.').map(Number);
        return path.endsWith(`node_modules/${name}`) && current(major, minor);
      })
      .map(([path]) => path);

  it.each([
    ['@smithy/core', (major: number) => major >= 3],
    ['@smithy/types', (major: number) => major >= 4],
    ['@aws-sdk/core', (major: number, minor: number) => major > 3 || minor >= 900],
    ['@smithy/node-http-handler', (major: number) => major >= 4],
  ])('holds one copy of the current %s, hoisted', (name, current) => {
    const all = copies(name, current);
    expect(all).toEqual([`node_modules/${name}`]);
  });
});

describe('the signing threads', () => {
  it('load no package but Node: not @peculiar/x509, reflect-metadata nor zod (~20 MB per thread)', async () => {
    const { build } = await import('esbuild');
    const result = await build({
      entryPoints: [join(__dirname, '../../local/chunk-worker.ts')],
      bundle: true,
      platform: 'node',
      packages: 'external',
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    const externals = Object.values(result.metafile.outputs).flatMap((o) =>
      o.imports.filter((i) => i.external).map((i) => i.path),
    );
    expect(externals.filter((p) => !p.startsWith('node:'))).toEqual([]);
  });
});

describe('the local runtime', () => {
  // a fresh Node (jest's module registry is not Node's): start the runtime, list the packages it has loaded
  const script = `
    const { startLocal } = require('./local/certflow');
    const { mkdtempSync, rmSync } = require('node:fs');
    const { join } = require('node:path');
    const { tmpdir } = require('node:os');
    const dataDir = mkdtempSync(join(tmpdir(), 'certflow-loaded-'));
    startLocal({ dataDir, port: 0, workers: 1 }).then(async (cf) => {
      const names = Object.keys(require.cache).map(
        (f) => /node_modules\\/((?:@[^/]+\\/)?[^/]+)/.exec(f.slice(f.lastIndexOf('node_modules/')))?.[1],
      );
      console.log(JSON.stringify([...new Set(names.filter(Boolean))].sort()));
      await cf.close();
      rmSync(dataDir, { recursive: true, force: true });
    });`;

  it('loads the SDK clients it calls and no other (the Lambda entry points load their AWS wiring lazily)', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '-e', script], {
      cwd: join(__dirname, '../..'),
    });
    const loaded = JSON.parse(stdout.trim().split('\n').pop()!) as string[];
    // DynamoDB and S3 reach dynalite and s3rver; aws-local-stepfunctions loads the Lambda client itself
    expect(loaded.filter((name) => name.startsWith('@aws-sdk/client-'))).toEqual([
      '@aws-sdk/client-dynamodb',
      '@aws-sdk/client-lambda',
      '@aws-sdk/client-s3',
    ]);
    expect(loaded).toContain('dynalite'); // the list is real: the runtime started
  }, 60_000);
});
