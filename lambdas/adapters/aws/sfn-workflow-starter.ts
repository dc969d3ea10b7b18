import { type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { ValidationError } from '../../core/errors';
import type { WorkflowStarter } from '../../core/ports';
import { isAwsError } from './sdk-errors';

/** Step Functions execution names: 1–80 characters, no whitespace, brackets, wildcards, punctuation or controls. */
// eslint-disable-next-line no-control-regex
const EXECUTION_NAME = /^[^\s<>{}[\]?*"#%\\^|~`$&,;:/\u0000-\u001f\u007f-\u009f]{1,80}$/;

/** WorkflowStarter on Step Functions: one state machine ARN per workflow name. */
export class SfnWorkflowStarter implements WorkflowStarter {
  constructor(
    private readonly client: SFNClient,
    private readonly stateMachines: Readonly<Record<string, string>>,
  ) {}

  /**
   * Starts `name` with `input` as JSON. A second start of the same name answers ExecutionAlreadyExists (standard
   * workflows, when the input differs or the first execution has ended): the workflow was started, so that is
   * success.
   */
  async start(workflow: string, name: string, input: Record<string, unknown>): Promise<void> {
    const stateMachineArn = Object.hasOwn(this.stateMachines, workflow) ? this.stateMachines[workflow] : undefined;
    if (!stateMachineArn) throw new Error(`unknown workflow "${workflow}": no state machine configured for it`);
    if (!EXECUTION_NAME.test(name)) {
      throw new ValidationError('INVALID_EXECUTION_NAME', `"${name}" is not a valid Step Functions execution name`);
    }
    try {
      await this.client.send(new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify(input) }));
    } catch (error) {
      if (isAwsError(error, 'ExecutionAlreadyExists')) return;
      throw error;
    }
  }
}
