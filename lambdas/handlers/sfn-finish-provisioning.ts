import { finishProvisioning, type BulkProvisioningDeps } from '../core/provisioning/bulk';

/** The check after the Map: counts, per-item errors (a failed chunk's items too), task complete. */
export const createHandler =
  (deps: Pick<BulkProvisioningDeps, 'objects' | 'clock'>) => (input: Parameters<typeof finishProvisioning>[1]) =>
    finishProvisioning(deps, input);
