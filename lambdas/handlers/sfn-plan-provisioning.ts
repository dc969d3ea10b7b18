import { planProvisioning, type BulkProvisioningDeps } from '../core/provisioning/bulk';
import { lambdaBundle } from './bundle';
import { ProvisioningEnv } from './env';

export const createHandler = (deps: Pick<BulkProvisioningDeps, 'objects' | 'bulk'>) => (input: { taskId: string }) =>
  planProvisioning(deps, input);

export const handler = lambdaBundle(ProvisioningEnv, async (env) => {
  const [{ awsProvisioningDeps }, { defaultClients }] = await Promise.all([
    import('../adapters/aws/provisioning-deps'),
    import('../adapters/aws/bulk-deps'),
  ]);
  return createHandler(awsProvisioningDeps(env, defaultClients()));
});
