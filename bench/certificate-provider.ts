/**
 * Latency of the certificate provider Lambda (iot-certificate-provider), against AWS IoT's 5-second budget.
 *
 *   module load  a fresh `node` requiring the esbuild bundle of the handler, as Lambda's init does (median of 3)
 *   cold         the first call of a new container: SsmCaKeyStore loads the CA (3 GetParameter, PEM parse, key
 *                check) while the CA table says it is not revoked (GetItem), signs, sends Certificate Issued
 *   warm         p50 / p99 / max over BENCH_PROVIDER_CALLS calls (default 300) of the same container
 *
 * AWS calls are answered in-process by aws-sdk-client-mock (no network): add the real round trips (in-region SSM
 * GetParameter, DynamoDB GetItem, EventBridge PutEvents: typically 5–30 ms each) to the cold figure, and one GetItem
 * and one PutEvents to the warm ones.
 * Run alone with `npx tsx bench/certificate-provider.ts`; `npm run bench` runs it last.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { build } from 'esbuild';
import { awsCertificateProviderDeps, providerClients } from '../lambdas/adapters/aws/provider-deps';
import {
  buildCsr,
  createIntermediateCa,
  createRootCa,
  encodeName,
  generateDeviceKey,
  type KeyType,
  privateKeyToPem,
  toPem,
} from '../lambdas/core/pki';
import { logger } from '../lambdas/handlers/bundle';
import { CertificateProviderEnv, readEnv } from '../lambdas/handlers/env';
import { createHandler } from '../lambdas/handlers/iot-certificate-provider';
import { cmd, mockSdk } from '../test/aws/sdk-mock';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const CALLS = Number(process.env.BENCH_PROVIDER_CALLS ?? 300);
const BUDGET_MS = 5000;

const ms = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e6;
const quantile = (sorted: number[], q: number): number =>
  sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;

/** Lambda's init: a fresh process loading the minified CJS bundle the CDK builds (same esbuild options). */
async function moduleLoadMs(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'certflow-bench-provider-'));
  try {
    const outfile = join(dir, 'index.js');
    await build({
      entryPoints: [join(__dirname, '..', 'lambdas', 'handlers', 'iot-certificate-provider.ts')],
      bundle: true,
      minify: true,
      platform: 'node',
      target: 'node22',
      format: 'cjs',
      outfile,
      logLevel: 'error',
    });
    const script = `const t=process.hrtime.bigint();require(${JSON.stringify(outfile)});console.log(Number(process.hrtime.bigint()-t)/1e6)`;
    const runs = [0, 1, 2].map(() => Number(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })));
    return runs.sort((a, b) => a - b)[1]!;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function csrPool(keyType: KeyType, n: number): string[] {
  return Array.from({ length: n }, (_, i) =>
    toPem(
      'CERTIFICATE REQUEST',
      buildCsr(encodeName({ commonName: `bench-${i}`, organization: 'Acme' }), generateDeviceKey(keyType)),
    ),
  );
}

async function scenario(caKeyType: KeyType, csrKeyType: KeyType): Promise<string> {
  const now = new Date();
  const root = await createRootCa({
    subject: { commonName: 'Bench Root' },
    keyType: caKeyType,
    validity: { days: 3650 },
    now,
  });
  const ca = await createIntermediateCa(root.issuer, {
    subject: { commonName: 'Bench Provisioning CA' },
    keyType: caKeyType,
    validity: { days: 1825 },
    now,
  });
  const caId = ca.certificate.id;
  const parameters: Record<string, string> = {
    [`cdf-ca-key-${caId}`]: privateKeyToPem(ca.privateKey),
    [`cdf-ca-cert-${caId}`]: ca.certificate.pem,
    [`cdf-ca-chain-${caId}`]: root.certificate.pem,
  };
  const ssm = mockSdk(SSMClient);
  const eventBridge = mockSdk(EventBridgeClient);
  const dynamodb = mockSdk(DynamoDBDocumentClient);
  dynamodb.on(cmd(GetCommand)).resolves({ Item: { caId, status: 'active' } });
  // the shared rate schedule, idle (a slot starts now): taken before KMS Sign and ACM PCA calls; an SSM-held key
  // signs in-process, so these scenarios take none
  dynamodb.on(cmd(UpdateCommand)).resolves({});
  ssm
    .on(cmd(GetParameterCommand))
    .callsFake((input: { Name?: string }) => ({ Parameter: { Value: parameters[input.Name!] } }));
  eventBridge.on(cmd(PutEventsCommand)).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'e' }] });
  try {
    const env = readEnv(CertificateProviderEnv, {
      EVENT_BUS_NAME: 'certflow',
      SIGNING_CA: JSON.stringify({ type: 'certflow', caId }),
      CA_TABLE_NAME: 'certflow-cas',
      RATE_LIMIT_TABLE_NAME: 'certflow-tasks',
    });
    const csrs = csrPool(csrKeyType, CALLS + 1);
    const request = (i: number) => ({
      certificateSigningRequest: csrs[i]!,
      principalId: 'bench',
      clientId: `bench-${i}`,
    });

    const handle = createHandler(awsCertificateProviderDeps(env, providerClients()));
    let start = process.hrtime.bigint();
    await handle(request(0));
    const cold = ms(start);
    const warm: number[] = [];
    for (let i = 1; i <= CALLS; i++) {
      start = process.hrtime.bigint();
      await handle(request(i));
      warm.push(ms(start));
    }
    warm.sort((a, b) => a - b);
    return (
      `provider  CA ${caKeyType}, CSR ${csrKeyType}: cold ${cold.toFixed(1)} ms, warm p50 ${quantile(warm, 0.5).toFixed(2)} ms, ` +
      `p99 ${quantile(warm, 0.99).toFixed(2)} ms, max ${warm[warm.length - 1]!.toFixed(2)} ms (${CALLS} calls)`
    );
  } finally {
    ssm.restore();
    eventBridge.restore();
    dynamodb.restore();
  }
}

/** Each scenario in a fresh process, so that its cold call pays the first-time costs (JIT, lazy SDK setup) too. */
export async function benchCertificateProvider(): Promise<void> {
  console.log(`provider  module load (fresh node, minified bundle): ${(await moduleLoadMs()).toFixed(0)} ms`);
  for (const [caKeyType, csrKeyType] of [
    ['ec-p256', 'ec-p256'],
    ['ec-p256', 'rsa-2048'],
    ['rsa-2048', 'ec-p256'],
  ] as const) {
    const out = execFileSync(process.execPath, [...process.execArgv, process.argv[1] ?? __filename], {
      encoding: 'utf8',
      env: {
        ...process.env,
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        [SCENARIO_ENV]: `${caKeyType},${csrKeyType}`,
      },
    });
    process.stdout.write(out);
  }
  console.log(`          budget ${BUDGET_MS} ms per call (AWS IoT CreateCertificateFromCsr)`);
}

/** Names the one scenario a child process started by benchCertificateProvider runs (`caKeyType,csrKeyType`). */
const SCENARIO_ENV = 'CERTFLOW_BENCH_PROVIDER_SCENARIO';

/**
 * In a child process started by benchCertificateProvider: runs its scenario, prints its line and returns true.
 * The entry point (this file under tsx, or the bench bundle dist/run.js) calls it first: in a bundle
 * `require.main === module` holds for every module, so it cannot tell a child from the parent.
 */
export function runChildScenario(): boolean {
  const spec = process.env[SCENARIO_ENV];
  if (!spec) return false;
  const [caKeyType, csrKeyType] = spec.split(',') as [KeyType, KeyType];
  logger.setLogLevel('SILENT');
  scenario(caKeyType, csrKeyType)
    .then((line) => console.log(line))
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
  return true;
}

if (require.main === module && /certificate-provider\.[cm]?[jt]s$/.test(process.argv[1] ?? '') && !runChildScenario()) {
  benchCertificateProvider().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
