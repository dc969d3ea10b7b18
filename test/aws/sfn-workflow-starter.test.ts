import 'aws-sdk-client-mock-jest';
import {
  ExecutionAlreadyExists,
  SFNClient,
  StartExecutionCommand,
  StateMachineDoesNotExist,
} from '@aws-sdk/client-sfn';
import { SfnWorkflowStarter } from '../../lambdas/adapters/aws/sfn-workflow-starter';
import { cmd, mockSdk } from './sdk-mock';

const ARN = 'arn:aws:states:eu-west-1:111122223333:stateMachine:certflow-bulk-issuance';
const sfnMock = mockSdk(SFNClient);
const starter = new SfnWorkflowStarter(new SFNClient({ region: 'eu-west-1' }), { 'bulk-issuance': ARN });

beforeEach(() => sfnMock.reset());

describe('SfnWorkflowStarter', () => {
  it('starts the workflow state machine with the name and the input as JSON', async () => {
    sfnMock.on(cmd(StartExecutionCommand)).resolves({ executionArn: `${ARN}:t1`, startDate: new Date() });
    await starter.start('bulk-issuance', 'task-0f3a', { taskId: 'task-0f3a', quantity: 250 });
    expect(sfnMock).toHaveReceivedCommandTimes(cmd(StartExecutionCommand), 1);
    expect(sfnMock).toHaveReceivedCommandWith(cmd(StartExecutionCommand), {
      stateMachineArn: ARN,
      name: 'task-0f3a',
      input: '{"taskId":"task-0f3a","quantity":250}',
    });
  });

  it('treats ExecutionAlreadyExists as started (idempotent start)', async () => {
    sfnMock
      .on(cmd(StartExecutionCommand))
      .rejects(new ExecutionAlreadyExists({ message: 'Execution Already Exists', $metadata: {} }));
    await expect(starter.start('bulk-issuance', 'task-0f3a', {})).resolves.toBeUndefined();
  });

  it('lets other errors through', async () => {
    sfnMock
      .on(cmd(StartExecutionCommand))
      .rejects(new StateMachineDoesNotExist({ message: 'State Machine Does Not Exist', $metadata: {} }));
    await expect(starter.start('bulk-issuance', 'task-1', {})).rejects.toMatchObject({
      name: 'StateMachineDoesNotExist',
    });
  });

  it.each(['rotation', 'toString', '__proto__'])('refuses the unknown workflow %s', async (workflow) => {
    await expect(starter.start(workflow, 'task-1', {})).rejects.toThrow(/unknown workflow/);
    expect(sfnMock.calls()).toHaveLength(0);
  });

  it.each([
    ['error/empty', ''],
    ['error/too long', 'x'.repeat(81)],
    ['error/whitespace', 'task 1'],
    ['error/slash', 'task/1'],
  ])('%s execution name is refused', async (_label, name) => {
    await expect(starter.start('bulk-issuance', name, {})).rejects.toMatchObject({ code: 'INVALID_EXECUTION_NAME' });
    expect(sfnMock.calls()).toHaveLength(0);
  });
});
