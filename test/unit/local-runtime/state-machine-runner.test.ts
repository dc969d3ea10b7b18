import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
  type DynamoDBClient,
  type UpdateItemCommandInput,
} from '@aws-sdk/client-dynamodb';
import { createLocalDynamoDbClient, ensureTable, startDynamoDb } from '../../../local/runtime/dynamodb-server';
import {
  ExecutionAlreadyExistsError,
  ExecutionFailedError,
  InvalidExecutionNameError,
  StateMachineDefinitionError,
  StateMachineRunner,
  StateMachineRunnerClosedError,
  type ExecutionEvent,
  type StateMachineRunnerOptions,
  toJson,
} from '../../../local/runtime/state-machine-runner';
import type { LocalServer } from '../../../local/runtime/types';

class TransientChunkError extends Error {
  override readonly name = 'TransientChunkError';
}
class CsrRejectedError extends Error {
  override readonly name = 'CsrRejectedError';
}
class TaskNotFoundError extends Error {
  override readonly name = 'TaskNotFoundError';
}

const FN = (name: string) => `arn:aws:lambda:local:000000000000:function:${name}`;
const TASK_TABLE = 'certflow-tasks';

/** A small bulk-issuance flow: plan → Distributed Map over chunks → DynamoDB update → EventBridge event → Succeed. */
const definition = {
  Comment: 'runner test flow',
  StartAt: 'PlanChunks',
  States: {
    PlanChunks: {
      Type: 'Task',
      Resource: 'arn:aws:states:::lambda:invoke',
      Parameters: { FunctionName: '${PlanChunksFunctionArn}', Payload: { 'taskId.$': '$.taskId' } },
      ResultSelector: { 'taskId.$': '$.Payload.taskId', 'chunks.$': '$.Payload.chunks' },
      ResultPath: '$',
      Catch: [{ ErrorEquals: ['TaskNotFoundError'], ResultPath: '$.error', Next: 'RecordBatchFailure' }],
      Next: 'IssueCertificateChunks',
    },
    IssueCertificateChunks: {
      Type: 'Map',
      Label: 'IssueChunks',
      ItemsPath: '$.chunks',
      ItemSelector: { 'taskId.$': '$.taskId', 'index.$': '$$.Map.Item.Value' },
      MaxConcurrency: 2,
      ToleratedFailurePercentage: 0,
      ItemProcessor: {
        ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'EXPRESS' },
        StartAt: 'IssueChunk',
        States: {
          IssueChunk: {
            Type: 'Task',
            Resource: '${IssueChunkFunctionArn}',
            Retry: [{ ErrorEquals: ['TransientChunkError'], IntervalSeconds: 2, MaxAttempts: 3, BackoffRate: 2 }],
            Catch: [{ ErrorEquals: ['CsrRejectedError'], ResultPath: '$.error', Next: 'ChunkRejected' }],
            End: true,
          },
          ChunkRejected: {
            Type: 'Pass',
            Parameters: { 'index.$': '$.index', rejected: true, 'reason.$': '$.error.Error' },
            End: true,
          },
        },
      },
      ResultPath: '$.chunkResults',
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'RecordBatchFailure' }],
      Next: 'MarkTaskComplete',
    },
    MarkTaskComplete: {
      Type: 'Task',
      Resource: 'arn:aws:states:::dynamodb:updateItem',
      Parameters: {
        TableName: '${TaskTableName}',
        Key: { pk: { 'S.$': "States.Format('task#{}', $.taskId)" } },
        UpdateExpression: 'SET #status = :complete, chunksDone = :done',
        ConditionExpression: '#status = :inProgress',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: {
          ':complete': { S: 'complete' },
          ':inProgress': { S: 'in_progress' },
          ':done': { 'N.$': 'States.JsonToString(States.ArrayLength($.chunkResults))' },
        },
        ReturnValues: 'UPDATED_NEW',
      },
      ResultSelector: { 'status.$': '$.Attributes.status.S' },
      ResultPath: '$.update',
      Retry: [{ ErrorEquals: ['DynamoDB.ProvisionedThroughputExceededException'], MaxAttempts: 2 }],
      Catch: [
        {
          ErrorEquals: ['DynamoDB.ConditionalCheckFailedException'],
          ResultPath: '$.error',
          Next: 'RecordBatchFailure',
        },
      ],
      Next: 'EmitBatchCompleted',
    },
    EmitBatchCompleted: {
      Type: 'Task',
      Resource: 'arn:aws:states:::events:putEvents',
      Parameters: {
        Entries: [
          {
            EventBusName: '${EventBusName}',
            Source: 'certflow',
            DetailType: 'Batch Completed',
            Detail: { 'taskId.$': '$.taskId', 'chunks.$': 'States.ArrayLength($.chunkResults)' },
          },
        ],
      },
      ResultPath: '$.emitted',
      Next: 'BatchComplete',
    },
    BatchComplete: { Type: 'Succeed' },
    RecordBatchFailure: {
      Type: 'Task',
      Resource: 'arn:aws:states:::lambda:invoke',
      Parameters: {
        FunctionName: '${RecordFailureFunctionArn}',
        Payload: { 'taskId.$': '$.taskId', 'error.$': '$.error' },
      },
      ResultPath: null,
      Next: 'BatchFailed',
    },
    BatchFailed: { Type: 'Fail', Error: 'BatchFailed', Cause: 'The batch failed' },
  },
};

const substitutions = {
  PlanChunksFunctionArn: FN('certflow-plan-chunks'),
  IssueChunkFunctionArn: FN('certflow-issue-chunk'),
  RecordFailureFunctionArn: FN('certflow-record-failure'),
  TaskTableName: TASK_TABLE,
  EventBusName: 'certflow-local',
};

describe('StateMachineRunner', () => {
  let dynamo: LocalServer;
  let ddb: DynamoDBClient;

  beforeAll(async () => {
    dynamo = await startDynamoDb({ createTableMs: 0 });
    ddb = createLocalDynamoDbClient(dynamo.endpoint);
    await ensureTable(ddb, { tableName: TASK_TABLE, partitionKey: { name: 'pk', type: 'S' } });
  });
  afterAll(async () => {
    ddb.destroy();
    await dynamo.close();
  });

  /** The functions of the flow, recording what they saw. */
  function fakes() {
    const calls = { plan: [] as unknown[], issue: [] as unknown[], failures: [] as unknown[], events: [] as unknown[] };
    const attempts = new Map<number, number>();
    let inFlight = 0;
    let maxInFlight = 0;
    const resources: StateMachineRunnerOptions['resources'] = {
      [FN('certflow-plan-chunks')]: async (event) => {
        calls.plan.push(event);
        const { taskId } = event as { taskId: string };
        if (taskId === 'missing') throw new TaskNotFoundError(`task ${taskId} does not exist`);
        return { taskId, chunks: [0, 1, 2, 3, 4], ignored: undefined };
      },
      [FN('certflow-issue-chunk')]: async (event) => {
        calls.issue.push(event);
        const { index } = event as { taskId: string; index: number };
        attempts.set(index, (attempts.get(index) ?? 0) + 1);
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        try {
          await new Promise((resolve) => setTimeout(resolve, 25));
          if (index === 1 && attempts.get(index) === 1) throw new TransientChunkError('S3 throttled, try again');
          if (index === 3) throw new CsrRejectedError('chunk 3 has a weak key');
          return { index, issued: 10 };
        } finally {
          inFlight -= 1;
        }
      },
      'certflow-record-failure': async (event) => {
        calls.failures.push(event);
        return { recorded: true };
      },
    };
    const sdkIntegrations: StateMachineRunnerOptions['sdkIntegrations'] = {
      'dynamodb:updateItem': (params) => ddb.send(new UpdateItemCommand(params as unknown as UpdateItemCommandInput)),
      'arn:aws:states:::events:putEvents': async (params) => {
        calls.events.push(params);
        return { FailedEntryCount: 0, Entries: [{ EventId: `event-${calls.events.length}` }] };
      },
    };
    return { calls, attempts, resources, sdkIntegrations, maxInFlight: () => maxInFlight };
  }

  function runner(f: ReturnType<typeof fakes>, extra: Partial<StateMachineRunnerOptions> = {}) {
    return new StateMachineRunner({
      definition,
      substitutions,
      resources: f.resources,
      sdkIntegrations: f.sdkIntegrations,
      stateMachineName: 'bulk-issuance',
      retryIntervalMs: 0,
      ...extra,
    });
  }

  async function putTask(taskId: string, status: string) {
    await ddb.send(
      new PutItemCommand({ TableName: TASK_TABLE, Item: { pk: { S: `task#${taskId}` }, status: { S: status } } }),
    );
  }

  const summary = (events: ExecutionEvent[]) =>
    events.map((e) => [e.type, e.stateName ?? e.parentStateName ?? '', e.mapIndex ?? ''].join(':'));

  it('runs the flow: Distributed Map with MaxConcurrency, retry, inner catch, DynamoDB update, event', async () => {
    await putTask('t-ok', 'in_progress');
    const f = fakes();
    const sfn = runner(f);
    const execution = sfn.start('t-ok', { taskId: 't-ok' });
    expect(execution).toMatchObject({
      executionName: 't-ok',
      executionArn: 'arn:aws:states:local:000000000000:execution:bulk-issuance:t-ok',
      started: true,
    });
    expect(sfn.describe('t-ok')?.status).toBe('RUNNING');

    const output = await execution.result;
    expect(output).toEqual({
      taskId: 't-ok',
      chunks: [0, 1, 2, 3, 4],
      chunkResults: [
        { index: 0, issued: 10 },
        { index: 1, issued: 10 },
        { index: 2, issued: 10 },
        { index: 3, rejected: true, reason: 'CsrRejectedError' },
        { index: 4, issued: 10 },
      ],
      update: { status: 'complete' },
      emitted: { FailedEntryCount: 0, Entries: [{ EventId: 'event-1' }] },
    });

    // lambda:invoke got the Payload; the Lambda-ARN task got the ItemSelector output ($$.Map.Item.Value)
    expect(f.calls.plan).toEqual([{ taskId: 't-ok' }]);
    expect(f.calls.issue).toContainEqual({ taskId: 't-ok', index: 4 });
    // MaxConcurrency 2: iterations ran two at a time, never more
    expect(f.maxInFlight()).toBe(2);
    // chunk 1 failed once with TransientChunkError and was retried; chunk 3 was caught, never retried
    expect(Object.fromEntries(f.attempts)).toEqual({ 0: 1, 1: 2, 2: 1, 3: 1, 4: 1 });

    // the DynamoDB integration really updated the item
    const item = await ddb.send(new GetItemCommand({ TableName: TASK_TABLE, Key: { pk: { S: 'task#t-ok' } } }));
    expect(item.Item).toMatchObject({ status: { S: 'complete' }, chunksDone: { N: '5' } });

    // events:putEvents: Detail as a JSON string, execution and state machine ARNs appended to Resources
    expect(f.calls.events).toEqual([
      {
        Entries: [
          {
            EventBusName: 'certflow-local',
            Source: 'certflow',
            DetailType: 'Batch Completed',
            Detail: JSON.stringify({ taskId: 't-ok', chunks: 5 }),
            Resources: [execution.executionArn, 'arn:aws:states:local:000000000000:stateMachine:bulk-issuance'],
          },
        ],
      },
    ]);

    const record = sfn.describe('t-ok')!;
    expect(record).toMatchObject({ status: 'SUCCEEDED', output, input: { taskId: 't-ok' } });
    expect(record.stopDate!.getTime()).toBeGreaterThanOrEqual(record.startDate.getTime());
    expect(record.error).toBeUndefined();

    // the history, state by state
    const history = summary(record.events);
    expect(history.slice(0, 4)).toEqual([
      'ExecutionStarted::',
      'StateEntered:PlanChunks:',
      'StateExited:PlanChunks:',
      'StateEntered:IssueCertificateChunks:',
    ]);
    expect(history.slice(-8)).toEqual([
      'StateExited:IssueCertificateChunks:',
      'StateEntered:MarkTaskComplete:',
      'StateExited:MarkTaskComplete:',
      'StateEntered:EmitBatchCompleted:',
      'StateExited:EmitBatchCompleted:',
      'StateEntered:BatchComplete:',
      'StateExited:BatchComplete:',
      'ExecutionSucceeded::',
    ]);
    expect(history.filter((h) => h.startsWith('MapIterationStarted'))).toHaveLength(5);
    expect(history.filter((h) => h.startsWith('MapIterationSucceeded'))).toHaveLength(5);
    expect(record.events.filter((e) => e.type === 'StateFailed')).toEqual([
      expect.objectContaining({ stateName: 'IssueChunk', mapIndex: 1, error: 'TransientChunkError' }),
      expect.objectContaining({ stateName: 'IssueChunk', mapIndex: 3, error: 'CsrRejectedError' }),
    ]);
    expect(record.events.find((e) => e.type === 'StateRetried')).toMatchObject({
      stateName: 'IssueChunk',
      mapIndex: 1,
      retry: { errorEquals: ['TransientChunkError'], attempt: 1 },
    });
    expect(record.events.find((e) => e.type === 'StateCaught')).toMatchObject({
      stateName: 'IssueChunk',
      mapIndex: 3,
      caught: { errorEquals: ['CsrRejectedError'], next: 'ChunkRejected' },
    });
    expect(record.events.find((e) => e.type === 'StateExited' && e.stateName === 'PlanChunks')).toMatchObject({
      input: { taskId: 't-ok' },
      output: { taskId: 't-ok', chunks: [0, 1, 2, 3, 4] },
    });
    expect(record.events.map((e) => e.id)).toEqual(record.events.map((_, i) => i + 1));
  });

  it('does not run the same execution name twice', async () => {
    await putTask('t-once', 'in_progress');
    const f = fakes();
    const sfn = runner(f);
    const first = sfn.start('t-once', { taskId: 't-once' });
    const again = sfn.start('t-once', { taskId: 't-once' });
    expect(again.started).toBe(false);
    expect(again.result).toBe(first.result);
    expect(again.events).toBe(first.events);
    await first.result;
    const afterSuccess = sfn.start('t-once', { taskId: 't-once' });
    expect(afterSuccess.started).toBe(false);
    await expect(afterSuccess.result).resolves.toEqual(await first.result);
    expect(f.calls.plan).toHaveLength(1);
    expect(f.calls.events).toHaveLength(1);
    // Step Functions refuses the same name with another input
    expect(() => sfn.start('t-once', { taskId: 'other' })).toThrow(ExecutionAlreadyExistsError);
    expect(sfn.list().map((r) => r.name)).toEqual(['t-once']);
  });

  it('catches a DynamoDB condition failure by its Step Functions name and ends in the Fail state', async () => {
    await putTask('t-done', 'complete');
    const f = fakes();
    const sfn = runner(f);
    const execution = sfn.start('t-done', { taskId: 't-done' });
    const failure = await execution.result.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(failure).toBeInstanceOf(ExecutionFailedError);
    expect(failure).toMatchObject({ status: 'FAILED', error: 'BatchFailed', cause: 'The batch failed' });
    expect(f.calls.failures).toEqual([
      {
        taskId: 't-done',
        error: { Error: 'DynamoDB.ConditionalCheckFailedException', Cause: expect.any(String) },
      },
    ]);
    expect(f.calls.events).toEqual([]);
    const record = sfn.describe('t-done')!;
    expect(record).toMatchObject({ status: 'FAILED', error: 'BatchFailed', cause: 'The batch failed' });
    const history = summary(record.events);
    const from = history.indexOf('StateEntered:MarkTaskComplete:');
    expect(history.slice(from)).toEqual([
      'StateEntered:MarkTaskComplete:',
      'StateFailed:MarkTaskComplete:',
      'StateCaught:MarkTaskComplete:',
      'StateExited:MarkTaskComplete:',
      'StateEntered:RecordBatchFailure:',
      'StateExited:RecordBatchFailure:',
      'StateEntered:BatchFailed:',
      'StateFailed:BatchFailed:',
      'ExecutionFailed::',
    ]);
    expect(record.events.at(-1)).toMatchObject({ type: 'ExecutionFailed', error: 'BatchFailed' });
    // a failed name cannot be started again (Step Functions: ExecutionAlreadyExists)
    expect(() => sfn.start('t-done', { taskId: 't-done' })).toThrow(ExecutionAlreadyExistsError);
  });

  it('catches a Lambda error by name, with the Lambda error payload as Cause', async () => {
    const f = fakes();
    const sfn = runner(f);
    await expect(sfn.start('t-missing', { taskId: 'missing' }).result).rejects.toMatchObject({ error: 'BatchFailed' });
    expect(f.calls.issue).toEqual([]);
    const [recorded] = f.calls.failures as { error: { Error: string; Cause: string } }[];
    expect(recorded?.error.Error).toBe('TaskNotFoundError');
    expect(JSON.parse(recorded!.error.Cause)).toMatchObject({
      errorType: 'TaskNotFoundError',
      errorMessage: 'task missing does not exist',
      trace: expect.arrayContaining([expect.stringContaining('TaskNotFoundError: task missing does not exist')]),
    });
  });

  it('fails the execution with the error name when nothing catches it', async () => {
    const sfn = new StateMachineRunner({
      definition: {
        StartAt: 'Work',
        States: { Work: { Type: 'Task', Resource: FN('work'), End: true } },
      },
      resources: {
        [FN('work')]: async () => {
          throw new TransientChunkError('still throttled');
        },
      },
    });
    const failure = (await sfn.start('x', {}).result.catch((e: unknown) => e)) as ExecutionFailedError;
    expect(failure).toBeInstanceOf(ExecutionFailedError);
    expect(failure.error).toBe('TransientChunkError');
    expect(JSON.parse(failure.cause!)).toMatchObject({
      errorType: 'TransientChunkError',
      errorMessage: 'still throttled',
    });
    expect(sfn.describe('x')).toMatchObject({ status: 'FAILED', error: 'TransientChunkError' });
  });

  it('names thrown non-Error values Error, and matches States.TaskFailed', async () => {
    const sfn = new StateMachineRunner({
      definition: {
        StartAt: 'Work',
        States: {
          Work: {
            Type: 'Task',
            Resource: FN('work'),
            Catch: [{ ErrorEquals: ['States.TaskFailed'], ResultPath: '$.caught', Next: 'Done' }],
            End: true,
          },
          Done: { Type: 'Pass', End: true },
        },
      },
      resources: {
        work: async () => {
          throw 'a string';
        },
      },
    });
    const output = (await sfn.start('x', { a: 1 }).result) as { caught: { Error: string; Cause: string } };
    expect(output.caught.Error).toBe('Error');
    expect(JSON.parse(output.caught.Cause)).toMatchObject({ errorType: 'Error', errorMessage: 'a string' });
  });

  describe('Retry', () => {
    const retrying = (retryIntervalMs?: number) => {
      let calls = 0;
      const sfn = new StateMachineRunner({
        definition: {
          StartAt: 'Work',
          States: {
            Work: {
              Type: 'Task',
              Resource: FN('work'),
              Retry: [{ ErrorEquals: ['TransientChunkError'], IntervalSeconds: 1, MaxAttempts: 1, BackoffRate: 2 }],
              End: true,
            },
          },
        },
        resources: {
          [FN('work')]: async () => {
            calls += 1;
            if (calls === 1) throw new TransientChunkError('once');
            return { calls };
          },
        },
        ...(retryIntervalMs === undefined ? {} : { retryIntervalMs }),
      });
      return sfn;
    };

    it('waits IntervalSeconds before retrying', async () => {
      const started = Date.now();
      await expect(retrying().start('x', {}).result).resolves.toEqual({ calls: 2 });
      expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    });

    it('retries at once with retryIntervalMs: 0', async () => {
      const started = Date.now();
      await expect(retrying(0).start('x', {}).result).resolves.toEqual({ calls: 2 });
      // well under the 1 s the definition asks for (a loaded CI machine took 831 ms once against a 500 ms bound)
      expect(Date.now() - started).toBeLessThan(900);
    });
  });

  it('stops a running execution (ABORTED) and times one out (TIMED_OUT)', async () => {
    const sfn = new StateMachineRunner({
      definition: {
        StartAt: 'Pause',
        TimeoutSeconds: 1,
        States: {
          Pause: { Type: 'Wait', SecondsPath: '$.seconds', Next: 'Done' },
          Done: { Type: 'Succeed' },
        },
      },
    });
    const stopped = sfn.start('stopped', { seconds: 30 });
    await sfn.stop('stopped', { error: 'Cancelled', cause: 'by the test' });
    await expect(stopped.result).rejects.toMatchObject({ status: 'ABORTED', error: 'Cancelled' });
    expect(sfn.describe('stopped')?.status).toBe('ABORTED');

    const timedOut = sfn.start('slow', { seconds: 30 });
    await expect(timedOut.result).rejects.toMatchObject({ status: 'TIMED_OUT', error: 'States.Timeout' });
    expect(sfn.list({ status: 'TIMED_OUT' }).map((r) => r.name)).toEqual(['slow']);
  });

  describe('a Task whose function never returns', () => {
    /** a Map over chunks whose chunk 1 never returns, caught into RecordFailure; chunk 2 fails when told to */
    const stalling = (failChunk2: boolean) => {
      const calls = { chunks: [] as number[], recorded: 0, after: 0 };
      const sfn = new StateMachineRunner({
        definition: {
          StartAt: 'IssueChunks',
          States: {
            IssueChunks: {
              Type: 'Map',
              ItemsPath: '$.chunks',
              ItemProcessor: {
                StartAt: 'IssueChunk',
                States: {
                  IssueChunk: {
                    Type: 'Task',
                    Resource: FN('issue'),
                    Retry: [{ ErrorEquals: ['States.ALL'], MaxAttempts: 2 }],
                    End: true,
                  },
                },
              },
              Catch: [{ ErrorEquals: ['States.ALL'], Next: 'RecordFailure' }],
              Next: 'After',
            },
            RecordFailure: { Type: 'Task', Resource: FN('record'), End: true },
            After: { Type: 'Task', Resource: FN('after'), End: true },
          },
        },
        resources: {
          [FN('issue')]: async (event) => {
            const index = event as number;
            calls.chunks.push(index);
            if (index === 1) return new Promise(() => undefined);
            if (index === 2 && failChunk2) throw new CsrRejectedError('chunk 2 has a weak key');
            return index;
          },
          [FN('record')]: async () => ++calls.recorded,
          [FN('after')]: async () => ++calls.after,
        },
        retryIntervalMs: 0,
      });
      return { sfn, calls };
    };
    // the engine races each Task against a timer of its TimeoutSeconds (900 s here) that only the Task settling
    // clears: a timer left behind keeps the process alive that long
    let taskTimers: Set<unknown>;
    beforeEach(() => {
      taskTimers = new Set();
      const { setTimeout: set, clearTimeout: clear } = globalThis;
      jest.spyOn(globalThis, 'setTimeout').mockImplementation(((fn: () => void, ms?: number) => {
        const timer = set(fn, ms);
        if (ms === 900_000) taskTimers.add(timer);
        return timer;
      }) as typeof setTimeout);
      jest.spyOn(globalThis, 'clearTimeout').mockImplementation((timer) => {
        taskTimers.delete(timer);
        clear(timer);
      });
    });
    afterEach(() => jest.restoreAllMocks());
    const until = async (ready: () => boolean) => {
      while (!ready()) await new Promise((resolve) => setImmediate(resolve));
    };

    it('close() stops the execution at once (ABORTED), runs no Catch, leaves no timer and refuses new starts', async () => {
      const { sfn, calls } = stalling(false);
      const started = sfn.start('stalled', { chunks: [0, 1, 2] });
      await until(() => calls.chunks.length === 3);
      expect(taskTimers.size).toBe(1);

      const closing = Date.now();
      await sfn.close({ error: 'RuntimeStopped', cause: 'the local runtime stopped' });
      expect(Date.now() - closing).toBeLessThan(1000);
      await expect(started.result).rejects.toMatchObject({ status: 'ABORTED', error: 'RuntimeStopped' });
      // the abandoned Task fails at once: its retries call no function, its Catch runs nothing
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(calls).toEqual({ chunks: [0, 1, 2], recorded: 0, after: 0 });
      expect(taskTimers.size).toBe(0);
      expect(sfn.describe('stalled')).toMatchObject({ status: 'ABORTED', cause: 'the local runtime stopped' });
      expect(() => sfn.start('later', { chunks: [0] })).toThrow(StateMachineRunnerClosedError);
    });

    it('is abandoned when its execution ends otherwise: the iteration that failed is caught, no timer is left', async () => {
      const { sfn, calls } = stalling(true);
      await expect(sfn.start('failing', { chunks: [0, 1, 2] }).result).resolves.toBe(1);
      expect(calls).toMatchObject({ recorded: 1, after: 0 });
      expect(calls.chunks.sort()).toEqual([0, 1, 2, 2, 2]);
      expect(taskTimers.size).toBe(0);
    });
  });

  it('gives Tasks without TimeoutSeconds 900 s instead of the engine default of 60 s', () => {
    const sfn = runner(fakes());
    const states = sfn.definition.States as Record<string, { TimeoutSeconds?: number }>;
    expect(states.PlanChunks?.TimeoutSeconds).toBe(900);
  });

  describe('service integrations', () => {
    const single = (resource: string, sdkIntegrations: StateMachineRunnerOptions['sdkIntegrations']) =>
      new StateMachineRunner({
        definition: {
          StartAt: 'Call',
          States: {
            Call: {
              Type: 'Task',
              Resource: resource,
              Parameters: { 'Entries.$': '$.entries', TableName: 't' },
              Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Failed' }],
              End: true,
            },
            Failed: { Type: 'Pass', End: true },
          },
        },
        sdkIntegrations,
      });

    it('names AWS SDK integration errors <Service>.<Name>Exception and drops $metadata from outputs', async () => {
      const missing = Object.assign(new Error('no table'), { name: 'ResourceNotFound' });
      const failing = single('arn:aws:states:::aws-sdk:dynamodb:query', {
        'aws-sdk:dynamodb:query': () => Promise.reject(missing),
      });
      await expect(failing.start('x', { entries: [] }).result).resolves.toEqual({
        Error: 'DynamoDb.ResourceNotFoundException',
        Cause: 'no table',
      });
      const ok = single('arn:aws:states:::aws-sdk:dynamodb:query', {
        'aws-sdk:dynamodb:query': async () => ({ $metadata: { httpStatusCode: 200 }, Items: [], Count: 0 }),
      });
      await expect(ok.start('x', { entries: [] }).result).resolves.toEqual({ Items: [], Count: 0 });
    });

    it('fails events:putEvents with EventBridge.FailedEntry when an entry failed', async () => {
      const sfn = single('arn:aws:states:::events:putEvents', {
        'events:putEvents': async () => ({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'Throttled' }] }),
      });
      const output = (await sfn.start('x', { entries: [{ Source: 'certflow', Detail: {} }] }).result) as {
        Error: string;
      };
      expect(output.Error).toBe('EventBridge.FailedEntry');
    });
  });

  it('forgets the oldest finished executions beyond keepFinished, never a running one', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const sfn = new StateMachineRunner({
      definition: {
        StartAt: 'T',
        States: { T: { Type: 'Task', Resource: 'arn:aws:lambda:us-east-1:000000000000:function:f', End: true } },
      },
      resources: {
        'arn:aws:lambda:us-east-1:000000000000:function:f': async (input) => {
          if ((input as { wait?: boolean }).wait) await gate;
          return input;
        },
      },
      keepFinished: 2,
    });
    const slow = sfn.start('slow', { wait: true });
    for (const name of ['a', 'b', 'c']) await sfn.start(name, { name }).result;
    const names = () =>
      sfn
        .list()
        .map((r) => r.name)
        .sort();
    expect(names()).toEqual(['b', 'c', 'slow']);
    release();
    await slow.result;
    expect(names()).toEqual(['c', 'slow']);
    expect(sfn.describe('a')).toBeUndefined();
  });

  it('keeps states without copies of their data when stateData is false, and the execution input and output', async () => {
    const sfn = new StateMachineRunner({
      definition: {
        StartAt: 'T',
        States: { T: { Type: 'Task', Resource: 'arn:aws:lambda:us-east-1:000000000000:function:f', End: true } },
      },
      resources: { 'arn:aws:lambda:us-east-1:000000000000:function:f': async (input) => ({ seen: input }) },
      stateData: false,
    });
    await expect(sfn.start('x', { big: [1, 2, 3] }).result).resolves.toEqual({ seen: { big: [1, 2, 3] } });
    const record = sfn.describe('x')!;
    expect(record.input).toEqual({ big: [1, 2, 3] });
    expect(record.status).toBe('SUCCEEDED');
    const states = record.events.filter((e) => e.stateName === 'T');
    expect(states.map((e) => e.type)).toEqual(['StateEntered', 'StateExited']);
    expect(states.every((e) => e.input === undefined && e.output === undefined)).toBe(true);
    expect(record.events.find((e) => e.type === 'ExecutionSucceeded')?.output).toEqual({ seen: { big: [1, 2, 3] } });
  });

  describe('engine workarounds', () => {
    it('drops "ResultPath": "$", which the engine would store under a key named "$"', async () => {
      const sfn = new StateMachineRunner({
        definition: {
          StartAt: 'P',
          States: { P: { Type: 'Pass', Parameters: { 'v.$': '$.a' }, ResultPath: '$', End: true } },
        },
      });
      expect((sfn.definition.States as Record<string, object>).P).not.toHaveProperty('ResultPath');
      await expect(sfn.start('x', { a: 1 }).result).resolves.toEqual({ v: 1 });
    });

    it('accepts a definition built in another realm (structuredClone under Jest)', async () => {
      const foreign = structuredClone({
        StartAt: 'P',
        States: { P: { Type: 'Pass', Parameters: { nested: { 'v.$': '$.a' } }, End: true } },
      });
      const sfn = new StateMachineRunner({ definition: foreign });
      await expect(sfn.start('x', { a: 1 }).result).resolves.toEqual({ nested: { v: 1 } });
    });
  });

  describe('definition checks', () => {
    it('fails loudly on a placeholder without a substitution', () => {
      const f = fakes();
      const rest: Record<string, string> = { ...substitutions };
      delete rest.EventBusName;
      expect(() => runner(f, { substitutions: rest })).toThrow(StateMachineDefinitionError);
      expect(() => runner(f, { substitutions: rest })).toThrow(
        'placeholders without a substitution:\n- ${EventBusName}',
      );
    });

    it('keeps ${!Name} as the literal ${Name}, as Fn::Sub does', () => {
      const sfn = new StateMachineRunner({
        definition: { StartAt: 'P', States: { P: { Type: 'Pass', Result: 'cost: ${!Price}', End: true } } },
      });
      expect((sfn.definition.States as Record<string, { Result: string }>).P?.Result).toBe('cost: ${Price}');
    });

    it('fails loudly on a Task resource without a local function', () => {
      const f = fakes();
      const integrations = { ...f.sdkIntegrations };
      delete integrations['dynamodb:updateItem'];
      expect(() => runner(f, { sdkIntegrations: integrations })).toThrow(
        'MarkTaskComplete: no local integration for arn:aws:states:::dynamodb:updateItem',
      );
      expect(() => runner(f, { resources: {} })).toThrow(
        `PlanChunks: no local function for FunctionName ${FN('certflow-plan-chunks')}`,
      );
    });

    it.each([
      [
        'ItemReader',
        { ItemReader: { Resource: 'arn:aws:states:::s3:getObject', Parameters: { Bucket: 'b', Key: 'k' } } },
      ],
      ['ItemBatcher', { ItemBatcher: { MaxItemsPerBatch: 10 } }],
      ['ResultWriter', { ResultWriter: { Resource: 'arn:aws:states:::s3:putObject', Parameters: { Bucket: 'b' } } }],
      ['ToleratedFailurePercentage', { ToleratedFailurePercentage: 5 }],
      ['Assign', { Assign: { 'count.$': '$.n' } }],
    ])('error/refuses a Map with %s, which the engine would ignore', (field, extra) => {
      const mapped = structuredClone(definition);
      Object.assign(mapped.States.IssueCertificateChunks, extra);
      expect(() => runner(fakes(), { definition: mapped })).toThrow(`IssueCertificateChunks: ${field}`);
    });

    it('error/refuses JSONata', () => {
      expect(() => runner(fakes(), { definition: { ...definition, QueryLanguage: 'JSONata' } })).toThrow('JSONata');
    });

    it('ok/removes ResultWriter from a Map whose output is discarded', () => {
      const mapped = structuredClone(definition) as typeof definition & { States: { IssueCertificateChunks: object } };
      Object.assign(mapped.States.IssueCertificateChunks, {
        ResultWriter: { Resource: 'arn:aws:states:::s3:putObject', Parameters: { Bucket: 'b', Prefix: 'p' } },
        ResultPath: null,
      });
      const sfn = runner(fakes(), { definition: mapped });
      const map = (sfn.definition.States as Record<string, object>).IssueCertificateChunks!;
      expect(map).not.toHaveProperty('ResultWriter');
      // what the engine accepts stays as written
      expect(map).toMatchObject({
        Label: 'IssueChunks',
        ToleratedFailurePercentage: 0,
        ItemProcessor: { ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'EXPRESS' } },
      });
    });

    it('rejects invalid execution names', () => {
      const sfn = runner(fakes());
      expect(() => sfn.start('has space', {})).toThrow(InvalidExecutionNameError);
      expect(() => sfn.start('x'.repeat(81), {})).toThrow(InvalidExecutionNameError);
    });

    it('loads an .asl.json file and names the state machine after it', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'certflow-asl-'));
      try {
        const file = join(dir, 'bulk-issuance.asl.json');
        await writeFile(file, JSON.stringify(definition));
        const sfn = runner(fakes(), { definition: file, stateMachineName: undefined });
        expect(sfn.stateMachineArn).toBe('arn:aws:states:local:000000000000:stateMachine:bulk-issuance');
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });

  const nativeWithResolvers = process.versions.node.split('.').map(Number)[0]! >= 22;
  (nativeWithResolvers ? it.skip : it)('engine fact: without the polyfill every Task fails on Node 20', async () => {
    const script = `
      const { StateMachine } = require('aws-local-stepfunctions');
      const machine = new StateMachine({ StartAt: 'T', States: { T: { Type: 'Task', Resource: '${FN('t')}', End: true } } });
      machine.run({}, { overrides: { taskResourceLocalHandlers: { T: async () => 'ok' } } }).result
        .then((r) => console.log('ok', r), (e) => console.log('failed', e.cause && e.cause.name, e.message));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], { cwd: process.cwd() });
    expect(stdout.trim()).toBe(
      'failed TypeError Execution has failed with the following error: Promise.withResolvers is not a function',
    );
  });
});

describe("validate (the engine's own check of the definition)", () => {
  // a JSONPath the engine's validator refuses, in a definition this module's own checks accept
  const badPath = { StartAt: 'A', States: { A: { Type: 'Pass', InputPath: 'not a path', End: true } } };

  it('error/by default the engine validates the definition', () => {
    expect(() => new StateMachineRunner({ definition: badPath })).toThrow(StateMachineDefinitionError);
    expect(() => new StateMachineRunner({ definition: badPath })).toThrow(/InputPath|path/i);
  });

  it("ok/validate: false skips the engine's check, and this module's own checks still run", () => {
    expect(() => new StateMachineRunner({ definition: badPath, validate: false })).not.toThrow();
    const unfilled = { StartAt: 'A', States: { A: { Type: 'Task', Resource: '${Missing}', End: true } } };
    expect(() => new StateMachineRunner({ definition: unfilled, validate: false })).toThrow(
      StateMachineDefinitionError,
    );
  });
});

describe('statemachines/*.asl.json', () => {
  const dir = join(__dirname, '../../../statemachines');
  const files = readdirSync(dir).filter((f) => f.endsWith('.asl.json'));

  it.each(files)('ok/%s runs on the local engine as written', (file) => {
    const text = readFileSync(join(dir, file), 'utf8');
    const placeholders = [...new Set([...text.matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]!))];
    const substitutions = Object.fromEntries(placeholders.map((name) => [name, FN(name)]));
    const stub = async () => ({});
    const resources = Object.fromEntries(placeholders.map((name) => [FN(name), stub]));
    const integrations = [...new Set([...text.matchAll(/"arn:aws:states:::([^"]+)"/g)].map((m) => m[1]!))];
    const sdkIntegrations = Object.fromEntries(integrations.map((name) => [name, stub]));
    expect(
      () => new StateMachineRunner({ definition: join(dir, file), substitutions, resources, sdkIntegrations }),
    ).not.toThrow();
  });
});

describe('toJson (the copies of inputs and outputs)', () => {
  class Point {
    constructor(
      readonly x: number,
      readonly y?: number,
    ) {}
  }
  const cases: [string, unknown][] = [
    [
      'a 500-certificate event',
      { detail: { certificates: Array.from({ length: 500 }, (_, i) => ({ id: `c${i}`, n: i })) } },
    ],
    [
      'undefined, functions and symbols: dropped in objects, null in arrays',
      { a: undefined, f: () => 1, s: Symbol('s'), l: [undefined, () => 1, Symbol('t'), 2] },
    ],
    ['non-finite numbers become null', { n: NaN, i: Infinity, m: -Infinity, z: -0, l: [NaN] }],
    [
      'dates and toJSON',
      { d: new Date('2026-12-02T00:00:00Z'), t: { toJSON: () => ({ seen: true }) }, l: [new Date(0)] },
    ],
    [
      'class instances, Maps, Sets, boxed values, Buffers',
      {
        p: new Point(1),
        m: new Map([[1, 2]]),
        s: new Set([1]),
        b: Object(true),
        str: Object('x'),
        buf: Buffer.from('ab'),
      },
    ],
    ['a __proto__ key stays a plain property', JSON.parse('{"__proto__":{"polluted":true},"ok":1}')],
    ['objects without a prototype', Object.assign(Object.create(null) as object, { a: 1, b: [null, { c: 'd' }] })],
    ['top-level scalars', 'text'],
    ['null', null],
    ['nested arrays', [[1, [2, [3, []]]], {}]],
  ];
  it.each(cases)('copies %s as JSON.parse(JSON.stringify(value)) does', (_, value) => {
    const copy = toJson(value);
    expect(copy).toStrictEqual(JSON.parse(JSON.stringify(value)));
    expect(JSON.stringify(copy)).toBe(JSON.stringify(value));
    expect(({} as { polluted?: boolean }).polluted).toBeUndefined();
  });

  it('gives null for undefined, refuses BigInt as JSON does, and shares nothing with its input', () => {
    expect(toJson(undefined)).toBeNull();
    expect(() => toJson({ n: 1n })).toThrow(TypeError);
    const input = { a: { b: [1, { c: 2 }] } };
    const copy = toJson(input) as typeof input;
    copy.a.b.push(3);
    (copy.a.b[1] as { c: number }).c = 9;
    expect(input).toEqual({ a: { b: [1, { c: 2 }] } });
  });
});
