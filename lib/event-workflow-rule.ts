import { Duration, Stack } from 'aws-cdk-lib';
import { type EventPattern, type IEventBus, Rule } from 'aws-cdk-lib/aws-events';
import { SfnStateMachine } from 'aws-cdk-lib/aws-events-targets';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { NagSuppressions } from 'cdk-nag';
import type { Construct } from 'constructs';

/** An EventBridge pattern as EventBridge (and the local bus) reads it: `detail-type`, not CDK's `detailType`. */
export type WireEventPattern = Readonly<Record<string, unknown>>;

/** The CDK form of a wire pattern: `detail-type` becomes `detailType`, which CDK renders back as `detail-type`. */
export function cdkEventPattern(pattern: WireEventPattern): EventPattern {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(pattern)) {
    if (key === 'detailType') throw new Error('event pattern: write detail-type, as EventBridge does');
    out[key === 'detail-type' ? 'detailType' : key] = value;
  }
  return out as EventPattern;
}

export interface EventWorkflowRuleProps {
  /** the workflow's name in descriptions and the nag reason, e.g. 'inventory' */
  readonly name: string;
  /** the rule's description */
  readonly description: string;
  readonly bus: IEventBus;
  readonly eventPattern: WireEventPattern;
  readonly stateMachine: IStateMachine;
  readonly retryAttempts?: number;
  readonly maxEventAge?: Duration;
}

/**
 * An EventBridge rule that starts an execution of `stateMachine` per matching event, retries, then dead-letters the
 * event to an encrypted, TLS-only queue; its role may only start that state machine (for this account). Creates
 * `DeadLetterQueue`, `RuleRole` and `Rule` in `scope`.
 */
export function eventWorkflowRule(
  scope: Construct,
  props: EventWorkflowRuleProps,
): { rule: Rule; ruleRole: Role; deadLetterQueue: Queue } {
  const deadLetterQueue = new Queue(scope, 'DeadLetterQueue', {
    encryption: QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    retentionPeriod: Duration.days(14),
  });
  NagSuppressions.addResourceSuppressions(deadLetterQueue, [
    {
      id: 'AwsSolutions-SQS3',
      reason:
        `This queue is the dead-letter queue of the ${props.name} rule target (EventBridge delivers the events it ` +
        'could not start an execution for); cdk-nag only recognises DLQs of queues and functions.',
    },
  ]);
  const ruleRole = new Role(scope, 'RuleRole', {
    assumedBy: new ServicePrincipal('events.amazonaws.com', {
      conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(scope).account } },
    }),
    description: `certflow ${props.name} rule: starts executions of the ${props.name} state machine only`,
  });
  const rule = new Rule(scope, 'Rule', {
    eventBus: props.bus,
    description: props.description,
    eventPattern: cdkEventPattern(props.eventPattern),
  });
  rule.addTarget(
    new SfnStateMachine(props.stateMachine, {
      role: ruleRole,
      deadLetterQueue,
      retryAttempts: props.retryAttempts ?? 185,
      maxEventAge: props.maxEventAge ?? Duration.hours(24),
    }),
  );
  return { rule, ruleRole, deadLetterQueue };
}
