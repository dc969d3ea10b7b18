/**
 * Runs the ASL files of `statemachines/` in-process with aws-local-stepfunctions 3, the way Step Functions runs
 * them on AWS: `${Name}` placeholders filled as CDK `definitionSubstitutions` do, Task resources dispatched to local
 * functions (Lambda ARNs, the optimized `lambda:invoke`, DynamoDB and EventBridge integrations), errors reaching
 * `Retry`/`Catch` by name, and executions kept by name with their state-by-state history.
 *
 * What the engine does and does not do (verified in test/unit/local-runtime/state-machine-runner.test.ts):
 * - It needs `Promise.withResolvers` (Node ≥ 22): `./polyfills` is imported first, see there.
 * - JSONPath only. JSONata (`QueryLanguage`, `Arguments`, `Output`) and variables (`Assign`) pass its validation but
 *   are ignored, so the runner refuses them.
 * - Map runs inline, iterations concurrently through p-limit, bounded by `MaxConcurrency`/`MaxConcurrencyPath`
 *   (0 or absent: 40). It accepts `ItemProcessor.ProcessorConfig` (DISTRIBUTED/EXPRESS), `Label`, `ItemSelector`
 *   with `$$.Map.Item.Value`/`Index` and `ToleratedFailurePercentage`; nothing needs removing for its validator. It
 *   ignores `ItemReader`, `ItemBatcher`, `ResultWriter` and the tolerated-failure fields, which would change what
 *   the flow computes, so the runner refuses them — except `ResultWriter` on a Map whose `ResultPath` is null (its
 *   output is discarded either way), which the pre-processing removes.
 * - A failing iteration fails the Map with the iteration's own error name; a Distributed Map on AWS fails with
 *   `States.ExceedToleratedFailureThreshold`. Catch a Distributed Map's failure with `States.ALL`.
 * - A thrown error matches `ErrorEquals` by its `name` (a subclass of Error whose `name` is set works; a plain
 *   Error is `Error`); `States.ALL` and `States.TaskFailed` match any task error. `Catch` with `ResultPath` works.
 * - `Retry` really sleeps `IntervalSeconds × BackoffRate^n` (capped by `MaxDelaySeconds`, FULL jitter applied);
 *   `retryIntervalMs` overrides every pause (tests use 0) and `waitStateMs` every Wait state.
 * - Every Task without `TimeoutSeconds` times out after 60 s (AWS: no limit); the pre-processing gives such Tasks
 *   `defaultTaskTimeoutSeconds` (900, the longest a Lambda can run). Timers above 2^31-1 ms fire at once in Node, so
 *   larger `TimeoutSeconds` are clamped to 2147483 s. The function is not cancelled when its Task times out.
 * - Stopping an execution does not settle a Task that is waiting: its timer would live on (up to the Task's
 *   TimeoutSeconds) and keep the process alive. The runner fails such Tasks once their execution has ended and
 *   abandons the function (it is not cancelled, and its result is ignored); `close()` stops every execution.
 * - Context object: only what the runner passes (`$$.Execution.Id/Name/Input/StartTime/RoleArn`,
 *   `$$.StateMachine.Id/Name`); no `$$.State`, no `$$.Task.Token`. Inside a Map iteration `$$.Execution.Input` is
 *   the iteration's input, not the execution's.
 * - Payload size limits (256 KiB) are not enforced.
 */
import './polyfills';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import {
  ExecutionAbortedError,
  ExecutionTimeoutError,
  StateMachine,
  type RunOptions,
  type StateMachineDefinition,
} from 'aws-local-stepfunctions';

/** A local stand-in for a Lambda function: receives the event, returns the result (JSON round-tripped). */
export type ResourceFunction = (input: unknown) => Promise<unknown>;
/** A local stand-in for a Step Functions service integration: receives the resolved `Parameters`. */
export type SdkIntegrationFunction = (params: Record<string, unknown>) => Promise<unknown>;

export interface StateMachineRunnerOptions {
  /** the parsed ASL, or the path of an `.asl.json` file */
  definition: object | string;
  /** values for the `${Name}` placeholders (CDK `definitionSubstitutions`); a placeholder left unfilled is an error */
  substitutions?: Record<string, string>;
  /**
   * Lambda functions by ARN (or name) after substitution: used for `Resource: <function ARN>` and for
   * `arn:aws:states:::lambda:invoke` by `Parameters.FunctionName`. An ARN with a qualifier, a partial ARN or a bare
   * name finds the function of the same name.
   */
  resources?: Record<string, ResourceFunction>;
  /**
   * Service integrations by resource, with or without the `arn:aws:states:::` prefix: `dynamodb:updateItem`,
   * `dynamodb:putItem`, `dynamodb:getItem`, `events:putEvents`, `aws-sdk:dynamodb:query` …
   */
  sdkIntegrations?: Record<string, SdkIntegrationFunction>;
  /** names the state machine in ARNs and `$$.StateMachine.Name` (default: the file name without `.asl.json`) */
  stateMachineName?: string;
  /** pause before every retry, in ms, instead of IntervalSeconds/BackoffRate (tests: 0) */
  retryIntervalMs?: number;
  /** pause of every Wait state, in ms */
  waitStateMs?: number;
  /** TimeoutSeconds given to Tasks that set none (default 900) */
  defaultTaskTimeoutSeconds?: number;
  /**
   * finished executions kept (with their history) for describe/list and same-name starts; the oldest finished are
   * forgotten beyond this (default: all). For workflows started once per event, whose histories would otherwise
   * grow with every certificate issued.
   */
  keepFinished?: number;
  /**
   * false: the history keeps each state's name, type, time and error but not copies of its input and output (the
   * execution's own input and output are kept). For workflows whose payloads are large and repetitive (the
   * inventory's 500-certificate events), where copying every state's data costs more than running it. Default true.
   */
  stateData?: boolean;
  /**
   * false: skip the engine's own check of the definition (asl-validator: the ASL schema, JSONPaths, ARNs) when the
   * runner is made. The checks of this module (fields the engine cannot run, resources, placeholders) still run.
   * For definitions validated before they ship (certflow's own files, by the tests): the validator compiles its
   * JSON schemas at the first check and keeps them, ~1 s of CPU and ~24 MB of the local runtime's memory. Default true.
   */
  validate?: boolean;
}

export type ExecutionStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';

export type ExecutionEventType =
  | 'ExecutionStarted'
  | 'ExecutionSucceeded'
  | 'ExecutionFailed'
  | 'ExecutionAborted'
  | 'ExecutionTimeout'
  | 'MapIterationStarted'
  | 'MapIterationSucceeded'
  | 'MapIterationFailed'
  | 'ParallelBranchStarted'
  | 'ParallelBranchSucceeded'
  | 'ParallelBranchFailed'
  | 'StateEntered'
  | 'StateExited'
  | 'StateFailed'
  | 'StateRetried'
  | 'StateCaught';

/** One entry of an execution's history (the engine's event log, flattened). */
export interface ExecutionEvent {
  /** 1, 2, 3 … in arrival order */
  id: number;
  type: ExecutionEventType;
  timestamp: string;
  stateName?: string;
  stateType?: string;
  /** the Map iteration the event belongs to (states inside a Map, and MapIteration* events) */
  mapIndex?: number;
  /** the Map or Parallel state of MapIteration* and ParallelBranch* events */
  parentStateName?: string;
  input?: unknown;
  output?: unknown;
  error?: string;
  cause?: unknown;
  /** StateRetried: the retrier matched and how many retries it had made before this one */
  retry?: { errorEquals: string[]; attempt: number };
  /** StateCaught: the catcher matched */
  caught?: { errorEquals: string[]; next: string };
}

export interface ExecutionRecord {
  name: string;
  executionArn: string;
  stateMachineArn: string;
  status: ExecutionStatus;
  input: unknown;
  output?: unknown;
  startDate: Date;
  stopDate?: Date;
  error?: string;
  cause?: string;
  events: ExecutionEvent[];
}

export interface StartedExecution {
  executionName: string;
  executionArn: string;
  /** false when an execution of that name already existed and was returned instead of starting another */
  started: boolean;
  /** the output, or an ExecutionFailedError (FAILED, TIMED_OUT, ABORTED) */
  result: Promise<unknown>;
  /** the history, growing while the execution runs */
  events: ExecutionEvent[];
}

/** The definition cannot run locally as it would on AWS: placeholders, unmapped resources, unsupported fields. */
export class StateMachineDefinitionError extends Error {
  override readonly name = 'StateMachineDefinitionError';
  constructor(
    message: string,
    readonly problems: string[] = [],
  ) {
    super(problems.length > 0 ? `${message}:\n- ${problems.join('\n- ')}` : message);
  }
}

/** An execution of that name exists and cannot be returned (other input, or it did not succeed). */
export class ExecutionAlreadyExistsError extends Error {
  override readonly name = 'ExecutionAlreadyExistsError';
}

/** The runner was closed (the local runtime is stopping): it starts no more executions. */
export class StateMachineRunnerClosedError extends Error {
  override readonly name = 'StateMachineRunnerClosedError';
}

/** Not a valid Step Functions execution name (1–80 characters, no whitespace, brackets, wildcards …). */
export class InvalidExecutionNameError extends Error {
  override readonly name = 'InvalidExecutionNameError';
}

/** The execution ended without output. `error`/`cause` are the ASL error, as Step Functions reports them. */
export class ExecutionFailedError extends Error {
  override readonly name = 'ExecutionFailedError';
  constructor(
    readonly executionName: string,
    readonly status: Exclude<ExecutionStatus, 'RUNNING' | 'SUCCEEDED'>,
    readonly error: string | undefined,
    override readonly cause: string | undefined,
  ) {
    super(`execution ${executionName} ${status}${error ? `: ${error}` : ''}${cause ? ` (${cause})` : ''}`);
  }
}

/**
 * The error a Task fails with. The engine matches `Retry`/`Catch` on `name` and puts `message` in the catcher's
 * `Cause`; the function's own error is kept as `original`.
 */
class TaskFailure extends Error {
  constructor(
    name: string,
    message: string,
    readonly original?: unknown,
  ) {
    super(message);
    this.name = name;
  }
}

// ---------------------------------------------------------------------------------------------------------------

const STATES_ARN_PREFIX = 'arn:aws:states:::';
const LAMBDA_INVOKE = 'lambda:invoke';
const LOCAL_REGION = 'local';
const LOCAL_ACCOUNT = '000000000000';
/** Node timers overflow above 2^31-1 ms (and then fire after 1 ms) */
const MAX_TIMER_SECONDS = Math.floor((2 ** 31 - 1) / 1000);
const DEFAULT_TASK_TIMEOUT_SECONDS = 900;

type Json = unknown;
type AslObject = Record<string, unknown>;
type TaskHandler = (input: Json) => Promise<Json>;

interface ExecutionEntry {
  record: ExecutionRecord;
  result: Promise<unknown>;
  abort: () => void;
  stopReason?: { error?: string; cause?: string };
}

export class StateMachineRunner {
  readonly stateMachineName: string;
  readonly stateMachineArn: string;
  /** the definition the engine runs: substituted and pre-processed */
  readonly definition: AslObject;

  private readonly machine: StateMachine;
  private readonly tasks = new Map<string, AslObject>();
  private readonly retryStates: string[] = [];
  private readonly waitStates: string[] = [];
  private readonly functions = new Map<string, ResourceFunction>();
  private readonly functionsByName = new Map<string, ResourceFunction | null>();
  private readonly integrations = new Map<string, SdkIntegrationFunction>();
  private readonly executions = new Map<string, ExecutionEntry>();
  /** names of finished executions, oldest first (for keepFinished) */
  private readonly finished: string[] = [];
  private closed = false;

  constructor(private readonly options: StateMachineRunnerOptions) {
    const { definition: source, substitutions = {} } = options;
    const raw = typeof source === 'string' ? (JSON.parse(readFileSync(source, 'utf8')) as unknown) : source;
    this.stateMachineName =
      options.stateMachineName ??
      (typeof source === 'string' ? basename(source).replace(/\.asl\.json$|\.json$/, '') : 'local');
    this.stateMachineArn = `arn:aws:states:${LOCAL_REGION}:${LOCAL_ACCOUNT}:stateMachine:${this.stateMachineName}`;

    this.definition = prepareDefinition(substitute(raw, substitutions), {
      defaultTaskTimeoutSeconds: options.defaultTaskTimeoutSeconds ?? DEFAULT_TASK_TIMEOUT_SECONDS,
    });

    for (const [key, fn] of Object.entries(options.resources ?? {})) {
      this.functions.set(key, fn);
      const name = functionName(key);
      this.functionsByName.set(name, this.functionsByName.has(name) ? null : fn);
    }
    for (const [key, fn] of Object.entries(options.sdkIntegrations ?? {})) {
      this.integrations.set(key.startsWith(STATES_ARN_PREFIX) ? key.slice(STATES_ARN_PREFIX.length) : key, fn);
    }

    forEachState(this.definition, (name, state) => {
      if (state.Type === 'Task') this.tasks.set(name, state);
      if (state.Type === 'Wait') this.waitStates.push(name);
      if (Array.isArray(state.Retry)) this.retryStates.push(name);
    });
    this.checkResources();

    // the engine's own validation (ASL schema, JSONPaths, ARNs, unique state names), unless the caller opts out
    try {
      this.machine = new StateMachine(
        this.definition as unknown as StateMachineDefinition,
        options.validate === false ? { validationOptions: { noValidate: true } } : undefined,
      );
    } catch (error) {
      throw new StateMachineDefinitionError(`${this.stateMachineName}: ${(error as Error).message}`);
    }
  }

  /**
   * Starts an execution named `name` (Step Functions naming rules). The same name again returns the existing
   * execution while it runs or once it succeeded, when the input is the same; otherwise ExecutionAlreadyExistsError,
   * as Step Functions answers.
   */
  start(name: string, input: unknown = {}): StartedExecution {
    if (this.closed) throw new StateMachineRunnerClosedError(`${this.stateMachineName} is closed`);
    validateExecutionName(name);
    const jsonInput = toJson(input);
    const existing = this.executions.get(name);
    if (existing) {
      const { record } = existing;
      if (record.status !== 'RUNNING' && record.status !== 'SUCCEEDED') {
        throw new ExecutionAlreadyExistsError(`execution ${name} already exists (${record.status})`);
      }
      if (stableStringify(record.input) !== stableStringify(jsonInput)) {
        throw new ExecutionAlreadyExistsError(`execution ${name} already exists with another input`);
      }
      return this.handle(existing, false);
    }

    const record: ExecutionRecord = {
      name,
      executionArn: `arn:aws:states:${LOCAL_REGION}:${LOCAL_ACCOUNT}:execution:${this.stateMachineName}:${name}`,
      stateMachineArn: this.stateMachineArn,
      status: 'RUNNING',
      input: jsonInput,
      startDate: new Date(),
      events: [],
    };
    // aborted once the execution has ended (stopped, timed out, failed while a Map iteration still runs)
    const abandoned = new AbortController();
    const runOptions: RunOptions = {
      overrides: {
        taskResourceLocalHandlers: this.taskHandlers(record, abandoned.signal) as NonNullable<
          NonNullable<RunOptions['overrides']>['taskResourceLocalHandlers']
        >,
        ...(this.options.retryIntervalMs !== undefined
          ? {
              retryIntervalOverrides: Object.fromEntries(
                this.retryStates.map((s) => [s, this.options.retryIntervalMs!]),
              ),
            }
          : {}),
        ...(this.options.waitStateMs !== undefined
          ? { waitTimeOverrides: Object.fromEntries(this.waitStates.map((s) => [s, this.options.waitStateMs!])) }
          : {}),
      },
      context: {
        Execution: {
          Id: record.executionArn,
          Name: name,
          RoleArn: `arn:aws:iam::${LOCAL_ACCOUNT}:role/${this.stateMachineName}`,
          StartTime: record.startDate.toISOString(),
        },
        StateMachine: { Id: this.stateMachineArn, Name: this.stateMachineName },
      },
    };
    const run = this.machine.run(jsonInput as Parameters<StateMachine['run']>[0], runOptions);
    const stateData = this.options.stateData ?? true;
    // once the execution has ended, nothing of it runs on: Map iterations still running stop at their next state
    // (the engine's abort; a no-op once it has cleaned up) and Tasks still waiting are abandoned
    const abandon = (): void => {
      run.abort();
      abandoned.abort();
    };
    run.result.then(abandon, abandon);
    const drained = (async () => {
      for await (const event of run.eventLogs) {
        record.events.push(toExecutionEvent(record.events.length + 1, event as unknown as EngineEvent, stateData));
      }
    })();

    const entry: ExecutionEntry = { record, abort: run.abort, result: Promise.resolve() };
    entry.result = run.result.then(
      async (output) => {
        await drained;
        record.status = 'SUCCEEDED';
        record.output = output;
        record.stopDate = new Date();
        return output;
      },
      async (error: unknown) => {
        await drained.catch(() => undefined);
        const failed = record.events.findLast((e) => e.type === 'ExecutionFailed');
        if (error instanceof ExecutionAbortedError) {
          record.status = 'ABORTED';
          record.error = entry.stopReason?.error;
          record.cause = entry.stopReason?.cause;
        } else if (error instanceof ExecutionTimeoutError) {
          record.status = 'TIMED_OUT';
          record.error = 'States.Timeout';
          record.cause = 'The execution ran longer than the state machine TimeoutSeconds';
        } else {
          record.status = 'FAILED';
          const inner = (error as { cause?: unknown }).cause;
          record.error = failed?.error ?? (inner instanceof Error ? inner.name : undefined);
          record.cause = causeText(failed?.cause ?? (inner instanceof Error ? inner.message : String(error)));
        }
        record.stopDate = new Date();
        throw new ExecutionFailedError(name, record.status, record.error, record.cause);
      },
    );
    // nobody has to await an execution (Step Functions' StartExecution returns at once): never an unhandled rejection
    entry.result.catch(() => undefined);
    const { keepFinished } = this.options;
    if (keepFinished !== undefined) {
      const forgetOldest = (): void => {
        this.finished.push(name);
        while (this.finished.length > keepFinished) this.executions.delete(this.finished.shift()!);
      };
      entry.result.then(forgetOldest, forgetOldest);
    }
    this.executions.set(name, entry);
    return this.handle(entry, true);
  }

  /** Stops a running execution (status ABORTED); resolves once it has stopped. */
  async stop(name: string, reason: { error?: string; cause?: string } = {}): Promise<void> {
    const entry = this.executions.get(name);
    if (!entry) throw new Error(`execution ${name} does not exist`);
    if (entry.record.status !== 'RUNNING') return;
    entry.stopReason = reason;
    entry.abort();
    await entry.result.catch(() => undefined);
  }

  /**
   * Stops every running execution (ABORTED with `reason`) and refuses new ones (StateMachineRunnerClosedError);
   * resolves once they have stopped. A function an execution was waiting for is abandoned, not cancelled: it may
   * still finish, but nothing waits for it (no Task timeout timer, no Retry, no Catch), so it keeps no process alive
   * by itself.
   */
  async close(reason: { error?: string; cause?: string } = {}): Promise<void> {
    this.closed = true;
    const running = [...this.executions.values()].filter((e) => e.record.status === 'RUNNING');
    await Promise.all(running.map((e) => this.stop(e.record.name, reason)));
  }

  /** A snapshot of one execution, or undefined. */
  describe(name: string): ExecutionRecord | undefined {
    const entry = this.executions.get(name);
    return entry ? snapshot(entry.record) : undefined;
  }

  /** Snapshots of all executions, the most recent first (as ListExecutions). */
  list(filter: { status?: ExecutionStatus } = {}): ExecutionRecord[] {
    return [...this.executions.values()]
      .map((e) => e.record)
      .filter((r) => filter.status === undefined || r.status === filter.status)
      .sort((a, b) => b.startDate.getTime() - a.startDate.getTime())
      .map(snapshot);
  }

  private handle(entry: ExecutionEntry, started: boolean): StartedExecution {
    return {
      executionName: entry.record.name,
      executionArn: entry.record.executionArn,
      started,
      result: entry.result,
      events: entry.record.events,
    };
  }

  // -- resources ----------------------------------------------------------------------------------------------

  private findFunction(ref: string): ResourceFunction | undefined {
    return this.functions.get(ref) ?? this.functionsByName.get(functionName(ref)) ?? undefined;
  }

  private checkResources(): void {
    const problems: string[] = [];
    for (const [stateName, state] of this.tasks) {
      const resource = String(state.Resource);
      if (resource === STATES_ARN_PREFIX + LAMBDA_INVOKE) {
        const parameters = (state.Parameters ?? {}) as AslObject;
        const fn = parameters.FunctionName;
        if (typeof fn === 'string') {
          if (!this.findFunction(fn)) problems.push(`${stateName}: no local function for FunctionName ${fn}`);
        } else if (typeof parameters['FunctionName.$'] !== 'string') {
          problems.push(`${stateName}: lambda:invoke without Parameters.FunctionName`);
        }
      } else if (resource.startsWith(STATES_ARN_PREFIX)) {
        const integration = resource.slice(STATES_ARN_PREFIX.length);
        if (!this.integrations.has(integration)) problems.push(`${stateName}: no local integration for ${resource}`);
      } else if (!this.findFunction(resource)) {
        problems.push(`${stateName}: no local function for ${resource}`);
      }
    }
    if (problems.length > 0) {
      throw new StateMachineDefinitionError(
        `${this.stateMachineName}: Task resources without a local function`,
        problems,
      );
    }
  }

  private taskHandlers(execution: ExecutionRecord, abandoned: AbortSignal): Record<string, TaskHandler> {
    const handlers: Record<string, TaskHandler> = {};
    for (const [stateName, state] of this.tasks) {
      handlers[stateName] = unlessAbandoned(this.taskHandler(String(state.Resource), execution), abandoned);
    }
    return handlers;
  }

  private taskHandler(resource: string, execution: ExecutionRecord): TaskHandler {
    if (resource === STATES_ARN_PREFIX + LAMBDA_INVOKE) {
      return async (input) => {
        const { FunctionName: ref, Payload: payload } = (input ?? {}) as { FunctionName?: unknown; Payload?: unknown };
        const fn = typeof ref === 'string' ? this.findFunction(ref) : undefined;
        if (!fn) {
          throw new TaskFailure('Lambda.ResourceNotFoundException', `Function not found: ${String(ref)}`);
        }
        // the optimized integration returns the Invoke response, the function's result parsed into Payload
        const result = await invokeFunction(fn, payload === undefined ? {} : payload);
        return { ExecutedVersion: '$LATEST', Payload: result, StatusCode: 200 };
      };
    }
    if (resource.startsWith(STATES_ARN_PREFIX)) {
      const integration = resource.slice(STATES_ARN_PREFIX.length);
      const fn = this.integrations.get(integration)!;
      if (integration === 'events:putEvents') {
        return (input) => putEvents(fn, input as AslObject, execution);
      }
      const errorPrefix = integrationErrorPrefix(integration);
      return async (input) => {
        try {
          return withoutSdkMetadata(toJson(await fn(toJson(input) as AslObject)));
        } catch (error) {
          throw serviceFailure(errorPrefix, error);
        }
      };
    }
    const fn = this.findFunction(resource)!;
    return (input) => invokeFunction(fn, input);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Task plumbing

/**
 * The engine waits for a Task's promise with a timer of the Task's TimeoutSeconds (900 s by default here) that
 * only the promise settling clears, and aborting an execution does not settle it: a function that never returns
 * would keep the timer, and the process, alive for 15 minutes after its execution stopped. Once the execution has
 * ended, the Task fails at once with `States.Runtime` (nobody sees it: the execution's history is closed) and the
 * function's own outcome is ignored; no function is called for an execution that has ended.
 */
function unlessAbandoned(handler: TaskHandler, abandoned: AbortSignal): TaskHandler {
  const failure = () => new TaskFailure('States.Runtime', 'the execution has ended; the task was abandoned');
  return (input) => {
    if (abandoned.aborted) return Promise.reject(failure());
    const work = handler(input);
    return new Promise((resolve, reject) => {
      const onAbandon = (): void => {
        work.catch(() => undefined);
        reject(failure());
      };
      abandoned.addEventListener('abort', onAbandon, { once: true });
      work.then(
        (output) => {
          abandoned.removeEventListener('abort', onAbandon);
          resolve(output);
        },
        (error: unknown) => {
          abandoned.removeEventListener('abort', onAbandon);
          reject(error);
        },
      );
    });
  };
}

/** Calls a local Lambda function as Lambda would: JSON in, JSON out, errors as `errorType` + a JSON Cause. */
async function invokeFunction(fn: ResourceFunction, event: unknown): Promise<Json> {
  let result: unknown;
  try {
    result = await fn(toJson(event));
  } catch (error) {
    const { name, message, stack } =
      error instanceof Error ? error : { name: 'Error', message: String(error), stack: undefined };
    // Step Functions reports a Lambda function error as Error = errorType, Cause = the Lambda error payload
    const cause = JSON.stringify({ errorType: name, errorMessage: message, trace: stack?.split('\n') ?? [] });
    throw new TaskFailure(name || 'Error', cause, error);
  }
  return result === undefined ? null : toJson(result);
}

/**
 * `events:putEvents` as the optimized integration does it: `Detail` sent as a JSON string, the execution and state
 * machine ARNs appended to each entry's `Resources`, and a non-zero FailedEntryCount failing the state with
 * `EventBridge.FailedEntry`.
 */
async function putEvents(fn: SdkIntegrationFunction, input: AslObject, execution: ExecutionRecord): Promise<Json> {
  const entries = Array.isArray(input.Entries) ? (input.Entries as AslObject[]) : [];
  const params = {
    ...(toJson(input) as AslObject),
    Entries: entries.map((entry) => ({
      ...(toJson(entry) as AslObject),
      ...(entry.Detail !== undefined && typeof entry.Detail !== 'string'
        ? { Detail: JSON.stringify(entry.Detail) }
        : {}),
      Resources: [
        ...(Array.isArray(entry.Resources) ? (entry.Resources as string[]) : []),
        execution.executionArn,
        execution.stateMachineArn,
      ],
    })),
  };
  let output: AslObject;
  try {
    output = withoutSdkMetadata(toJson(await fn(params))) as AslObject;
  } catch (error) {
    throw serviceFailure('EventBridge', error);
  }
  if (typeof output?.FailedEntryCount === 'number' && output.FailedEntryCount > 0) {
    throw new TaskFailure('EventBridge.FailedEntry', JSON.stringify(output));
  }
  return output;
}

/**
 * Error names of service integrations: `DynamoDB.<Exception>` for the optimized DynamoDB integration,
 * `<Service>.<Name>Exception` for `aws-sdk:<service>:<action>` (the AWS SDK integration rules).
 */
function integrationErrorPrefix(integration: string): string | undefined {
  const [service, second] = integration.split(':');
  if (service === 'dynamodb') return 'DynamoDB';
  if (service === 'events') return 'EventBridge';
  if (service === 'aws-sdk' && second) {
    const known: Record<string, string> = { dynamodb: 'DynamoDb', acmpca: 'AcmPca', eventbridge: 'EventBridge' };
    return known[second] ?? second.charAt(0).toUpperCase() + second.slice(1);
  }
  return undefined;
}

function serviceFailure(prefix: string | undefined, error: unknown): TaskFailure {
  const { name, message } = error instanceof Error ? error : { name: 'Error', message: String(error) };
  if (!prefix || name.includes('.')) return new TaskFailure(name, message, error);
  const suffixed =
    prefix === 'DynamoDB' || prefix === 'EventBridge' || name.endsWith('Exception') ? name : `${name}Exception`;
  return new TaskFailure(`${prefix}.${suffixed}`, message, error);
}

/** SDK v3 outputs carry `$metadata`, which Step Functions' outputs do not. */
function withoutSdkMetadata(value: Json): Json {
  if (value && typeof value === 'object' && !Array.isArray(value) && '$metadata' in value) {
    const rest = { ...(value as AslObject) };
    delete rest.$metadata;
    return rest;
  }
  return value;
}

// ---------------------------------------------------------------------------------------------------------------
// Definition: substitution and pre-processing

/** Fills `${Name}` in every key and string (Fn::Sub rules: `${!Name}` is the literal `${Name}`). */
export function substitute(definition: unknown, substitutions: Record<string, string>): AslObject {
  const missing = new Set<string>();
  const fill = (text: string) =>
    text.replace(/\$\{([^}]*)\}/g, (whole, name: string) => {
      if (name.startsWith('!')) return `\${${name.slice(1)}}`;
      if (Object.prototype.hasOwnProperty.call(substitutions, name)) return substitutions[name]!;
      missing.add(name);
      return whole;
    });
  const walk = (value: unknown): unknown => {
    if (typeof value === 'string') return fill(value);
    if (Array.isArray(value)) return value.map(walk);
    if (value && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [fill(k), walk(v)]));
    }
    return value;
  };
  const result = walk(definition);
  if (missing.size > 0) {
    throw new StateMachineDefinitionError(
      'placeholders without a substitution',
      [...missing].map((name) => `\${${name}}`),
    );
  }
  if (!result || typeof result !== 'object' || Array.isArray(result)) {
    throw new StateMachineDefinitionError('a state machine definition is a JSON object');
  }
  return result as AslObject;
}

/**
 * Refuses what aws-local-stepfunctions would silently run differently, and adjusts what it would run differently
 * from Step Functions without changing the flow:
 * - removes `"ResultPath": "$"` (the default), which the engine mishandles (it writes the result under a key "$");
 * - removes `ResultWriter` from Maps whose `ResultPath` is null;
 * - gives Tasks without `TimeoutSeconds`/`TimeoutSecondsPath` `defaultTaskTimeoutSeconds` (the engine's default is
 *   60 s, Step Functions has none);
 * - clamps `TimeoutSeconds` to what a Node timer can hold.
 */
export function prepareDefinition(definition: AslObject, options: { defaultTaskTimeoutSeconds: number }): AslObject {
  // a JSON copy, not structuredClone: the engine only resolves `.$` fields inside objects whose prototype is the
  // Object.prototype of its own realm, and under Jest structuredClone returns objects of another realm
  const prepared = toJson(definition) as AslObject;
  const problems: string[] = [];
  if (prepared.QueryLanguage === 'JSONata') problems.push('QueryLanguage JSONata (the engine runs JSONPath only)');
  if (typeof prepared.TimeoutSeconds === 'number') {
    prepared.TimeoutSeconds = Math.min(prepared.TimeoutSeconds, MAX_TIMER_SECONDS);
  }
  forEachState(prepared, (name, state) => {
    if (state.QueryLanguage === 'JSONata')
      problems.push(`${name}: QueryLanguage JSONata (the engine runs JSONPath only)`);
    for (const field of ['Arguments', 'Output', 'Assign']) {
      if (field in state) problems.push(`${name}: ${field} (JSONata/variables, ignored by the engine)`);
    }
    // `"ResultPath": "$"` is the default (the result replaces the input), but the engine stores the result under a
    // key named "$"; leaving the field out means the same thing to both
    if (state.ResultPath === '$') delete state.ResultPath;
    for (const catcher of Array.isArray(state.Catch) ? (state.Catch as AslObject[]) : []) {
      if (catcher.ResultPath === '$') delete catcher.ResultPath;
    }
    if (state.Type === 'Task') {
      if (state.TimeoutSeconds === undefined && state.TimeoutSecondsPath === undefined) {
        state.TimeoutSeconds = options.defaultTaskTimeoutSeconds;
      }
      if (typeof state.TimeoutSeconds === 'number')
        state.TimeoutSeconds = Math.min(state.TimeoutSeconds, MAX_TIMER_SECONDS);
    }
    if (state.Type === 'Map') {
      for (const field of ['ItemReader', 'ItemBatcher']) {
        if (field in state) problems.push(`${name}: ${field} (ignored by the engine, which maps ItemsPath inline)`);
      }
      if ('ResultWriter' in state) {
        if (state.ResultPath === null) delete state.ResultWriter;
        else problems.push(`${name}: ResultWriter (ignored by the engine; allowed only with "ResultPath": null)`);
      }
      for (const field of [
        'ToleratedFailurePercentage',
        'ToleratedFailureCount',
        'ToleratedFailurePercentagePath',
        'ToleratedFailureCountPath',
      ]) {
        if (field in state && state[field] !== 0) {
          problems.push(`${name}: ${field} ${JSON.stringify(state[field])} (ignored by the engine: any failure fails)`);
        }
      }
    }
  });
  if (problems.length > 0) {
    throw new StateMachineDefinitionError('fields the local engine cannot run as Step Functions does', problems);
  }
  return prepared;
}

/** Visits every state, including those of Map ItemProcessors/Iterators and Parallel branches. */
function forEachState(machine: AslObject, visit: (name: string, state: AslObject) => void): void {
  for (const [name, state] of Object.entries((machine.States ?? {}) as Record<string, AslObject>)) {
    visit(name, state);
    const processor = (state.ItemProcessor ?? state.Iterator) as AslObject | undefined;
    if (processor) forEachState(processor, visit);
    if (Array.isArray(state.Branches)) for (const branch of state.Branches as AslObject[]) forEachState(branch, visit);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/** `arn:aws:lambda:r:a:function:NAME[:qualifier]`, `a:function:NAME[:qualifier]`, `NAME[:qualifier]` → NAME */
function functionName(ref: string): string {
  const match = /^(?:arn:[^:]+:lambda:[^:]*:[^:]*:function:|\d{12}:function:)?([^:]+)(?::[^:]+)?$/.exec(ref);
  return match?.[1] ?? ref;
}

function validateExecutionName(name: string): void {
  // Step Functions: 1–80 characters; no whitespace, brackets, wildcards, special or control characters
  // eslint-disable-next-line no-control-regex
  if (name.length < 1 || name.length > 80 || /[\s<>{}[\]?*"#%\\^|~`$&,;:/\u0000-\u001f\u007f-\u009f]/.test(name)) {
    throw new InvalidExecutionNameError(`invalid execution name: ${JSON.stringify(name)}`);
  }
}

/**
 * `JSON.parse(JSON.stringify(value))` (undefined: null), made without the intermediate string: a 500-certificate
 * inventory event is a ~150 KB string, allocated straight into V8's old generation, on every copy.
 * Plain objects and arrays are copied here; anything else (toJSON, class instances, boxed values) goes through JSON.
 * @internal exported for tests
 */
export function toJson(value: unknown): Json {
  const copy = jsonCopy(value, false);
  return copy === undefined ? null : copy;
}

function jsonCopy(value: unknown, inArray: boolean): Json | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? (value === 0 ? 0 : value) : null; // -0 is 0 in JSON
    case 'undefined':
    case 'function':
    case 'symbol':
      return inArray ? null : undefined;
    case 'bigint':
      throw new TypeError('Do not know how to serialize a BigInt');
  }
  if (value === null) return null;
  if (Array.isArray(value) && Object.getPrototypeOf(value) === Array.prototype) {
    const out: Json[] = new Array<Json>(value.length);
    for (let i = 0; i < value.length; i++) out[i] = jsonCopy(value[i], true) ?? null;
    return out;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if ((proto === Object.prototype || proto === null) && typeof (value as { toJSON?: unknown }).toJSON !== 'function') {
    const out: Record<string, Json> = {};
    const object = value as Record<string, unknown>;
    for (const key of Object.keys(object)) {
      const copy = jsonCopy(object[key], false);
      if (copy === undefined) continue;
      if (key === '__proto__')
        Object.defineProperty(out, key, { value: copy, enumerable: true, writable: true, configurable: true });
      else out[key] = copy;
    }
    return out;
  }
  const text = JSON.stringify(value) as string | undefined;
  return text === undefined ? (inArray ? null : undefined) : (JSON.parse(text) as Json);
}

function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableStringify(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function causeText(cause: unknown): string | undefined {
  if (cause === undefined || cause === null) return undefined;
  return typeof cause === 'string' ? cause : JSON.stringify(cause);
}

function snapshot(record: ExecutionRecord): ExecutionRecord {
  return { ...record, events: [...record.events] };
}

/** The engine's event log entries (its types are not exported). */
interface EngineEvent {
  type: ExecutionEventType;
  timestamp: number;
  input?: unknown;
  output?: unknown;
  index?: number;
  state?: { name: string; type: string; input: unknown; output?: unknown };
  parentState?: { name: string; type: string; input: unknown };
  Error?: string;
  Cause?: unknown;
  retry?: { retrier: { ErrorEquals: string[] }; attempt: number };
  catch?: { catcher: { ErrorEquals: string[]; Next: string } };
}

function toExecutionEvent(id: number, event: EngineEvent, stateData: boolean): ExecutionEvent {
  const copy = (value: unknown) => (value === undefined ? undefined : toJson(value));
  const result: ExecutionEvent = { id, type: event.type, timestamp: new Date(event.timestamp).toISOString() };
  if (event.state) {
    result.stateName = event.state.name;
    result.stateType = event.state.type;
    if (stateData) {
      result.input = copy(event.state.input);
      if (event.type === 'StateExited') result.output = copy(event.state.output);
    }
  }
  if (event.parentState) result.parentStateName = event.parentState.name;
  if (event.index !== undefined) result.mapIndex = event.index;
  if (event.type === 'ExecutionStarted' && stateData) result.input = copy(event.input); // else: the record's input
  if (event.type === 'ExecutionSucceeded') result.output = copy(event.output);
  if (event.Error !== undefined) result.error = event.Error;
  if (event.Cause !== undefined) result.cause = copy(event.Cause instanceof Error ? event.Cause.message : event.Cause);
  if (event.retry) result.retry = { errorEquals: event.retry.retrier.ErrorEquals, attempt: event.retry.attempt };
  if (event.catch) result.caught = { errorEquals: event.catch.catcher.ErrorEquals, next: event.catch.catcher.Next };
  return result;
}
