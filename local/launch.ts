/**
 * The process settings the local runtime runs with, and the launcher that applies them: `npm start`, `npm run bench`
 * and the `certflow` CLI start their script through it (`node dist/launcher.js dist/main.js …`; local/launcher.ts).
 *
 * Both settings are read once, when a process starts, so they cannot be set from inside the runtime:
 * - `--max-semi-space-size=1` (MB; V8's default is 16 on 64-bit): the young generation of the main thread and of
 *   each signing thread (two semi-spaces: 2 MB instead of 32). The short-lived objects of a batch (SDK requests,
 *   events, inventory records; a chunk's certificates in the signing threads) are collected in small young
 *   generations: a 100,000 batch peaks ~45 MB lower with 4 than with 16, and ~20–35 MB lower again with 1, at the
 *   same throughput within this host's noise (docs/benchmarks.md).
 * - `MALLOC_ARENA_MAX=2` (glibc; other C libraries ignore it): glibc gives each thread that allocates its own malloc
 *   arena, up to 8 per core, and an arena keeps what it once held. The runtime has a dozen threads (the main thread,
 *   the signing threads, libuv's pool for files and LevelDB, V8's helpers): two shared arenas hold ~30 MB less.
 *
 * A value already in the environment (or a semi-space flag already given) is kept: the launcher only fills in.
 */
import { spawn } from 'node:child_process';

export const RUNTIME_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];
export const RUNTIME_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };

const flagName = (flag: string): string => flag.split('=')[0]!;
/** Whether `execArgv` sets `flag` (to any value). */
const gives = (execArgv: readonly string[], flag: string): boolean =>
  execArgv.some((a) => flagName(a) === flagName(flag));

/** Whether this process runs with the runtime's settings (or with values of its own for them). */
export function hasRuntimeSettings(
  execArgv: readonly string[] = process.execArgv,
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  return (
    RUNTIME_NODE_FLAGS.every((f) => gives(execArgv, f)) &&
    Object.keys(RUNTIME_ENV).every((name) => env[name] !== undefined)
  );
}

/** The command line and environment that run `script` with the runtime's settings (kept where already set). */
export function launchCommand(
  script: string,
  args: readonly string[],
  execArgv: readonly string[] = process.execArgv,
  env: NodeJS.ProcessEnv = process.env,
): { argv: string[]; env: NodeJS.ProcessEnv } {
  const flags = [...execArgv, ...RUNTIME_NODE_FLAGS.filter((f) => !gives(execArgv, f))];
  const filled = Object.fromEntries(Object.entries(RUNTIME_ENV).filter(([name]) => env[name] === undefined));
  return { argv: [...flags, script, ...args], env: { ...env, ...filled } };
}

/**
 * Runs `script` in a child Node with the runtime's settings, stdio shared; SIGINT and SIGTERM are passed on, and
 * this process exits with the child's code (or its signal's, 128 + n).
 */
export function launch(script: string, args: readonly string[]): void {
  const { argv, env } = launchCommand(script, args);
  const child = spawn(process.execPath, argv, { stdio: 'inherit', env });
  const pass = (signal: NodeJS.Signals) => () => child.kill(signal);
  process.on('SIGINT', pass('SIGINT'));
  process.on('SIGTERM', pass('SIGTERM'));
  child.on('error', (error) => {
    console.error(`certflow: could not start ${script}: ${error.message}`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    const signalNumber = signal ? ({ SIGINT: 2, SIGTERM: 15, SIGKILL: 9 } as Record<string, number>)[signal] : 0;
    process.exit(code ?? 128 + (signalNumber ?? 1));
  });
}
