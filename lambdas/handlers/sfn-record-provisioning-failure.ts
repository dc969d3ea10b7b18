import { recordProvisioningFailure, type BulkProvisioningDeps } from '../core/provisioning/bulk';
import { awsProvisioningDeps } from '../adapters/aws/provisioning-deps';
import { defaultClients } from '../adapters/aws/bulk-deps';
import { lambdaBundle } from './bundle';
import { ProvisioningEnv } from './env';

/** The bulk-provisioning workflow's failure path: the task is failed with its reason. */
export const createHandler =
  (deps: Pick<BulkProvisioningDeps, 'objects' | 'clock'>) => (input: { taskId: string; error?: unknown }) =>
    recordProvisioningFailure(deps, input);

export const handler = lambdaBundle(ProvisioningEnv, (env) =>
  createHandler(awsProvisioningDeps(env, defaultClients())),
);
