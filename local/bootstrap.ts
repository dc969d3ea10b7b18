/** First start of the local runtime: a development root CA, an intermediate, and a supplier `demo` signing with it. */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createIntermediate, createRoot, type CaDeps } from '../lambdas/core/ca/service';
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
