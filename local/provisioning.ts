/**
 * Device provisioning in the local runtime: the provisioning API handler and the bulk-provisioning workflow
 * (statemachines/provisioning.asl.json) with the same handlers as on AWS, on the local registry (dynalite), the
 * local object store and the local bus. Template CSRs are signed by the development issuing CA; ACM Private CA is
 * not reachable here (the acmpca extension answers 400 ACM_PCA_UNAVAILABLE).
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { caAliasesFromEnv } from '../lambdas/core/provisioning/cdf';
import {
  BULK_PROVISIONING_WORKFLOW,
  DEFAULT_BULK_PROVISIONING_CONFIG,
  getProvisioningTask,
  type BulkProvisioningConfig,
  type BulkProvisioningDeps,
} from '../lambdas/core/provisioning/bulk';
import type { ProvisioningDeps } from '../lambdas/core/provisioning/service';
import { createHandler as createProvisioningApi } from '../lambdas/handlers/api-provisioning';
import { createHandler as createFinish } from '../lambdas/handlers/sfn-finish-provisioning';
import { createHandler as createPlan } from '../lambdas/handlers/sfn-plan-provisioning';
import { createHandler as createProvisionChunk } from '../lambdas/handlers/sfn-provision-chunk';
import { createHandler as createRecordFailure } from '../lambdas/handlers/sfn-record-provisioning-failure';
import { PROVISIONING_ROUTES } from '../lambdas/handlers/routes';
import type { Mount } from './http-server';
import { StateMachineRunner } from './runtime/state-machine-runner';

const lambdaArn = (name: string): string => `arn:aws:lambda:us-east-1:000000000000:function:${name}`;

export interface LocalProvisioningOptions {
  bulk?: Partial<BulkProvisioningConfig>;
  retryIntervalMs?: number;
  /** false: the engine does not validate the ASL file again (StateMachineRunnerOptions.validate) */
  validate?: boolean;
  /** called before each chunk is provisioned; throwing fails that chunk (fault injection in tests) */
  beforeChunk?: (input: { taskId: string; index: number }) => void | Promise<void>;
}

export function localProvisioning(
  base: Omit<ProvisioningDeps, 'aliases' | 'defaultDaysExpiry'>,
  statemachinesDir: string,
  options: LocalProvisioningOptions = {},
): { deps: BulkProvisioningDeps; runner: StateMachineRunner; mount: Mount; resume: () => Promise<string[]> } {
  const deps: BulkProvisioningDeps = {
    aliases: caAliasesFromEnv(process.env),
    defaultDaysExpiry: 365,
    ...base,
    bulk: { ...DEFAULT_BULK_PROVISIONING_CONFIG, ...options.bulk },
    newId: randomUUID,
    workflows: {
      start: async (workflow, name, input) => {
        if (workflow !== BULK_PROVISIONING_WORKFLOW) throw new Error(`no local workflow ${workflow}`);
        runner.start(name, input).result.catch(() => undefined);
      },
    },
  };
  const chunk = createProvisionChunk(deps);
  const runner = new StateMachineRunner({
    definition: join(statemachinesDir, 'provisioning.asl.json'),
    stateMachineName: 'certflow-provisioning',
    substitutions: {
      PlanProvisioningFunctionArn: lambdaArn('certflow-plan-provisioning'),
      ProvisionChunkFunctionArn: lambdaArn('certflow-provision-chunk'),
      FinishProvisioningFunctionArn: lambdaArn('certflow-finish-provisioning'),
      RecordProvisioningFailureFunctionArn: lambdaArn('certflow-record-provisioning-failure'),
    },
    resources: {
      [lambdaArn('certflow-plan-provisioning')]: createPlan(deps) as (i: unknown) => Promise<unknown>,
      [lambdaArn('certflow-provision-chunk')]: async (input) => {
        await options.beforeChunk?.(input as { taskId: string; index: number });
        return chunk(input);
      },
      [lambdaArn('certflow-finish-provisioning')]: createFinish(deps) as (i: unknown) => Promise<unknown>,
      [lambdaArn('certflow-record-provisioning-failure')]: createRecordFailure(deps) as (
        i: unknown,
      ) => Promise<unknown>,
    },
    ...(options.retryIntervalMs !== undefined ? { retryIntervalMs: options.retryIntervalMs } : {}),
    ...(options.validate !== undefined ? { validate: options.validate } : {}),
  });
  const handler = createProvisioningApi(deps, { error: (message, ...extra) => console.error(message, ...extra) });
  // a task still pending or in progress lost its execution when the runtime stopped: run it again (chunks with
  // results are not provisioned again, so it resumes where it was)
  const resume = async (): Promise<string[]> => {
    const resumed: string[] = [];
    for (const key of await deps.objects.list('bulkprovisioning/')) {
      if (!key.endsWith('/task.json')) continue;
      const task = await getProvisioningTask(deps, key.split('/')[1]!);
      if (task.status !== 'pending' && task.status !== 'in_progress') continue;
      await deps.workflows.start(BULK_PROVISIONING_WORKFLOW, task.taskId, { taskId: task.taskId });
      resumed.push(task.taskId);
    }
    return resumed;
  };
  return { deps, runner, mount: { routes: PROVISIONING_ROUTES, handler }, resume };
}
