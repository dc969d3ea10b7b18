import { finishProvisioning, type BulkProvisioningDeps } from '../core/provisioning/bulk';
import { awsProvisioningDeps } from '../adapters/aws/provisioning-deps';
import { defaultClients } from '../adapters/aws/bulk-deps';
import { lambdaBundle } from './bundle';
import { ProvisioningEnv } from './env';

/** The check after the Map: counts, per-item errors (a failed chunk's items too), task complete. */
export const createHandler =
  (deps: Pick<BulkProvisioningDeps, 'objects' | 'clock'>) => (input: Parameters<typeof finishProvisioning>[1]) =>
    finishProvisioning(deps, input);

export const handler = lambdaBundle(ProvisioningEnv, (env) =>
  createHandler(awsProvisioningDeps(env, defaultClients())),
);
