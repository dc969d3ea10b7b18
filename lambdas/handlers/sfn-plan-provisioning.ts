import { planProvisioning, type BulkProvisioningDeps } from '../core/provisioning/bulk';
import { awsProvisioningDeps } from '../adapters/aws/provisioning-deps';
import { defaultClients } from '../adapters/aws/bulk-deps';
import { lambdaBundle } from './bundle';
import { ProvisioningEnv } from './env';

export const createHandler = (deps: Pick<BulkProvisioningDeps, 'objects' | 'bulk'>) => (input: { taskId: string }) =>
  planProvisioning(deps, input);

export const handler = lambdaBundle(ProvisioningEnv, (env) =>
  createHandler(awsProvisioningDeps(env, defaultClients())),
);
