/** First start of the local runtime: a development root CA, an intermediate, and a supplier `demo` signing with it. */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FileCaKeyStore } from '../lambdas/adapters/local/file-ca-key-store';
import { createIntermediateCa, createRootCa, pemBundle } from '../lambdas/core/pki';
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

export async function bootstrap(dataDir: string, caKeys: FileCaKeyStore, now = new Date()): Promise<BootstrapResult> {
  const existing = await readSuppliers(dataDir);
  const state = await readFile(join(dataDir, 'dev-ca.json'), 'utf8')
    .then((t) => JSON.parse(t) as { rootCaId: string; issuingCaId: string })
    .catch(() => undefined);
  if (existing && state) return { created: false, ...state, suppliers: existing };

  const root = await createRootCa({
    subject: { commonName: 'certflow Development Root CA', organization: 'certflow (local)' },
    validity: { days: 3650 },
    now,
    pathLength: 1,
  });
  const issuing = await createIntermediateCa(root.issuer, {
    subject: { commonName: 'certflow Development Issuing CA', organization: 'certflow (local)' },
    validity: { days: 1825 },
    now,
  });
  await caKeys.save(root.certificate.id, { certificatePem: root.certificate.pem, privateKey: root.privateKey });
  await caKeys.save(issuing.certificate.id, {
    certificatePem: issuing.certificate.pem,
    chainPem: pemBundle([root.certificate]),
    privateKey: issuing.privateKey,
  });
  const suppliers: Record<string, SupplierCa> = {
    ...(existing ?? {}),
    demo: { type: 'certflow', caId: issuing.certificate.id },
  };
  const result = { rootCaId: root.certificate.id, issuingCaId: issuing.certificate.id };
  await writeFile(join(dataDir, 'dev-ca.json'), JSON.stringify(result, null, 2));
  await writeFile(suppliersFile(dataDir), JSON.stringify(suppliers, null, 2));
  return { created: true, ...result, suppliers };
}
