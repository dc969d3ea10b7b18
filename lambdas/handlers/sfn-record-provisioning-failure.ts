import { recordProvisioningFailure, type BulkProvisioningDeps } from '../core/provisioning/bulk';
import { lambdaBundle } from './bundle';
import { ProvisioningEnv } from './env';

/** The bulk-provisioning workflow's failure path: the task is failed with its reason. */
export const createHandler =
  (deps: Pick<BulkProvisioningDeps, 'objects' | 'clock'>) => (input: { taskId: string; error?: unknown }) =>
    recordProvisioningFailure(deps, input);

export const handler = lambdaBundle(ProvisioningEnv, async (env) => {
  const [{ awsProvisioningDeps }, { defaultClients }] = await Promise.all([
    import('../adapters/aws/provisioning-deps'),
    import('../adapters/aws/bulk-deps'),
  ]);
  return createHandler(awsProvisioningDeps(env, defaultClients()));
});
