import { Effect, type IGrantable, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import { rateLimitPk } from '../../lambdas/adapters/aws/dynamo-rate-limiter';
import { TASK_TABLE } from '../../lambdas/adapters/aws/tables';
import type { RateLimitedApi } from '../../lambdas/core/ports';
import { CertflowTable, CertflowTableProps, TableAction } from './certflow-table';

/** The DynamoDB actions on the task table (the actions of any certflow table). */
export type TaskTableAction = TableAction;

export interface TaskTableProps extends Partial<CertflowTableProps> {
  /** the plain definition shared with the local runtime, default TASK_TABLE */
  readonly definition?: CertflowTableProps['definition'];
}

/**
 * The bulk-issuance task table: a CertflowTable of `TASK_TABLE` (tasks and their idempotency keys, index
 * `byStatus`).
 */
export class TaskTable extends CertflowTable {
  constructor(scope: Construct, id: string, props: TaskTableProps = {}) {
    super(scope, id, { ...props, definition: props.definition ?? TASK_TABLE });
  }

  /**
   * What DynamoRateLimiter does on the deployment-wide rate schedule: a consistent GetItem and a conditional
   * UpdateItem, on its items only (`pk = rate#{api}`, every API), and the table key's matching use if it has one.
   */
  grantRateSchedule(grantee: IGrantable): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
        resources: [this.table.tableArn],
        conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [rateLimitPk('*' as RateLimitedApi)] } },
      }),
    );
    this.table.encryptionKey?.grantEncryptDecrypt(grantee);
  }
}
