/**
 * `npm run bench`: throughput of the PKI core, printed as ratios against baselines measured in the same run.
 * The end-to-end bulk benchmark arrives with the bulk-issuance issue.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { createRootCa, generateKeyPair, issueCertificate, privateKeyToPem } from '../lambdas/core/pki';

function perSecond(n: number, fn: () => void): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  return n / (Number(process.hrtime.bigint() - t0) / 1e9);
}

async function main(): Promise<void> {
  const now = new Date();
  const root = await createRootCa({ subject: { commonName: 'bench root' }, validity: { days: 30 }, now });
  const caKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const data = Buffer.alloc(400, 7);
  const floor = perSecond(2000, () => {
    const k = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    k.privateKey.export({ type: 'pkcs8', format: 'pem' });
    sign('sha256', data, caKey);
  });
  const n = 2000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const keys = generateKeyPair('ec-p256');
    privateKeyToPem(keys.privateKey);
    await issueCertificate(
      { profile: 'device', subject: { commonName: `d${i}` }, publicKey: keys.publicKey, validity: { days: 1 }, now },
      root.issuer,
    );
  }
  const core = n / (Number(process.hrtime.bigint() - t0) / 1e9);
  console.log(`floor (keygen + PKCS#8 export + sign), 1 core: ${floor.toFixed(0)}/s`);
  console.log(
    `issueCertificate EC P-256 with key, 1 core:   ${core.toFixed(0)}/s  (${(core / floor).toFixed(2)} × floor)`,
  );
}

void main();
