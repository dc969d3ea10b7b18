import * as path from 'node:path';
import { Duration, Stack } from 'aws-cdk-lib';
import { Rule, RuleTargetInput, Schedule } from 'aws-cdk-lib/aws-events';
import { SfnStateMachine } from 'aws-cdk-lib/aws-events-targets';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { LogLevel, StateMachine, StateMachineType } from 'aws-cdk-lib/aws-stepfunctions';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { BY_EXPIRY_INDEX } from '../../lambdas/adapters/aws/dynamo-inventory';
import { ExpiryEnv } from '../../lambdas/handlers/env';
import { aslStateMachine } from '../asl';
import { CertflowFunction, FunctionEnvironment, handlerEntry, PROJECT_ROOT } from './certflow-function';
import type { CertflowEventBus } from './event-bus';
import type { CertificateInventory } from './inventory';

/** The expiry sweep workflow definition, shared with the local runtime. */
export const EXPIRY_SWEEP_DEFINITION_PATH = path.join(PROJECT_ROOT, 'statemachines', 'expiry-sweep.asl.json');

export interface ExpirySweepProps {
  readonly inventory: CertificateInventory;
  readonly bus: CertflowEventBus;
  /** `Certificate Expiring` for certificates expiring within this many days, default 30 */
  readonly windowDays?: number;
  /** time between two sweeps (the schedule's rate), default 24 hours */
  readonly interval?: Duration;
  /** the ASL file, default statemachines/expiry-sweep.asl.json */
  readonly definitionPath?: string;
  /** retention of the function's and the state machine's log groups, default three months */
  readonly logRetention?: RetentionDays;
}

/**
 * The scheduled expiry sweep: an EventBridge schedule starts this Standard state machine (the shared expiry-sweep
 * ASL file) with `{ "windowDays": … }`; its one Task invokes the ExpirySweep Lambda slice by slice over the
 * inventory's byExpiry index until the index is covered, and the Lambda sends `Certificate Expiring` once per
 * certificate and window.
 */
export class ExpirySweep extends Construct {
  readonly environment: FunctionEnvironment<typeof ExpiryEnv>;
  readonly sweep: CertflowFunction<typeof ExpiryEnv>;
  readonly stateMachine: StateMachine;
  readonly logGroup: LogGroup;
  readonly rule: Rule;
  readonly ruleRole: Role;
  /** the window the schedule passes to each execution */
  readonly windowDays: number;

  constructor(scope: Construct, id: string, props: ExpirySweepProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const { inventory, bus } = props;
    const logRetention = props.logRetention ?? RetentionDays.THREE_MONTHS;
    this.windowDays = props.windowDays ?? 30;

    this.environment = {
      INVENTORY_TABLE_NAME: inventory.inventoryTable.tableName,
      EVENT_BUS_NAME: bus.eventBusName,
      // the schedule passes windowDays; this is the handler's fallback for an execution started without it
      EXPIRY_WINDOW_DAYS: String(this.windowDays),
    };
    this.sweep = new CertflowFunction(this, 'ExpirySweep', {
      entry: handlerEntry('sfn-expiry-sweep'),
      description: 'certflow expiry sweep: Certificate Expiring for one slice of the inventory\u2019s expiry index',
      envSchema: ExpiryEnv,
      environment: this.environment,
      memorySize: 512,
      timeout: Duration.minutes(5),
      logRetention,
    });
    // listExpiring (Query on the byExpiry index only), markExpiringNotified (conditional UpdateItem)
    inventory.inventoryTable.grantIndexQuery(this.sweep, BY_EXPIRY_INDEX);
    inventory.inventoryTable.grant(this.sweep, 'dynamodb:UpdateItem');
    // Certificate Expiring
    bus.grantPutEvents(this.sweep);

    // the state machine
    const definitionPath = props.definitionPath ?? EXPIRY_SWEEP_DEFINITION_PATH;
    ({ stateMachine: this.stateMachine, logGroup: this.logGroup } = aslStateMachine(this, {
      name: 'expiry-sweep',
      comment: 'certflow expiry sweep: Certificate Expiring for certificates expiring within the window',
      definitionPath,
      substitutions: { ExpirySweepFunctionArn: this.sweep.functionArn },
      // slices loop until the expiry index is covered: longer than an Express execution may run
      type: StateMachineType.STANDARD,
      // a failed execution is logged with its input (window, reference time and resume token; no key material),
      // so that it can be resumed where it stopped
      logs: { level: LogLevel.ERROR, includeExecutionData: true },
      logRetention,
      invokes: [this.sweep.functionArn],
    }));
    NagSuppressions.addResourceSuppressions(this.stateMachine, [
      {
        id: 'AwsSolutions-SF1',
        reason:
          'A scheduled sweep loops one Task over slices of the whole inventory: level ALL would log every ' +
          'transition of every slice. Level ERROR logs each failed execution with its input (window, reference ' +
          'time, resume token); X-Ray traces the rest.',
      },
    ]);

    // the schedule: EventBridge (default bus) starts an execution every `interval` with the configured window
    this.ruleRole = new Role(this, 'RuleRole', {
      assumedBy: new ServicePrincipal('events.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
      description: 'certflow expiry sweep schedule: starts executions of the expiry sweep state machine only',
    });
    this.rule = new Rule(this, 'Schedule', {
      description: `certflow expiry sweep: Certificate Expiring within ${this.windowDays} days`,
      schedule: Schedule.rate(props.interval ?? Duration.hours(24)),
    });
    this.rule.addTarget(
      new SfnStateMachine(this.stateMachine, {
        role: this.ruleRole,
        input: RuleTargetInput.fromObject({ windowDays: this.windowDays }),
      }),
    );
  }
}
