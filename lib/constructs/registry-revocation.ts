import * as path from 'node:path';
import { Duration, Stack } from 'aws-cdk-lib';
import type { Rule } from 'aws-cdk-lib/aws-events';
import { Effect, PolicyStatement, type Role } from 'aws-cdk-lib/aws-iam';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Queue } from 'aws-cdk-lib/aws-sqs';
import { LogLevel, StateMachine, StateMachineType } from 'aws-cdk-lib/aws-stepfunctions';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { rateLimitPk } from '../../lambdas/adapters/aws/dynamo-rate-limiter';
import { REGISTRY_REVOCATION_RULE_PATTERN } from '../../lambdas/core/events';
import { ApiRatesSchema, type ApiRatesInput } from '../../lambdas/core/pacing';
import { RegistryRevocationEnv } from '../../lambdas/handlers/env';
import { aslStateMachine } from '../asl';
import { eventWorkflowRule } from '../event-workflow-rule';
import { arnFinding } from '../nag';
import { CertflowFunction, handlerEntry, PROJECT_ROOT } from './certflow-function';
import type { CertflowTable } from './certflow-table';
import type { CertflowEventBus } from './event-bus';
import type { WireEventPattern } from '../event-workflow-rule';

/** The registry-revocation workflow definition, shared with the local runtime. */
export const REGISTRY_REVOCATION_DEFINITION_PATH = path.join(
  PROJECT_ROOT,
  'statemachines',
  'registry-revocation.asl.json',
);

export interface RegistryRevocationProps {
  readonly bus: CertflowEventBus;
  /** the table holding the deployment's shared rate schedule (the task table: `rate#{api}` items) */
  readonly rateTable: CertflowTable;
  /** the account's quotas (calls per second); `iot:UpdateCertificate` paces this workflow, default AWS's */
  readonly apiRates?: ApiRatesInput;
  /** the rule's pattern, default REGISTRY_REVOCATION_RULE_PATTERN (the local bus uses it too) */
  readonly eventPattern?: WireEventPattern;
  /** the ASL file, default statemachines/registry-revocation.asl.json */
  readonly definitionPath?: string;
  /** how often EventBridge retries starting an execution before the event goes to the dead-letter queue, default 185 */
  readonly retryAttempts?: number;
  /** how long EventBridge keeps retrying an event, default 24 hours */
  readonly maxEventAge?: Duration;
  /** retention of the function's and the state machine's log groups, default three months */
  readonly logRetention?: RetentionDays;
}

/**
 * Revoked certificates stop connecting: an EventBridge rule on the certflow bus (`Certificate Revoked` of device and
 * server certificates) starts an Express state machine running the shared registry-revocation ASL file, whose one
 * Task sets the certificate REVOKED in AWS IoT (UpdateCertificate, paced at the account's quota through the shared
 * rate schedule). AWS IoT then disconnects the device and refuses it. Events the rule cannot deliver go to an
 * encrypted dead-letter queue, as for the inventory rule.
 */
export class RegistryRevocation extends Construct {
  readonly revokeInRegistry: CertflowFunction<typeof RegistryRevocationEnv>;
  readonly stateMachine: StateMachine;
  readonly logGroup: LogGroup;
  readonly rule: Rule;
  readonly ruleRole: Role;
  readonly deadLetterQueue: Queue;

  constructor(scope: Construct, id: string, props: RegistryRevocationProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const logRetention = props.logRetention ?? RetentionDays.THREE_MONTHS;

    this.revokeInRegistry = new CertflowFunction(this, 'RevokeInRegistry', {
      entry: handlerEntry('sfn-revoke-in-registry'),
      description: 'certflow registry revocation: set a revoked certificate REVOKED in AWS IoT',
      envSchema: RegistryRevocationEnv,
      environment: {
        RATE_TABLE_NAME: props.rateTable.tableName,
        API_RATES: JSON.stringify(ApiRatesSchema.parse(props.apiRates ?? {})),
      },
      memorySize: 256,
      // the limiter waits up to 30 s for a slot before RateLimitBacklogError (retried by the ASL)
      timeout: Duration.seconds(60),
      logRetention,
    });
    // IotDeviceRegistry: DescribeCertificate, UpdateCertificate — nothing else, on certificates only
    this.revokeInRegistry.addToRolePolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: ['iot:DescribeCertificate', 'iot:UpdateCertificate'],
        resources: [stack.formatArn({ service: 'iot', resource: 'cert', resourceName: '*' })],
      }),
    );
    // DynamoRateLimiter: conditional UpdateItem and a consistent GetItem, on the iot:UpdateCertificate item only
    this.revokeInRegistry.addToRolePolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
        resources: [props.rateTable.tableArn],
        conditions: {
          'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': [rateLimitPk('iot:UpdateCertificate')] },
        },
      }),
    );
    props.rateTable.table.encryptionKey?.grantEncryptDecrypt(this.revokeInRegistry);
    NagSuppressions.addResourceSuppressions(
      this.revokeInRegistry.role,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'Any certificate certflow revokes may be registered in AWS IoT (ids are SHA-256 hashes of certificates ' +
            'made at run time): cert/* of this account and region, with DescribeCertificate and UpdateCertificate only.',
          appliesTo: [arnFinding('iot', 'cert/*')],
        },
      ],
      true,
    );

    const definitionPath = props.definitionPath ?? REGISTRY_REVOCATION_DEFINITION_PATH;
    ({ stateMachine: this.stateMachine, logGroup: this.logGroup } = aslStateMachine(this, {
      name: 'registry-revocation',
      comment: 'certflow registry revocation',
      definitionPath,
      substitutions: { RevokeInRegistryFunctionArn: this.revokeInRegistry.functionArn },
      type: StateMachineType.EXPRESS,
      // a failed execution is logged with its input (the event: ids and serials, never key material), so that it can
      // be found and replayed from the bus archive
      logs: { level: LogLevel.ERROR, includeExecutionData: true },
      logRetention,
      invokes: [this.revokeInRegistry.functionArn],
    }));
    NagSuppressions.addResourceSuppressions(this.stateMachine, [
      {
        id: 'AwsSolutions-SF1',
        reason:
          'An Express execution per revocation event (a compromise response sends one per certificate): level ALL ' +
          'would log every state transition. Level ERROR logs each failed execution with its input; X-Ray traces the rest.',
      },
    ]);

    ({
      rule: this.rule,
      ruleRole: this.ruleRole,
      deadLetterQueue: this.deadLetterQueue,
    } = eventWorkflowRule(this, {
      name: 'registry-revocation',
      description: 'certflow registry revocation: Certificate Revoked (device, server) → REVOKED in AWS IoT',
      bus: props.bus.bus,
      eventPattern: props.eventPattern ?? REGISTRY_REVOCATION_RULE_PATTERN,
      stateMachine: this.stateMachine,
      ...(props.retryAttempts !== undefined ? { retryAttempts: props.retryAttempts } : {}),
      ...(props.maxEventAge !== undefined ? { maxEventAge: props.maxEventAge } : {}),
    }));
  }
}
