import * as path from 'node:path';
import { Duration, Stack } from 'aws-cdk-lib';
import { Effect, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { LogLevel, StateMachine, StateMachineType } from 'aws-cdk-lib/aws-stepfunctions';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import {
  caCertParameter,
  caChainParameter,
  caKeyParameter,
  caKmsKeyParameter,
} from '../../lambdas/adapters/aws/ca-certificates';
import { ApiRatesSchema, type ApiRatesInput } from '../../lambdas/core/pacing';
import type { SupplierCa } from '../../lambdas/core/ports';
import { BulkEnv } from '../../lambdas/handlers/env';
import { aslStateMachine, grantDistributedMap } from '../asl';
import { arnFinding, objectsFinding } from '../nag';
import { BATCHES_PREFIX, type BatchBucket } from './batch-bucket';
import { CertflowFunction, FunctionEnvironment, handlerEntry, PROJECT_ROOT } from './certflow-function';
import type { CertflowEventBus } from './event-bus';
import type { TaskTable } from './task-table';

/** The bulk-issuance workflow definition, shared with the local runtime. */
export const BULK_DEFINITION_PATH = path.join(PROJECT_ROOT, 'statemachines', 'bulk-issuance.asl.json');

/** Seconds of paced calls a chunk may make: two thirds of IssueChunk's timeout (the rest signs and writes S3). */
export const chunkBudgetSeconds = (issueChunkTimeout: Duration): number =>
  Math.max(1, Math.floor((issueChunkTimeout.toSeconds() * 2) / 3));

export { distributedMapLabels } from '../asl';

export interface BulkIssuanceProps {
  readonly table: TaskTable;
  readonly bucket: BatchBucket;
  readonly bus: CertflowEventBus;
  /** supplier id → CA (the functions' `SUPPLIERS`), default none */
  readonly suppliers?: Readonly<Record<string, SupplierCa>>;
  /** certificates per chunk, default 1000 */
  readonly chunkSize?: number;
  /** chunks signed at once (the Distributed Map's MaxConcurrency, via PlanChunks), default 100 */
  readonly maxConcurrency?: number;
  /** largest batch accepted, default 1,000,000 */
  readonly maxQuantity?: number;
  /** the account's quotas for the paced AWS APIs, calls per second (unset: AWS's defaults) */
  readonly apiRates?: ApiRatesInput;
  /** certificates one ACM Private CA may issue in its lifetime, default 1,000,000 */
  readonly pcaCertificatesPerCa?: number;
  /** where the CA keys live, default 'ssm' (SecureString PEMs) */
  readonly caKeyStore?: 'ssm' | 'kms';
  /** with caKeyStore 'kms': the keys the CAs sign with (kms:Sign and kms:GetPublicKey on these only) */
  readonly caKmsKeyArns?: readonly string[];
  /**
   * IssueChunk's timeout, default 60 s: each chunk runs in an EXPRESS child execution (5 minutes at most), which
   * must hold the first attempt and the ASL's retries (3, backoff up to 30 s).
   */
  readonly issueChunkTimeout?: Duration;
  /** the ASL file, default statemachines/bulk-issuance.asl.json */
  readonly definitionPath?: string;
  /** retention of the functions' and the state machine's log groups, default three months */
  readonly logRetention?: RetentionDays;
}

/**
 * Bulk issuance on AWS: the five workflow Lambdas and the Standard state machine that runs the shared ASL file
 * (plan → Distributed Map of chunks → assemble → complete → delete the chunks' files, or record the failure). Every placeholder of the ASL
 * is substituted; a placeholder without a value (or a value without a placeholder) fails the synth.
 */
export class BulkIssuance extends Construct {
  /** the environment shared by the bulk functions (the API adds the state machine ARN to it) */
  readonly environment: FunctionEnvironment<typeof BulkEnv>;
  readonly planChunks: CertflowFunction<typeof BulkEnv>;
  readonly issueChunk: CertflowFunction<typeof BulkEnv>;
  readonly assembleZip: CertflowFunction<typeof BulkEnv>;
  readonly recordFailure: CertflowFunction<typeof BulkEnv>;
  readonly deleteChunkFiles: CertflowFunction<typeof BulkEnv>;
  readonly stateMachine: StateMachine;
  readonly logGroup: LogGroup;

  constructor(scope: Construct, id: string, props: BulkIssuanceProps) {
    super(scope, id);
    const { table, bucket, bus } = props;
    const caKeyStore = props.caKeyStore ?? 'ssm';
    const kmsKeys = props.caKmsKeyArns ?? [];
    const issueChunkTimeout = props.issueChunkTimeout ?? Duration.seconds(60);
    if (caKeyStore === 'kms' && kmsKeys.length === 0) {
      throw new Error(`${this.node.path}: caKeyStore 'kms' needs caKmsKeyArns (kms:Sign is granted on those only)`);
    }

    this.environment = {
      TASK_TABLE_NAME: table.tableName,
      BUCKET_NAME: bucket.bucketName,
      EVENT_BUS_NAME: bus.eventBusName,
      SUPPLIERS: JSON.stringify(props.suppliers ?? {}),
      CA_KEY_STORE: caKeyStore,
      CHUNK_SIZE: String(props.chunkSize ?? 1000),
      MAX_CONCURRENCY: String(props.maxConcurrency ?? 100),
      MAX_QUANTITY: String(props.maxQuantity ?? 1_000_000),
      API_RATES: JSON.stringify(ApiRatesSchema.parse(props.apiRates ?? {})),
      // paced chunks are sized to finish their paced calls in the timeout less a margin for signing and S3
      CHUNK_BUDGET_SECONDS: String(chunkBudgetSeconds(issueChunkTimeout)),
      PCA_CERTIFICATES_PER_CA: String(props.pcaCertificatesPerCa ?? 1_000_000),
    };
    const logRetention = props.logRetention ?? RetentionDays.THREE_MONTHS;
    const bulkFunction = (fid: string, entry: string, description: string, memorySize: number, timeout: Duration) =>
      new CertflowFunction(this, fid, {
        entry: handlerEntry(entry),
        description,
        envSchema: BulkEnv,
        environment: this.environment,
        memorySize,
        timeout,
        logRetention,
      });

    // PlanChunks: GetItem (the task), BatchGetItem (its done shards), UpdateItem (pending → in_progress)
    this.planChunks = bulkFunction(
      'PlanChunks',
      'sfn-plan-chunks',
      'certflow bulk issuance: mark the task in progress, list its chunks',
      256,
      Duration.seconds(30),
    );
    table.grant(this.planChunks, 'dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:UpdateItem');

    // IssueChunk: one full vCPU (1769 MB) for key generation and signing
    this.issueChunk = bulkFunction(
      'IssueChunk',
      'sfn-issue-chunk',
      'certflow bulk issuance: generate keys and sign one chunk, write its zip and manifest',
      1769,
      issueChunkTimeout,
    );
    bucket.grantBatchObjects(this.issueChunk, 's3:GetObject', 's3:PutObject');
    bucket.grantList(this.issueChunk);
    // GetItem/UpdateItem: the chunk's done shard, the rate schedules, giving a chunk lease back; PutItem: taking a
    // chunk lease
    table.grant(this.issueChunk, 'dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:PutItem');
    bus.grantPutEvents(this.issueChunk);
    this.grantCaKeys(this.issueChunk, caKeyStore, kmsKeys);
    this.grantExternalCas(this.issueChunk, props.suppliers ?? {});

    this.assembleZip = bulkFunction(
      'AssembleZip',
      'sfn-assemble-zip',
      'certflow bulk issuance: stream the chunk zips into the batch zip',
      1024,
      Duration.minutes(15),
    );
    // the multipart upload: PutObject covers Create/UploadPart/Complete; a failed upload is aborted
    bucket.grantBatchObjects(this.assembleZip, 's3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload');
    bucket.grantList(this.assembleZip);
    table.grant(this.assembleZip, 'dynamodb:GetItem', 'dynamodb:BatchGetItem'); // the task and its done shards

    this.recordFailure = bulkFunction(
      'RecordFailure',
      'sfn-record-batch-failure',
      "certflow bulk issuance: mark the task failed with its reason, delete any zip and the chunks' files, emit Batch Failed",
      256,
      // DeleteObjects of five keys per chunk, 1,000 a request: ~100 requests at 20,000 chunks
      Duration.minutes(5),
    );
    bucket.grantBatchObjects(this.recordFailure, 's3:DeleteObject');
    table.grant(this.recordFailure, 'dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:UpdateItem');
    bus.grantPutEvents(this.recordFailure);

    // DeleteChunkFiles: DeleteObjects of the chunks' files (s3:DeleteObject under batches/ only); no table access
    this.deleteChunkFiles = bulkFunction(
      'DeleteChunkFiles',
      'sfn-delete-chunk-files',
      "certflow bulk issuance: delete the chunks' files (they hold private keys) once the batch zip is complete",
      256,
      Duration.minutes(5),
    );
    bucket.grantBatchObjects(this.deleteChunkFiles, 's3:DeleteObject');

    for (const fn of [this.issueChunk, this.assembleZip, this.recordFailure, this.deleteChunkFiles]) {
      NagSuppressions.addResourceSuppressions(
        fn.role,
        [
          {
            id: 'AwsSolutions-IAM5',
            reason:
              'Batch objects are keyed batches/{taskId}/... with task ids made at request time: the grant is limited ' +
              'to the batches/ prefix and to the object actions the function calls.',
            appliesTo: [objectsFinding(BATCHES_PREFIX)],
          },
        ],
        true,
      );
    }

    // the state machine
    const definitionPath = props.definitionPath ?? BULK_DEFINITION_PATH;
    const workflowFunctions = [
      this.planChunks,
      this.issueChunk,
      this.assembleZip,
      this.recordFailure,
      this.deleteChunkFiles,
    ];
    const built = aslStateMachine(this, {
      name: 'bulk-issuance',
      comment: 'certflow bulk issuance',
      definitionPath,
      substitutions: {
        PlanChunksFunctionArn: this.planChunks.functionArn,
        IssueChunkFunctionArn: this.issueChunk.functionArn,
        AssembleZipFunctionArn: this.assembleZip.functionArn,
        RecordFailureFunctionArn: this.recordFailure.functionArn,
        DeleteChunkFilesFunctionArn: this.deleteChunkFiles.functionArn,
        TaskTableName: table.tableName,
        EventBusName: bus.eventBusName,
      },
      type: StateMachineType.STANDARD,
      // chunk payloads carry ids only, but execution data stays out of the logs all the same
      logs: { level: LogLevel.ALL, includeExecutionData: false },
      logRetention,
      // the Task states: lambda:invoke (unqualified ARNs), dynamodb:updateItem, events:putEvents
      invokes: workflowFunctions.map((f) => f.functionArn),
    });
    ({ stateMachine: this.stateMachine, logGroup: this.logGroup } = built);
    const definition = built.definition;
    table.grant(this.stateMachine, 'dynamodb:UpdateItem');
    bus.grantPutEvents(this.stateMachine);

    grantDistributedMap(this, this.stateMachine, definition);
  }

  /** Suppliers signed by ACM Private CA (those CAs only) or by AWS IoT's own CA (CreateKeysAndCertificate). */
  private grantExternalCas(fn: CertflowFunction, suppliers: Record<string, SupplierCa>): void {
    const pcaArns = [...new Set(Object.values(suppliers).flatMap((ca) => (ca.type === 'acm-pca' ? [ca.arn] : [])))];
    if (pcaArns.length > 0) {
      fn.addToRolePolicy(
        new PolicyStatement({
          actions: ['acm-pca:IssueCertificate', 'acm-pca:GetCertificate', 'acm-pca:DescribeCertificateAuthority'],
          resources: pcaArns,
        }),
      );
    }
    if (Object.values(suppliers).some((ca) => ca.type === 'aws-iot')) {
      fn.addToRolePolicy(new PolicyStatement({ actions: ['iot:CreateKeysAndCertificate'], resources: ['*'] }));
      NagSuppressions.addResourceSuppressions(
        fn.role,
        [
          {
            id: 'AwsSolutions-IAM5',
            reason:
              'iot:CreateKeysAndCertificate supports no resource-level permission (the certificate does not exist ' +
              'yet); granted only when a supplier is mapped to AwsIotDefault.',
            appliesTo: ['Resource::*'],
          },
        ],
        true,
      );
    }
  }

  /** IssueChunk reads the CA: certificate from AWS IoT, key from SSM (SecureString) or KMS, chain from SSM. */
  private grantCaKeys(fn: CertflowFunction, caKeyStore: 'ssm' | 'kms', kmsKeys: readonly string[]): void {
    const stack = Stack.of(this);
    const parameter = (name: string) => stack.formatArn({ service: 'ssm', resource: 'parameter', resourceName: name });
    // SsmCaKeyStore reads the certificate of a CA certflow created from cdf-ca-cert-{caId} (absent: AWS IoT's
    // DescribeCACertificate, CDF's CAs); without the grant SSM answers AccessDenied, not ParameterNotFound
    const names =
      caKeyStore === 'ssm'
        ? [caKeyParameter('*'), caCertParameter('*'), caChainParameter('*')]
        : [caKmsKeyParameter('*'), caChainParameter('*')];
    fn.addToRolePolicy(new PolicyStatement({ actions: ['ssm:GetParameter'], resources: names.map(parameter) }));
    if (caKeyStore === 'ssm') {
      // SecureString decryption happens in KMS on SSM's behalf: only through SSM, in this region
      fn.addToRolePolicy(
        new PolicyStatement({
          actions: ['kms:Decrypt'],
          resources: [stack.formatArn({ service: 'kms', resource: 'key', resourceName: '*' })],
          conditions: { StringEquals: { 'kms:ViaService': `ssm.${stack.region}.${stack.urlSuffix}` } },
        }),
      );
    } else {
      fn.addToRolePolicy(new PolicyStatement({ actions: ['kms:Sign', 'kms:GetPublicKey'], resources: [...kmsKeys] }));
    }
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['iot:DescribeCACertificate'],
        resources: [stack.formatArn({ service: 'iot', resource: 'cacert', resourceName: '*' })],
      }),
    );
    fn.addToRolePolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: ['iot:RegisterCertificate', 'iot:RegisterCertificateWithoutCA', 'iot:DescribeCertificate'],
        resources: [stack.formatArn({ service: 'iot', resource: 'cert', resourceName: '*' })],
      }),
    );
    NagSuppressions.addResourceSuppressions(
      fn.role,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'CA ids come from the SUPPLIERS configuration at run time; the grant is limited to the SSM parameter ' +
            'names the CA key stores read (cdf-ca-key-* and cdf-ca-cert-*, or cdf-ca-kms-key-*; cdf-ca-chain-*), ' +
            'GetParameter only.',
          appliesTo: names.map((name) => arnFinding('ssm', `parameter/${name}`)),
        },
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'AWS IoT certificate ids are SHA-256 hashes of certificates that do not exist before the chunk signs ' +
            'them, and CA ids come from configuration: cert/* and cacert/* of this account and region only.',
          appliesTo: [arnFinding('iot', 'cert/*'), arnFinding('iot', 'cacert/*')],
        },
        ...(caKeyStore === 'ssm'
          ? [
              {
                id: 'AwsSolutions-IAM5',
                reason:
                  'The CA key SecureStrings may use aws/ssm or any customer managed key; kms:Decrypt is usable only ' +
                  'through SSM in this region (kms:ViaService condition), i.e. for the parameters granted above.',
                appliesTo: [arnFinding('kms', 'key/*')],
              },
            ]
          : []),
      ],
      true,
    );
  }
}
