/**
 * `npm run bench`: bulk issuance through the embedded local runtime, with baselines measured in the same run.
 *
 *   floor        Node's own cost of one EC P-256 key generation (generateKeyPairSync) + PKCS#8 export + one
 *                ECDSA signature, times the cores used: what a straightforward Node implementation could reach
 *   openssl loop the openssl CLI making the same certificates one by one (genpkey + req + x509 -req)
 *   certflow     POST a batch, wait for `complete`, download the zip — everything a user waits for (the wait: the
 *                batch's Batch Completed event on the bus, then one GET /task, as a consumer of the events would)
 *
 * Per batch it also prints the CPU of every thread (steadier than wall time on a shared machine) and how long
 * after the download the inventory had caught up. Peak RSS counts the whole runtime (see rssMb): this process,
 * which `npm run bench` starts with the runtime's process settings (local/launch.ts), as `npm start` does; the floor
 * loops run in a child process of their own, before the runtime starts, so that their memory is not counted.
 *
 * Environment: BENCH_EC (default 10000), BENCH_RSA (200), BENCH_LARGE (100000; 0 skips), BENCH_WORKERS (cores),
 * BENCH_RUNS (3: EC batches after a 2,000-certificate warm-up; the best is compared with the best-of-three floor).
 * Prints ratios; the figures go into docs/benchmarks.md.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { startLocal, type LocalCertflow } from '../local/certflow';
import { hasRuntimeSettings, RUNTIME_ENV, RUNTIME_NODE_FLAGS } from '../local/launch';
import { benchCertificateProvider, runChildScenario } from './certificate-provider';

const EC = Number(process.env.BENCH_EC ?? 10_000);
const RSA = Number(process.env.BENCH_RSA ?? 200);
const LARGE = Number(process.env.BENCH_LARGE ?? 100_000);
const WORKERS = Number(process.env.BENCH_WORKERS ?? availableParallelism());
const CHUNK = Number(process.env.BENCH_CHUNK ?? 1000);
/** EC batches measured, after a warm-up batch: the best is compared with the floor, itself a best of three */
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));

/** Peak RSS (VmHWM, kB) of this process's live child processes, from /proc (Linux); 0 elsewhere. */
function childrenPeakKb(): number {
  let total = 0;
  try {
    for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      try {
        const status = readFileSync(`/proc/${pid}/status`, 'utf8');
        if (Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]) !== process.pid) continue;
        total += Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      } catch {
        // the process ended while we read
      }
    }
  } catch {
    // no /proc
  }
  return total;
}

/**
 * Peak RSS of the runtime: this process (main thread and worker threads share it; maxRSS is its peak) plus the
 * peaks of child processes alive now (an upper bound of the peak of the sum). The bundled runtime starts none.
 */
const rssMb = (): number => (process.resourceUsage().maxRSS + childrenPeakKb()) / 1024;

/** Best of three runs after a warm-up, so JIT and CPU frequency do not make the baseline look worse than it is. */
function nodeFloorPerCore(n = 3000): number {
  const caKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const tbs = Buffer.alloc(420, 7);
  const once = (count: number): number => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < count; i++) {
      const k = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      k.privateKey.export({ type: 'pkcs8', format: 'pem' });
      sign('sha256', tbs, caKey);
    }
    return count / (Number(process.hrtime.bigint() - t0) / 1e9);
  };
  once(500);
  return Math.max(once(n), once(n), once(n));
}

/**
 * The same loop as nodeFloorPerCore on `threads` threads at once (summed, best of three after a warm-up): what the
 * machine really gives when every core works. Shared cores (SMT siblings, a busy host) make it less than
 * threads × the one-thread figure.
 */
async function nodeFloorParallel(threads: number, n = 3000): Promise<number> {
  const code = `
    const { generateKeyPairSync, sign } = require('node:crypto');
    const { parentPort } = require('node:worker_threads');
    const caKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const tbs = Buffer.alloc(420, 7);
    parentPort.on('message', (count) => {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < count; i++) {
        const k = generateKeyPairSync('ec', { namedCurve: 'P-256' });
        k.privateKey.export({ type: 'pkcs8', format: 'pem' });
        sign('sha256', tbs, caKey);
      }
      parentPort.postMessage(count / (Number(process.hrtime.bigint() - t0) / 1e9));
    });`;
  const workers = Array.from({ length: threads }, () => new Worker(code, { eval: true }));
  const round = (count: number): Promise<number> =>
    Promise.all(
      workers.map(
        (w) =>
          new Promise<number>((resolve) => {
            w.once('message', resolve);
            w.postMessage(count);
          }),
      ),
    ).then((rates) => rates.reduce((a, b) => a + b, 0));
  try {
    await round(500);
    return Math.max(await round(n), await round(n), await round(n));
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/** openssl CLI, one certificate at a time, as the scripts certflow replaces do it. */
function opensslLoop(keyType: 'ec' | 'rsa', n: number): number {
  const dir = mkdtempSync(join(tmpdir(), 'certflow-bench-openssl-'));
  try {
    const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    run([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-subj',
      '/CN=bench CA',
      '-days',
      '30',
    ]);
    writeFileSync(
      join(dir, 'ext.cnf'),
      'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n',
    );
    const keyArgs =
      keyType === 'ec'
        ? ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']
        : ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'];
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      run(['genpkey', ...keyArgs, '-out', `d${i}.key`]);
      run(['req', '-new', '-key', `d${i}.key`, '-subj', `/CN=device-${i}`, '-out', `d${i}.csr`]);
      run([
        'x509',
        '-req',
        '-in',
        `d${i}.csr`,
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-days',
        '365',
        '-extfile',
        'ext.cnf',
        '-out',
        `d${i}.pem`,
      ]);
    }
    return n / (Number(process.hrtime.bigint() - t0) / 1e9);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const ended = new Map<string, () => void>();
const endedEarly = new Set<string>();
const watching = new WeakSet<LocalCertflow>();

/** Resolves when the bus carries the batch's Batch Completed or Batch Failed event (10 minutes at most). */
function batchEnd(cf: LocalCertflow, taskId: string): Promise<void> {
  if (!watching.has(cf)) {
    watching.add(cf);
    cf.bus.addRule(
      'bench-batch-end',
      { source: ['certflow'], 'detail-type': ['Batch Completed', 'Batch Failed'] },
      async (event) => {
        const id = String(event.detail.taskId);
        const done = ended.get(id);
        if (done) done();
        else endedEarly.add(id);
      },
    );
  }
  if (endedEarly.delete(taskId)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no end event for batch ${taskId} in 10 minutes`)), 600_000);
    ended.set(taskId, () => {
      clearTimeout(timer);
      ended.delete(taskId);
      resolve();
    });
  });
}

async function batch(
  cf: LocalCertflow,
  quantity: number,
  keyType: string,
): Promise<{ rate: number; seconds: number; bytes: number; cpuSeconds: number; inventorySeconds: number }> {
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  const res = await fetch(`${cf.url}/supplier/demo/certificates`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ quantity, keyType, certInfo: { commonName: '`bench-`A0000000${increment}' } }),
  });
  const { taskId } = (await res.json()) as { taskId: string };
  // wait as an EventBridge consumer does, for the batch's Batch Completed or Batch Failed event (polling GET /task
  // every 50 ms cost ~80 DynamoDB requests per 10,000 batch: more than the batch's own bookkeeping), then read the
  // task once, as the API reports it
  await batchEnd(cf, taskId);
  const task = (await (await fetch(`${cf.url}/certificates/${taskId}/task`)).json()) as {
    status: string;
    error?: unknown;
  };
  if (task.status !== 'complete') throw new Error(`batch ${task.status}: ${JSON.stringify(task.error)}`);
  const zip = await fetch(`${cf.url}/certificates/${taskId}`);
  let bytes = 0;
  for await (const chunk of zip.body as unknown as AsyncIterable<Uint8Array>) bytes += chunk.length;
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  // the inventory records the batch's certificates asynchronously (as EventBridge does): how long after the
  // download it has caught up, and the CPU of every thread until then (steadier than wall time on a busy machine)
  await cf.bus.drain();
  const inventorySeconds = Number(process.hrtime.bigint() - t0) / 1e9 - seconds;
  const cpu = process.cpuUsage(cpu0);
  return { rate: quantity / seconds, seconds, bytes, cpuSeconds: (cpu.user + cpu.system) / 1e6, inventorySeconds };
}

const detail = (b: { cpuSeconds: number; inventorySeconds: number }): string =>
  `CPU ${b.cpuSeconds.toFixed(1)} s (all threads, inventory included); inventory caught up ${b.inventorySeconds.toFixed(1)} s after the download`;

async function main(): Promise<void> {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  console.log(
    `certflow bench — Node ${process.version}, ${availableParallelism()} cores (${cpu}), ${WORKERS} signing workers`,
  );
  // the runtime's process settings (local/launch.ts), as npm start applies them
  const settings = `${process.execArgv.join(' ') || 'no Node flags'}, MALLOC_ARENA_MAX=${process.env.MALLOC_ARENA_MAX ?? 'unset'}`;
  console.log(
    hasRuntimeSettings()
      ? `process   ${settings} (the local runtime's settings)\n`
      : `process   ${settings}: NOT the local runtime's settings (${RUNTIME_NODE_FLAGS.join(' ')}, ${Object.entries(
          RUNTIME_ENV,
        )
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')}); npm run bench applies them\n`,
  );

  // the floor loops run in a process of their own: their keys and threads would otherwise stay in this process's
  // memory, which is the runtime's (peak RSS)
  const floors = JSON.parse(
    execFileSync(process.execPath, [...process.execArgv, process.argv[1]!], {
      env: { ...process.env, [FLOOR_CHILD_ENV]: '1' },
      encoding: 'utf8',
    }),
  ) as { floorCore: number; floorAll: number };
  const { floorCore, floorAll } = floors;
  const floor = floorCore * WORKERS;
  const opensslEc = opensslLoop('ec', 40);
  const opensslRsa = opensslLoop('rsa', 10);
  console.log(
    `baseline  Node floor (keygen + PKCS#8 export + sign): ${floorCore.toFixed(0)}/s per core → ${floor.toFixed(0)}/s on ${WORKERS}`,
  );
  console.log(
    `baseline  the same loop on ${WORKERS} threads at once: ${floorAll.toFixed(0)}/s (${(floorAll / floorCore).toFixed(2)} × one thread: what ${WORKERS} cores really give here)`,
  );
  console.log(`baseline  openssl CLI loop: EC P-256 ${opensslEc.toFixed(1)}/s, RSA-2048 ${opensslRsa.toFixed(1)}/s\n`);

  const dataDir = mkdtempSync(join(tmpdir(), 'certflow-bench-'));
  const t0 = Date.now();
  const cf = await startLocal({ dataDir, port: 0, workers: WORKERS, bulk: { chunkSize: CHUNK } });
  try {
    // warm the worker threads and the JIT of every step with one smaller batch (the floor warms up too)
    await batch(cf, Math.min(EC, 2000), 'ec-p256');
    console.log(
      `runtime   started and warmed in ${((Date.now() - t0) / 1000).toFixed(1)} s; peak RSS so far ${rssMb().toFixed(0)} MB\n`,
    );

    const runs: Awaited<ReturnType<typeof batch>>[] = [];
    for (let run = 0; run < RUNS; run++) runs.push(await batch(cf, EC, 'ec-p256'));
    const ec = runs.reduce((best, r) => (r.rate > best.rate ? r : best));
    const median = [...runs].sort((a, b) => a.rate - b.rate)[Math.floor(runs.length / 2)]!;
    console.log(
      `certflow  EC P-256 × ${EC}: ${ec.rate.toFixed(0)}/s end to end, best of ${RUNS} (${ec.seconds.toFixed(1)} s, zip ${(ec.bytes / 1e6).toFixed(1)} MB); runs ${runs.map((r) => r.rate.toFixed(0)).join(', ')}/s`,
    );
    console.log(
      `          = ${(ec.rate / floor).toFixed(2)} × floor (target ≥ 0.5; median run ${(median.rate / floor).toFixed(2)}), ${(ec.rate / opensslEc).toFixed(0)} × openssl loop (target ≥ 50)`,
    );
    console.log(`          = ${(ec.rate / floorAll).toFixed(2)} × the loop on ${WORKERS} threads at once`);
    console.log(`          ${detail(ec)}`);
    const rsa = await batch(cf, RSA, 'rsa-2048');
    console.log(
      `certflow  RSA-2048 × ${RSA}: ${rsa.rate.toFixed(1)}/s end to end (${rsa.seconds.toFixed(1)} s) = ${(rsa.rate / opensslRsa).toFixed(1)} × openssl loop`,
    );
    console.log(
      `          peak RSS so far ${rssMb().toFixed(0)} MB (whole runtime: one process with its servers and worker threads)\n`,
    );
    if (LARGE > 0) {
      const large = await batch(cf, LARGE, 'ec-p256');
      console.log(
        `certflow  EC P-256 × ${LARGE}: ${large.rate.toFixed(0)}/s end to end (${large.seconds.toFixed(1)} s, zip ${(large.bytes / 1e6).toFixed(0)} MB)`,
      );
      console.log(`          ${detail(large)}`);
      console.log(`          peak RSS ${rssMb().toFixed(0)} MB (target ≤ 256)`);
    }
  } finally {
    await cf.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
  await benchCertificateProvider();
}

/** Set in the child process that measures the floors (and prints them as JSON). */
const FLOOR_CHILD_ENV = 'CERTFLOW_BENCH_FLOOR_CHILD';

if (process.env[FLOOR_CHILD_ENV]) {
  const floorCore = nodeFloorPerCore();
  void nodeFloorParallel(WORKERS).then((floorAll) => console.log(JSON.stringify({ floorCore, floorAll })));
} else if (!runChildScenario()) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
