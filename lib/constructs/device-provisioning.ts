import * as path from 'node:path';
import { Duration, Stack } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { LogLevel, StateMachine, StateMachineType } from 'aws-cdk-lib/aws-stepfunctions';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { ApiRatesSchema, type ApiRatesInput } from '../../lambdas/core/pacing';
import { TEMPLATES_PREFIX } from '../../lambdas/core/provisioning/service';
import { ProvisioningApiEnv, ProvisioningEnv } from '../../lambdas/handlers/env';
import { PROVISIONING_BODY_SCHEMAS, PROVISIONING_ROUTES } from '../../lambdas/handlers/routes';
import type { Route } from '../../lambdas/handlers/http';
import { aslStateMachine, grantDistributedMap } from '../asl';
import { arnFinding, objectsFinding } from '../nag';
import { BULK_PROVISIONING_PREFIX, CERTIFICATES_PREFIX, type BatchBucket } from './batch-bucket';
import type { CaHierarchy } from './ca-hierarchy';
import { CertflowFunction, FunctionEnvironment, handlerEntry, PROJECT_ROOT } from './certflow-function';
import type { CertflowEventBus } from './event-bus';
import type { CertificateInventory } from './inventory';
import type { TaskTable } from './task-table';

/** The bulk-provisioning workflow definition, shared with the local runtime. */
export const PROVISIONING_DEFINITION_PATH = path.join(PROJECT_ROOT, 'statemachines', 'provisioning.asl.json');
/** `bulkprovisioning/`: a bulk task's objects (task, request, items, results) */
export { BULK_PROVISIONING_PREFIX };

export { PROVISIONING_BODY_SCHEMAS } from '../../lambdas/handlers/routes';

export interface DeviceProvisioningProps {
  readonly bucket: BatchBucket;
  readonly bus: CertflowEventBus;
  readonly inventory: CertificateInventory;
  readonly caHierarchy: CaHierarchy;
  /** the table of the deployment-wide rate schedule (the task table, shared with bulk issuance and rotation) */
  readonly rateLimitTable: TaskTable;
  /** the account's quotas for the paced AWS APIs (AWS IoT, ACM PCA, KMS); unset APIs keep AWS's defaults */
  readonly apiRates?: ApiRatesInput;
  /** where the certflow CA keys are (`createDeviceCertificate`, CSR_CA_ID), default 'ssm' */
  readonly caKeyStore?: 'ssm' | 'kms';
  /** with caKeyStore 'kms': the keys the CAs sign with (kms:Sign and kms:GetPublicKey on these only) */
  readonly caKmsKeyArns?: readonly string[];
  /** CDF's `PCA_{ALIAS}` (ACM PCA ARNs) and `CA_{ALIAS}` (AWS IoT CA ids) settings, alias → value */
  readonly pcaAliases?: Readonly<Record<string, string>>;
  readonly caAliases?: Readonly<Record<string, string>>;
  /** a certflow CA that signs template CSRs RegisterThing cannot run; default none */
  readonly csrCaId?: string;
  /** parameter sets per chunk, default 100 */
  readonly chunkSize?: number;
  /** chunks at once, default 10 */
  readonly maxConcurrency?: number;
  readonly logRetention?: RetentionDays;
}

/**
 * Device provisioning on AWS: the provisioning API function (templates in the bucket under `templates/`, POST
 * /things, bulk tasks), the bulk-provisioning workflow (Standard state machine from provisioning.asl.json with a
 * Distributed Map of Express children) and its four functions. IoT grants are the registry calls provisioning makes
 * (things, certificates, policies, thing groups, RegisterThing), CA keys read-only from the configured store (SSM
 * SecureStrings, or the KMS CA keys: kms:Sign on those only), ACM PCA on the aliased CAs only. The functions that
 * call AWS IoT and ACM PCA (the API and ProvisionChunk) pace on the deployment-wide rate schedule in the task table.
 */
export class DeviceProvisioning extends Construct {
  readonly environment: FunctionEnvironment<typeof ProvisioningEnv>;
  readonly api: CertflowFunction<typeof ProvisioningApiEnv>;
  readonly plan: CertflowFunction<typeof ProvisioningEnv>;
  readonly provisionChunk: CertflowFunction<typeof ProvisioningEnv>;
  readonly finish: CertflowFunction<typeof ProvisioningEnv>;
  readonly recordFailure: CertflowFunction<typeof ProvisioningEnv>;
  readonly stateMachine: StateMachine;
  readonly routes: readonly Route[] = PROVISIONING_ROUTES;
  readonly bodySchemas = PROVISIONING_BODY_SCHEMAS;

  constructor(scope: Construct, id: string, props: DeviceProvisioningProps) {
    super(scope, id);
    const { bucket, bus, inventory, caHierarchy } = props;
    const logRetention = props.logRetention ?? RetentionDays.THREE_MONTHS;
    const caKeyStore = props.caKeyStore ?? 'ssm';
    if (caKeyStore === 'kms' && (props.caKmsKeyArns ?? []).length === 0) {
      throw new Error(`${this.node.path}: caKeyStore 'kms' needs caKmsKeyArns (kms:Sign is granted on those only)`);
    }
    const aliasEnv: Record<string, string> = {};
    for (const [alias, arn] of Object.entries(props.pcaAliases ?? {})) aliasEnv[`PCA_${alias.toUpperCase()}`] = arn;
    for (const [alias, caId] of Object.entries(props.caAliases ?? {})) aliasEnv[`CA_${alias.toUpperCase()}`] = caId;
    this.environment = {
      BUCKET_NAME: bucket.bucketName,
      EVENT_BUS_NAME: bus.eventBusName,
      CA_TABLE_NAME: inventory.caTable.tableName,
      CA_KEY_STORE: caKeyStore,
      DEFAULT_DAYS_EXPIRY: '365',
      CSR_CA_ID: props.csrCaId ?? '',
      PROVISIONING_CHUNK_SIZE: String(props.chunkSize ?? 100),
      PROVISIONING_MAX_CONCURRENCY: String(props.maxConcurrency ?? 10),
      PROVISIONING_MAX_ITEMS: '100000',
      RATE_LIMIT_TABLE_NAME: props.rateLimitTable.tableName,
      API_RATES: JSON.stringify(ApiRatesSchema.parse(props.apiRates ?? {})),
    };
    const fn = <S extends typeof ProvisioningEnv | typeof ProvisioningApiEnv>(
      name: string,
      entry: string,
      description: string,
      envSchema: S,
      environment: FunctionEnvironment<S>,
      timeout: Duration,
    ) =>
      new CertflowFunction(this, name, {
        entry: handlerEntry(entry),
        description,
        envSchema,
        environment: { ...environment, ...aliasEnv },
        timeout,
        logRetention,
      });

    this.plan = fn(
      'PlanProvisioning',
      'sfn-plan-provisioning',
      'certflow bulk provisioning: plan the chunks',
      ProvisioningEnv,
      this.environment,
      Duration.seconds(30),
    );
    this.provisionChunk = fn(
      'ProvisionChunk',
      'sfn-provision-chunk',
      'certflow bulk provisioning: provision one chunk of things',
      ProvisioningEnv,
      this.environment,
      // an EXPRESS child runs 5 minutes at most
      Duration.minutes(4),
    );
    this.finish = fn(
      'FinishProvisioning',
      'sfn-finish-provisioning',
      'certflow bulk provisioning: count results, per-item errors',
      ProvisioningEnv,
      this.environment,
      Duration.minutes(2),
    );
    this.recordFailure = fn(
      'RecordProvisioningFailure',
      'sfn-record-provisioning-failure',
      'certflow bulk provisioning: record a failed task',
      ProvisioningEnv,
      this.environment,
      Duration.seconds(30),
    );

    let definition: string;
    ({ stateMachine: this.stateMachine, definition } = aslStateMachine(this, {
      name: 'provisioning',
      comment: 'certflow bulk provisioning: one template, many parameter sets, per-item results',
      definitionPath: PROVISIONING_DEFINITION_PATH,
      substitutions: {
        PlanProvisioningFunctionArn: this.plan.functionArn,
        ProvisionChunkFunctionArn: this.provisionChunk.functionArn,
        FinishProvisioningFunctionArn: this.finish.functionArn,
        RecordProvisioningFailureFunctionArn: this.recordFailure.functionArn,
      },
      // a Distributed Map runs in a Standard parent; its children are Express
      type: StateMachineType.STANDARD,
      // parameter sets and results stay out of the logs (includeExecutionData false)
      logs: { level: LogLevel.ALL, includeExecutionData: false },
      logRetention,
      invokes: [this.plan, this.provisionChunk, this.finish, this.recordFailure].map((f) => f.functionArn),
    }));
    grantDistributedMap(this, this.stateMachine, definition);

    this.api = new CertflowFunction(this, 'Api', {
      entry: handlerEntry('api-provisioning'),
      description: 'certflow REST API: provisioning templates, things, bulk provisioning tasks',
      envSchema: ProvisioningApiEnv,
      environment: {
        ...this.environment,
        ...aliasEnv,
        PROVISIONING_STATE_MACHINE_ARN: this.stateMachine.stateMachineArn,
      },
      timeout: Duration.seconds(29),
      logRetention,
    });
    this.stateMachine.grantStartExecution(this.api);

    // objects: templates (API: read/write; chunks: read through the task's snapshot), bulk task objects, the PEMs
    bucket.grantObjects(
      this.api,
      [TEMPLATES_PREFIX, BULK_PROVISIONING_PREFIX, CERTIFICATES_PREFIX],
      's3:GetObject',
      's3:PutObject',
    );
    for (const f of [this.plan, this.provisionChunk, this.finish, this.recordFailure]) {
      bucket.grantObjects(f, [BULK_PROVISIONING_PREFIX], 's3:GetObject', 's3:PutObject');
      bucket.grantList(f);
    }
    // a finished task's saved progress (keys certflow made) and partial results are deleted
    for (const f of [this.finish, this.recordFailure])
      bucket.grantObjects(f, [BULK_PROVISIONING_PREFIX], 's3:DeleteObject');
    bucket.grantObjects(this.provisionChunk, [CERTIFICATES_PREFIX], 's3:PutObject');
    bucket.grantList(this.api);

    for (const f of [this.api, this.provisionChunk]) {
      this.grantProvisioning(f, props);
      if (caKeyStore === 'kms') caHierarchy.grantKmsCaKeys(f, props.caKmsKeyArns ?? []);
      else caHierarchy.grantCaKeyStore(f, 'read');
      inventory.caTable.grant(f, 'dynamodb:GetItem');
      bus.grantPutEvents(f);
      // the paced calls (AWS IoT, ACM PCA, KMS Sign) take slots of the shared schedule: its rate#{api} items only
      props.rateLimitTable.grantRateSchedule(f);
    }
    for (const f of [this.api, this.plan, this.provisionChunk, this.finish, this.recordFailure]) {
      NagSuppressions.addResourceSuppressions(
        f.role,
        [
          {
            id: 'AwsSolutions-IAM5',
            reason:
              'Objects are keyed by ids made at run time: templates/{templateId}.json, bulkprovisioning/{taskId}/…, ' +
              'certificates/{certificateId}.pem; Get/PutObject under those prefixes only.',
            appliesTo: [TEMPLATES_PREFIX, BULK_PROVISIONING_PREFIX, CERTIFICATES_PREFIX].map(objectsFinding),
          },
        ],
        true,
      );
    }
  }

  /** The AWS IoT registry calls of provisioning (IotDeviceRegistry, RegisterThing) and ACM PCA on aliased CAs. */
  private grantProvisioning(f: CertflowFunction, props: DeviceProvisioningProps): void {
    const stack = Stack.of(this);
    const iot = (resource: string) => stack.formatArn({ service: 'iot', resource, resourceName: '*' });
    f.addToRolePolicy(
      new PolicyStatement({
        actions: [
          'iot:CreateThing',
          'iot:DescribeThing',
          'iot:UpdateThing',
          'iot:ListThingGroupsForThing',
          'iot:AddThingToThingGroup',
          'iot:AttachThingPrincipal',
        ],
        resources: [iot('thing'), iot('thinggroup'), iot('thingtype'), iot('cert')],
      }),
    );
    f.addToRolePolicy(
      new PolicyStatement({
        actions: [
          'iot:RegisterCertificate',
          'iot:RegisterCertificateWithoutCA',
          'iot:DescribeCertificate',
          'iot:UpdateCertificate',
          'iot:AttachPolicy',
        ],
        resources: [iot('cert')],
      }),
    );
    f.addToRolePolicy(
      new PolicyStatement({
        actions: ['iot:CreatePolicy', 'iot:GetPolicy', 'iot:AttachPolicy'],
        resources: [iot('policy')],
      }),
    );
    // RegisterThing has no resource type of its own; the calls it makes need the grants above
    f.addToRolePolicy(new PolicyStatement({ actions: ['iot:RegisterThing'], resources: ['*'] }));
    const pcas = Object.values(props.pcaAliases ?? {});
    if (pcas.length > 0) {
      f.addToRolePolicy(
        new PolicyStatement({
          actions: ['acm-pca:IssueCertificate', 'acm-pca:GetCertificate', 'acm-pca:DescribeCertificateAuthority'],
          resources: pcas,
        }),
      );
    }
    NagSuppressions.addResourceSuppressions(
      f.role,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'Provisioning creates things, certificates and policies whose names come from templates and parameters ' +
            'at run time: the registry actions it makes on thing/*, thinggroup/*, thingtype/*, cert/* and policy/* ' +
            'of this account and region only (no deletes).',
          appliesTo: ['thing/*', 'thinggroup/*', 'thingtype/*', 'cert/*', 'policy/*'].map((r) => arnFinding('iot', r)),
        },
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'iot:RegisterThing has no resource-level permission (AWS IoT runs the template with the caller\u2019s ' +
            'other iot: permissions, granted above on this account\u2019s resources).',
          appliesTo: ['Resource::*'],
        },
      ],
      true,
    );
  }
}
