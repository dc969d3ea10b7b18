import { recordProvisioningFailure, type BulkProvisioningDeps } from '../core/provisioning/bulk';

/** The bulk-provisioning workflow's failure path: the task is failed with its reason. */
export const createHandler =
  (deps: Pick<BulkProvisioningDeps, 'objects' | 'clock'>) => (input: { taskId: string; error?: unknown }) =>
    recordProvisioningFailure(deps, input);
