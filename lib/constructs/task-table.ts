import type { Construct } from 'constructs';
import { TASK_TABLE } from '../../lambdas/adapters/aws/tables';
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
}
