import { CfnOutput, Duration, Stack, StackProps } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { DeployConfig, loadDeployConfig } from './config';
import { BatchBucket } from './constructs/batch-bucket';
import { BulkApi } from './constructs/bulk-api';
import { BulkIssuance } from './constructs/bulk-issuance';
import { CertflowEventBus } from './constructs/event-bus';
import { TaskTable } from './constructs/task-table';

export interface CertflowStackProps extends StackProps {
  /** the deploy configuration; default read from the CDK context (see lib/config.ts) */
  readonly config?: DeployConfig;
}

/** The certflow stack: it only composes the constructs of lib/constructs, one per capability. */
export class CertflowStack extends Stack {
  readonly config: DeployConfig;
  readonly table: TaskTable;
  readonly bucket: BatchBucket;
  readonly bus: CertflowEventBus;
  readonly bulkIssuance: BulkIssuance;
  readonly bulkApi: BulkApi;

  constructor(scope: Construct, id: string, props: CertflowStackProps = {}) {
    super(scope, id, props);
    const config = props.config ?? loadDeployConfig(this.node);
    this.config = config;

    this.table = new TaskTable(this, 'Tasks');
    this.bucket = new BatchBucket(this, 'Batches', { expireBatchesAfterDays: config.lifecycleDays });
    this.bus = new CertflowEventBus(this, 'Events', {
      eventBusName: config.eventBusName,
      archiveRetention: Duration.days(config.eventArchiveDays),
    });
    this.bulkIssuance = new BulkIssuance(this, 'BulkIssuance', {
      table: this.table,
      bucket: this.bucket,
      bus: this.bus,
      suppliers: config.suppliers,
      chunkSize: config.chunkSize,
      maxConcurrency: config.maxConcurrency,
      maxQuantity: config.maxQuantity,
      caKeyStore: config.caKeyStore,
      caKmsKeyArns: config.caKmsKeyArns,
    });
    this.bulkApi = new BulkApi(this, 'BulkApi', {
      table: this.table,
      bucket: this.bucket,
      stateMachine: this.bulkIssuance.stateMachine,
      environment: this.bulkIssuance.environment,
    });

    new CfnOutput(this, 'ApiUrl', { value: this.bulkApi.url, description: 'bulk issuance REST API (IAM auth)' });
    new CfnOutput(this, 'BatchBucketName', { value: this.bucket.bucketName });
    new CfnOutput(this, 'TaskTableName', { value: this.table.tableName });
    new CfnOutput(this, 'EventBusName', { value: this.bus.eventBusName });
    new CfnOutput(this, 'BulkStateMachineArn', { value: this.bulkIssuance.stateMachine.stateMachineArn });
  }
}
