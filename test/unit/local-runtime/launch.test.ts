import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasRuntimeSettings, launchCommand, RUNTIME_ENV, RUNTIME_NODE_FLAGS } from '../../../local/launch';

describe('the runtime process settings (local/launch.ts)', () => {
  it('ok/adds the semi-space flag and MALLOC_ARENA_MAX, after the flags given and before the script', () => {
    const { argv, env } = launchCommand('dist/main.js', ['--x'], ['--enable-source-maps'], { PATH: '/bin' });
    expect(argv).toEqual(['--enable-source-maps', '--max-semi-space-size=1', 'dist/main.js', '--x']);
    expect(env).toEqual({ PATH: '/bin', MALLOC_ARENA_MAX: '2' });
    expect(RUNTIME_NODE_FLAGS).toEqual(['--max-semi-space-size=1']);
    expect(RUNTIME_ENV).toEqual({ MALLOC_ARENA_MAX: '2' });
  });

  it('ok/keeps values of the caller: a semi-space flag given, MALLOC_ARENA_MAX set', () => {
    const { argv, env } = launchCommand('main.js', [], ['--max-semi-space-size=16'], { MALLOC_ARENA_MAX: '8' });
    expect(argv).toEqual(['--max-semi-space-size=16', 'main.js']);
    expect(env).toEqual({ MALLOC_ARENA_MAX: '8' });
  });

  it('tells whether a process has them (its own values count)', () => {
    expect(hasRuntimeSettings(['--max-semi-space-size=4'], { MALLOC_ARENA_MAX: '2' })).toBe(true);
    expect(hasRuntimeSettings(['--max-semi-space-size=8'], { MALLOC_ARENA_MAX: '4' })).toBe(true);
    expect(hasRuntimeSettings([], { MALLOC_ARENA_MAX: '2' })).toBe(false);
    expect(hasRuntimeSettings(['--max-semi-space-size=4'], {})).toBe(false);
    expect(hasRuntimeSettings(['--max-old-space-size=4'], { MALLOC_ARENA_MAX: '2' })).toBe(false);
  });

  describe('the launcher, as npm start runs it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'certflow-launch-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const script = join(dir, 'child.js');
    // the child reports its arguments, Node flags and environment (with 'wait', once its SIGTERM handler is in place:
    // the test signals as soon as it reads the report)
    writeFileSync(
      script,
      `if (process.argv[2] === 'wait') { process.on('SIGTERM', () => { console.log('got SIGTERM'); process.exit(7); }); setInterval(() => {}, 1000); }
       console.log(JSON.stringify({ args: process.argv.slice(2), execArgv: process.execArgv,
         arena: process.env.MALLOC_ARENA_MAX ?? null }));
       if (process.argv[2] !== 'wait') process.exit(Number(process.argv[2] ?? 0));`,
    );
    const run = (args: string[], env: NodeJS.ProcessEnv = {}) => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', join(__dirname, '../../../local/launcher.ts'), script, ...args],
        { env: { PATH: process.env.PATH, ...env } },
      );
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      return { child, exited, out: () => out };
    };

    it('ok/runs the script with the settings and the arguments, and exits with its code', async () => {
      const { exited, out } = run(['3', 'b']);
      expect(await exited).toBe(3);
      const report = JSON.parse(out().trim()) as { args: string[]; execArgv: string[]; arena: string };
      expect(report.args).toEqual(['3', 'b']);
      expect(report.execArgv).toContain('--max-semi-space-size=1');
      expect(report.arena).toBe('2');
    }, 30_000);

    it('ok/keeps MALLOC_ARENA_MAX from the environment', async () => {
      const { exited, out } = run(['0'], { MALLOC_ARENA_MAX: '6' });
      expect(await exited).toBe(0);
      expect((JSON.parse(out().trim()) as { arena: string }).arena).toBe('6');
    }, 30_000);

    it('ok/passes SIGTERM on to the script and exits with the code the script chose', async () => {
      const { child, exited, out } = run(['wait']);
      while (!out().includes('execArgv')) await new Promise((r) => setTimeout(r, 50));
      child.kill('SIGTERM');
      expect(await exited).toBe(7);
      expect(out()).toContain('got SIGTERM');
    }, 30_000);
  });
});
