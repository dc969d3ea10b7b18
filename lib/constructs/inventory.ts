import * as path from 'node:path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type { Rule } from 'aws-cdk-lib/aws-events';
import type { Role } from 'aws-cdk-lib/aws-iam';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Queue } from 'aws-cdk-lib/aws-sqs';
import { LogLevel, StateMachine, StateMachineType } from 'aws-cdk-lib/aws-stepfunctions';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { CA_TABLE, INVENTORY_TABLE } from '../../lambdas/adapters/aws/tables';
import { INVENTORY_RULE_PATTERN } from '../../lambdas/core/events';
import { InventoryEnv } from '../../lambdas/handlers/env';
import { aslStateMachine } from '../asl';
import { eventWorkflowRule } from '../event-workflow-rule';
import { CertflowFunction, handlerEntry, PROJECT_ROOT } from './certflow-function';
import { CertflowTable } from './certflow-table';
import type { CertflowEventBus } from './event-bus';

/** The inventory workflow definition, shared with the local runtime. */
export const INVENTORY_DEFINITION_PATH = path.join(PROJECT_ROOT, 'statemachines', 'inventory.asl.json');

import type { WireEventPattern } from '../event-workflow-rule';
export { cdkEventPattern, type WireEventPattern } from '../event-workflow-rule';

export interface CertificateInventoryProps {
  readonly bus: CertflowEventBus;
  /** the rule's pattern, default INVENTORY_RULE_PATTERN (the event contract's; the local bus uses it too) */
  readonly eventPattern?: WireEventPattern;
  /** the ASL file, default statemachines/inventory.asl.json */
  readonly definitionPath?: string;
  /** how often EventBridge retries starting an execution before the event goes to the dead-letter queue, default 185 */
  readonly retryAttempts?: number;
  /** how long EventBridge keeps retrying an event, default 24 hours */
  readonly maxEventAge?: Duration;
  /** what happens to the tables when the stack is deleted, default RETAIN */
  readonly tableRemovalPolicy?: RemovalPolicy;
  /** retention of the function's and the state machine's log groups, default three months */
  readonly logRetention?: RetentionDays;
}

/**
 * The certificate inventory and the CA table, and the inventory workflow that fills the inventory: an EventBridge
 * rule on the certflow bus (`Certificate Issued`, `Certificate Revoked`) starts an Express state machine running the
 * shared ASL file, whose one Task invokes the record-inventory Lambda. Events the rule cannot deliver go to an
 * encrypted dead-letter queue.
 */
export class CertificateInventory extends Construct {
  readonly inventoryTable: CertflowTable;
  readonly caTable: CertflowTable;
  readonly recordInventory: CertflowFunction<typeof InventoryEnv>;
  readonly stateMachine: StateMachine;
  readonly logGroup: LogGroup;
  readonly rule: Rule;
  readonly ruleRole: Role;
  readonly deadLetterQueue: Queue;

  constructor(scope: Construct, id: string, props: CertificateInventoryProps) {
    super(scope, id);
    const logRetention = props.logRetention ?? RetentionDays.THREE_MONTHS;

    this.inventoryTable = new CertflowTable(this, 'Inventory', {
      definition: INVENTORY_TABLE,
      removalPolicy: props.tableRemovalPolicy,
    });
    this.caTable = new CertflowTable(this, 'Cas', { definition: CA_TABLE, removalPolicy: props.tableRemovalPolicy });

    this.recordInventory = new CertflowFunction(this, 'RecordInventory', {
      entry: handlerEntry('sfn-record-inventory'),
      description: 'certflow inventory: record a Certificate Issued or Certificate Revoked event',
      envSchema: InventoryEnv,
      environment: { INVENTORY_TABLE_NAME: this.inventoryTable.tableName },
      memorySize: 256,
      timeout: Duration.seconds(30),
      logRetention,
    });
    // DynamoInventory: putIssued (conditional PutItem), markRevoked (conditional UpdateItem, then a consistent GetItem)
    this.inventoryTable.grant(this.recordInventory, 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:GetItem');

    // the state machine
    const definitionPath = props.definitionPath ?? INVENTORY_DEFINITION_PATH;
    ({ stateMachine: this.stateMachine, logGroup: this.logGroup } = aslStateMachine(this, {
      name: 'inventory',
      comment: 'certflow inventory',
      definitionPath,
      substitutions: { RecordInventoryFunctionArn: this.recordInventory.functionArn },
      type: StateMachineType.EXPRESS,
      // a failed execution is logged with its input (the event: ids, serials and names, never key material), so
      // that it can be found and replayed from the bus archive
      logs: { level: LogLevel.ERROR, includeExecutionData: true },
      logRetention,
      invokes: [this.recordInventory.functionArn],
    }));
    NagSuppressions.addResourceSuppressions(this.stateMachine, [
      {
        id: 'AwsSolutions-SF1',
        reason:
          'An Express execution per issuance or revocation event: level ALL would log every state transition of ' +
          'every event. Level ERROR logs each failed execution with its input; X-Ray traces the rest.',
      },
    ]);

    // the rule: EventBridge starts an execution per matching event, retries, then dead-letters the event
    ({
      rule: this.rule,
      ruleRole: this.ruleRole,
      deadLetterQueue: this.deadLetterQueue,
    } = eventWorkflowRule(this, {
      name: 'inventory',
      description: 'certflow inventory: Certificate Issued and Certificate Revoked → the inventory workflow',
      bus: props.bus.bus,
      eventPattern: props.eventPattern ?? INVENTORY_RULE_PATTERN,
      stateMachine: this.stateMachine,
      ...(props.retryAttempts !== undefined ? { retryAttempts: props.retryAttempts } : {}),
      ...(props.maxEventAge !== undefined ? { maxEventAge: props.maxEventAge } : {}),
    }));
  }
}
