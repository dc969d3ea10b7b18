import { finishProvisioning, type BulkProvisioningDeps } from '../core/provisioning/bulk';
import { lambdaBundle } from './bundle';
import { ProvisioningEnv } from './env';

/** The check after the Map: counts, per-item errors (a failed chunk's items too), task complete. */
export const createHandler =
  (deps: Pick<BulkProvisioningDeps, 'objects' | 'clock'>) => (input: Parameters<typeof finishProvisioning>[1]) =>
    finishProvisioning(deps, input);

export const handler = lambdaBundle(ProvisioningEnv, async (env) => {
  const [{ awsProvisioningDeps }, { defaultClients }] = await Promise.all([
    import('../adapters/aws/provisioning-deps'),
    import('../adapters/aws/bulk-deps'),
  ]);
  return createHandler(awsProvisioningDeps(env, defaultClients()));
});
