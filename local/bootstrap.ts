/** First start of the local runtime: a development root CA, an intermediate, and a supplier `demo` signing with it. */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createIntermediate, createRoot, issueServer, type CaDeps } from '../lambdas/core/ca/service';
import type { SupplierCa } from '../lambdas/core/ports';

export interface BootstrapResult {
  created: boolean;
  rootCaId: string;
  issuingCaId: string;
  suppliers: Record<string, SupplierCa>;
}

export const suppliersFile = (dataDir: string): string => join(dataDir, 'suppliers.json');

export async function readSuppliers(dataDir: string): Promise<Record<string, SupplierCa> | undefined> {
  try {
    return JSON.parse(await readFile(suppliersFile(dataDir), 'utf8')) as Record<string, SupplierCa>;
  } catch {
    return undefined;
  }
}

/** Creates the development CAs through the CA service (so they are in the CA store, the inventory and the events). */
export async function bootstrap(dataDir: string, deps: CaDeps): Promise<BootstrapResult> {
  const existing = await readSuppliers(dataDir);
  const state = await readFile(join(dataDir, 'dev-ca.json'), 'utf8')
    .then((t) => JSON.parse(t) as { rootCaId: string; issuingCaId: string })
    .catch(() => undefined);
  if (existing && state) return { created: false, ...state, suppliers: existing };

  const root = await createRoot(deps, {
    subject: { commonName: 'certflow Development Root CA', organization: 'certflow (local)' },
    validityDays: 3650,
    pathLength: 1,
  });
  const issuing = await createIntermediate(deps, root.caId, {
    subject: { commonName: 'certflow Development Issuing CA', organization: 'certflow (local)' },
    validityDays: 1825,
  });
  const suppliers: Record<string, SupplierCa> = { ...(existing ?? {}), demo: { type: 'certflow', caId: issuing.caId } };
  const result = { rootCaId: root.caId, issuingCaId: issuing.caId };
  await writeFile(join(dataDir, 'dev-ca.json'), JSON.stringify(result, null, 2));
  await writeFile(suppliersFile(dataDir), JSON.stringify(suppliers, null, 2));
  return { created: true, ...result, suppliers };
}

export interface BrokerCredentials {
  /** the server certificate followed by its chain (issuing CA first) */
  certificatePem: string;
  keyPem: string;
  certificateId: string;
}

/**
 * The local MQTT broker's server certificate (SAN localhost and 127.0.0.1), issued by certflow's issuing CA through
 * the CA service (so it is in the inventory) and kept under `{dataDir}/mqtt/` (key file mode 0600). A new one is
 * issued when there is none, when the issuing CA changed, or within 30 days of its expiry.
 */
export async function brokerCredentials(
  dataDir: string,
  deps: CaDeps,
  issuingCaId: string,
): Promise<BrokerCredentials> {
  const dir = join(dataDir, 'mqtt');
  const stored = await readFile(join(dir, 'server.json'), 'utf8')
    .then((t) => JSON.parse(t) as { issuerId: string; notAfter: string; certificatePem: string; certificateId: string })
    .catch(() => undefined);
  const keyPem = await readFile(join(dir, 'server.key'), 'utf8').catch(() => undefined);
  const fresh = (notAfter: string) => Date.parse(notAfter) - deps.clock.now().getTime() > 30 * 86_400_000;
  if (stored && keyPem && stored.issuerId === issuingCaId && fresh(stored.notAfter)) {
    return { certificatePem: stored.certificatePem, keyPem, certificateId: stored.certificateId };
  }
  const issued = await issueServer(deps, {
    issuerId: issuingCaId,
    fqdn: 'localhost',
    sans: { dns: ['localhost'], ip: ['127.0.0.1'] },
    subject: { organization: 'certflow (local)' },
  });
  const credentials = {
    certificatePem: issued.certificatePem + issued.chainPem,
    keyPem: issued.privateKeyPem ?? '',
    certificateId: issued.certificateId,
  };
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'server.key'), credentials.keyPem, { mode: 0o600 });
  await writeFile(
    join(dir, 'server.json'),
    JSON.stringify(
      {
        issuerId: issuingCaId,
        notAfter: issued.notAfter,
        certificateId: issued.certificateId,
        certificatePem: credentials.certificatePem,
      },
      null,
      2,
    ),
  );
  return credentials;
}
