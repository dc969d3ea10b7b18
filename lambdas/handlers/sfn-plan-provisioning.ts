import { planProvisioning, type BulkProvisioningDeps } from '../core/provisioning/bulk';

export const createHandler = (deps: Pick<BulkProvisioningDeps, 'objects' | 'bulk'>) => (input: { taskId: string }) =>
  planProvisioning(deps, input);
