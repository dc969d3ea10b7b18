import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { Duration, Stack } from 'aws-cdk-lib';
import type { TaskTable } from './task-table';
import { Effect, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { CfnPolicy, CfnTopicRule } from 'aws-cdk-lib/aws-iot';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { LogLevel, StateMachine, StateMachineType } from 'aws-cdk-lib/aws-stepfunctions';
import {
  AwsCustomResource,
  AwsCustomResourcePolicy,
  PhysicalResourceId,
  type AwsSdkCall,
} from 'aws-cdk-lib/custom-resources';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import {
  DEFAULT_ROTATION_DEVICE_POLICY_NAME,
  rotationDevicePolicyDocument,
} from '../../lambdas/core/rotation/device-policy';
import { packageKey } from '../../lambdas/core/rotation/service';
import {
  DEFAULT_ROTATION_TOPIC_PREFIX,
  rotationJobDocument,
  rotationTopics,
  type RotationAction,
  type RotationTopics,
} from '../../lambdas/core/rotation/topics';
import { ApiRatesSchema, type ApiRatesInput } from '../../lambdas/core/pacing';
import { RotationEnv, SigningCaSchema, type SigningCa } from '../../lambdas/handlers/env';
import { aslStateMachine } from '../asl';
import { arnFinding, objectsFinding } from '../nag';
import type { BatchBucket } from './batch-bucket';
import type { CaHierarchy } from './ca-hierarchy';
import { CertflowFunction, FunctionEnvironment, handlerEntry, PROJECT_ROOT } from './certflow-function';
import type { CertflowEventBus } from './event-bus';

export const ROTATION_GET_DEFINITION_PATH = path.join(PROJECT_ROOT, 'statemachines', 'rotation-get.asl.json');
export const ROTATION_ACK_DEFINITION_PATH = path.join(PROJECT_ROOT, 'statemachines', 'rotation-ack.asl.json');

/** The folder of the pre-created packages (`certificates/{thingName}.zip`), from the key the core reads. */
export const PACKAGES_PREFIX = `${packageKey('-').split('/')[0]}/`;

export interface CertificateRotationProps {
  readonly caHierarchy: CaHierarchy;
  readonly bucket: BatchBucket;
  readonly bus: CertflowEventBus;
  /** default `cdf/certificates` */
  readonly topicPrefix?: string;
  /** the CA that signs rotated certificates: a certflow CA (key in SSM) or an ACM Private CA (as the provider's) */
  readonly ca?: SigningCa;
  /** the table of the deployment-wide rate schedule (the task table, shared with bulk issuance) */
  readonly rateLimitTable: TaskTable;
  /** the AWS quotas rotation's AWS IoT and ACM PCA calls pace to (default: AWS's default quotas) */
  readonly apiRates?: ApiRatesInput;
  /** default 1095 (CDF) */
  readonly validityDays?: number;
  /** the device policy this construct creates, attached to rotated certificates without a previous one */
  readonly rotatedCertificatePolicyName?: string;
  /** ack: detach and delete the previous certificate(s); default false */
  readonly deletePreviousCertificate?: boolean;
  /** approve only things that exist in the registry; default true */
  readonly requireRegisteredThing?: boolean;
  /** register rotated certificates with their CA certificate; default true */
  readonly registerWithCa?: boolean;
  /** AWS IoT jobs started per minute by the continuous rotation job (CDF: 120) */
  readonly jobMaximumPerMinute?: number;
  /** retention of the log groups, default three months */
  readonly logRetention?: RetentionDays;
}

type RotationFunction = CertflowFunction<typeof RotationEnv>;

/**
 * Certificate rotation over MQTT on AWS (CDF's certificate vendor): two IoT topic rules (`{prefix}/+/get`,
 * `{prefix}/+/ack`, CDF's SQL) start two Express state machines from the shared ASL files, whose Lambdas approve the
 * device, sign or vend, reply with IoT Data Publish, roll back and retire the previous certificate. Also the IoT
 * policy that keeps each device on its own topics and the continuous IoT job on the rotation thing group.
 */
export class CertificateRotation extends Construct {
  readonly topics: RotationTopics;
  readonly environment: FunctionEnvironment<typeof RotationEnv>;
  readonly approve: RotationFunction;
  readonly vend: RotationFunction;
  readonly reply: RotationFunction;
  readonly rollback: RotationFunction;
  readonly acknowledge: RotationFunction;
  readonly getStateMachine: StateMachine;
  readonly ackStateMachine: StateMachine;
  readonly getRule: CfnTopicRule;
  readonly ackRule: CfnTopicRule;
  readonly ruleRole: Role;
  readonly ruleErrors: LogGroup;
  readonly devicePolicy: CfnPolicy;
  readonly job: AwsCustomResource;
  readonly jobId: string;

  constructor(scope: Construct, id: string, props: CertificateRotationProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const { caHierarchy, bucket, bus } = props;
    const logRetention = props.logRetention ?? RetentionDays.THREE_MONTHS;
    const prefix = props.topicPrefix ?? DEFAULT_ROTATION_TOPIC_PREFIX;
    this.topics = rotationTopics(prefix);
    const deletePrevious = props.deletePreviousCertificate ?? false;
    const policyName = props.rotatedCertificatePolicyName ?? DEFAULT_ROTATION_DEVICE_POLICY_NAME;
    const iotArn = (resource: string, resourceName: string) =>
      stack.formatArn({ service: 'iot', resource, resourceName });
    const certs = iotArn('cert', '*');
    const things = iotArn('thing', '*');
    const policies = iotArn('policy', '*');
    const group = caHierarchy.rotationThingGroupArn;

    this.environment = {
      BUCKET_NAME: bucket.bucketName,
      EVENT_BUS_NAME: bus.eventBusName,
      ROTATION_TOPIC_PREFIX: prefix,
      ROTATION_THING_GROUP: caHierarchy.rotationThingGroupName,
      ROTATION_SIGNING_CA: props.ca ? JSON.stringify(SigningCaSchema.parse(props.ca)) : '',
      RATE_LIMIT_TABLE_NAME: props.rateLimitTable.table.tableName,
      API_RATES: JSON.stringify(ApiRatesSchema.parse(props.apiRates ?? {})),
      CA_KEY_STORE: 'ssm',
      ROTATION_VALIDITY_DAYS: String(props.validityDays ?? 1095),
      ROTATED_CERTIFICATE_POLICY_NAME: policyName,
      DELETE_PREVIOUS_CERTIFICATE: String(deletePrevious),
      ROTATION_REQUIRE_THING: String(props.requireRegisteredThing ?? true),
      ROTATION_REGISTER_WITH_CA: String(props.registerWithCa ?? true),
    };
    const fn = (name: string, entry: string, description: string) =>
      new CertflowFunction(this, name, {
        entry: handlerEntry(entry),
        description,
        envSchema: RotationEnv,
        environment: this.environment,
        memorySize: 512,
        timeout: Duration.seconds(25),
        logRetention,
      });
    const allow = (target: RotationFunction, actions: string[], resources: string[]) =>
      target.addToRolePolicy(new PolicyStatement({ effect: Effect.ALLOW, actions, resources }));

    // ApproveDevice: DescribeThing, ListThingGroupsForThing
    this.approve = fn(
      'ApproveDevice',
      'sfn-rotation-approve',
      'certflow rotation: the device is in the rotation group',
    );
    allow(this.approve, ['iot:DescribeThing', 'iot:ListThingGroupsForThing'], [things]);

    // SignCertificate / ActivatePackagedCertificate, with the undo of a half-done rotation
    this.vend = fn('VendCertificate', 'sfn-rotation-vend', 'certflow rotation: sign the CSR or vend the package');
    allow(
      this.vend,
      [
        'iot:DescribeCertificate',
        'iot:RegisterCertificate',
        'iot:RegisterCertificateWithoutCA',
        'iot:UpdateCertificate',
        'iot:DeleteCertificate',
        'iot:ListPrincipalThings',
        'iot:ListAttachedPolicies',
      ],
      [certs],
    );
    allow(this.vend, ['iot:AttachThingPrincipal', 'iot:DetachThingPrincipal', 'iot:UpdateThing'], [things]);
    allow(this.vend, ['iot:AttachPolicy', 'iot:DetachPolicy'], [policies, certs]);
    bucket.grantObjects(this.vend, [PACKAGES_PREFIX], 's3:GetObject');
    bucket.grantList(this.vend);
    bus.grantPutEvents(this.vend);
    if (props.ca?.type === 'acm-pca') {
      allow(
        this.vend,
        ['acm-pca:IssueCertificate', 'acm-pca:GetCertificate', 'acm-pca:DescribeCertificateAuthority'],
        [props.ca.arn],
      );
    } else {
      caHierarchy.grantCaKeyStore(this.vend, 'read');
    }

    // the paced calls (registration, AttachThingPrincipal, AttachPolicy, ACM PCA) take slots of the shared schedule:
    // its items only (pk rate#{api}), GetItem and UpdateItem
    props.rateLimitTable.grantRateSchedule(this.vend);

    // ReplyAccepted / ReplyRejected: IoT Data Publish on the reply topics only
    this.reply = fn('Reply', 'sfn-rotation-reply', 'certflow rotation: reply on …/accepted or …/rejected');
    allow(
      this.reply,
      ['iot:Publish'],
      (['get', 'ack'] as const).flatMap((action) =>
        ['accepted', 'rejected'].map((outcome) => iotArn('topic', `${prefix}/*/${action}/${outcome}`)),
      ),
    );

    // RollBackCertificate: the reply was not delivered
    this.rollback = fn(
      'RollBackCertificate',
      'sfn-rotation-rollback',
      'certflow rotation: undo an undelivered certificate',
    );
    allow(
      this.rollback,
      ['iot:DescribeCertificate', 'iot:UpdateCertificate', 'iot:DeleteCertificate', 'iot:ListAttachedPolicies'],
      [certs],
    );
    allow(this.rollback, ['iot:DetachPolicy'], [policies, certs]);
    allow(this.rollback, ['iot:DetachThingPrincipal'], [things]);

    // AcknowledgeRotation: retire the previous certificate(s) when configured, leave the group
    this.acknowledge = fn('AcknowledgeRotation', 'sfn-rotation-ack', 'certflow rotation: retire the old certificate');
    allow(this.acknowledge, ['iot:RemoveThingFromThingGroup'], [group, things]);
    if (deletePrevious) {
      allow(this.acknowledge, ['iot:ListThingPrincipals', 'iot:DetachThingPrincipal'], [things]);
      allow(
        this.acknowledge,
        [
          'iot:DescribeCertificate',
          'iot:ListPrincipalThings',
          'iot:ListAttachedPolicies',
          'iot:UpdateCertificate',
          'iot:DeleteCertificate',
        ],
        [certs],
      );
      allow(this.acknowledge, ['iot:DetachPolicy'], [policies, certs]);
    }
    bus.grantPutEvents(this.acknowledge);
    if (caHierarchy.rotationThingGroup) {
      this.approve.node.addDependency(caHierarchy.rotationThingGroup);
      this.acknowledge.node.addDependency(caHierarchy.rotationThingGroup);
    }

    for (const f of [this.approve, this.vend, this.rollback, this.acknowledge]) {
      NagSuppressions.addResourceSuppressions(
        f.role,
        [
          {
            id: 'AwsSolutions-IAM5',
            reason:
              'Rotation works on the thing that sent the MQTT message, its certificates (ids are SHA-256 hashes of ' +
              'certificates made at run time) and the policies of its previous certificate: thing/*, cert/* and ' +
              'policy/* of this account and region, each with the registry actions of this step only.',
            appliesTo: [arnFinding('iot', 'thing/*'), arnFinding('iot', 'cert/*'), arnFinding('iot', 'policy/*')],
          },
        ],
        true,
      );
    }
    NagSuppressions.addResourceSuppressions(
      this.vend.role,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'The pre-created packages are certificates/{thingName}.zip for the thing that asks: GetObject under ' +
            'certificates/ only (HeadObject and the presigned URL).',
          appliesTo: [objectsFinding(PACKAGES_PREFIX)],
        },
      ],
      true,
    );
    NagSuppressions.addResourceSuppressions(
      this.reply.role,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'Replies go to the topic of the thing that asked: iot:Publish on {prefix}/*/get|ack/accepted|rejected ' +
            'only, the thing name being the wildcard level.',
          appliesTo: [
            { regex: `/^Resource::arn:<AWS::Partition>:iot:.*:topic\\/.*\\/\\*\\/(get|ack)\\/(accepted|rejected)$/` },
          ],
        },
      ],
      true,
    );

    // the two Express state machines
    const express = (
      name: string,
      comment: string,
      definitionPath: string,
      substitutions: Record<string, string>,
      invokes: string[],
    ) => {
      const scope = new Construct(this, name);
      return aslStateMachine(scope, {
        name,
        comment,
        definitionPath,
        substitutions,
        // one device request, seconds long: Express, as CDF's device-facing flows
        type: StateMachineType.EXPRESS,
        logs: { level: LogLevel.ALL, includeExecutionData: false },
        logRetention,
        invokes,
      }).stateMachine;
    };
    this.getStateMachine = express(
      'rotation-get',
      'certflow rotation get: approve, sign the CSR or vend the package, reply',
      ROTATION_GET_DEFINITION_PATH,
      {
        ApproveDeviceFunctionArn: this.approve.functionArn,
        VendCertificateFunctionArn: this.vend.functionArn,
        ReplyFunctionArn: this.reply.functionArn,
        RollbackFunctionArn: this.rollback.functionArn,
      },
      [this.approve.functionArn, this.vend.functionArn, this.reply.functionArn, this.rollback.functionArn],
    );
    this.ackStateMachine = express(
      'rotation-ack',
      'certflow rotation ack: approve, retire the previous certificate, leave the group, reply',
      ROTATION_ACK_DEFINITION_PATH,
      {
        ApproveDeviceFunctionArn: this.approve.functionArn,
        AcknowledgeRotationFunctionArn: this.acknowledge.functionArn,
        ReplyFunctionArn: this.reply.functionArn,
      },
      [this.approve.functionArn, this.acknowledge.functionArn, this.reply.functionArn],
    );

    // the topic rules: CDF's SQL (from the core, shared with the local broker), Step Functions action
    this.ruleErrors = new LogGroup(this, 'RuleErrors', { retention: logRetention });
    this.ruleRole = new Role(this, 'RuleRole', {
      assumedBy: new ServicePrincipal('iot.amazonaws.com', {
        conditions: {
          StringEquals: { 'aws:SourceAccount': stack.account },
          ArnLike: { 'aws:SourceArn': iotArn('rule', `${stack.stackName.replace(/[^A-Za-z0-9_]/g, '_')}*`) },
        },
      }),
      description: 'certflow rotation topic rules: start the rotation workflows, log rule errors',
    });
    this.ruleRole.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['states:StartExecution'],
        resources: [this.getStateMachine.stateMachineArn, this.ackStateMachine.stateMachineArn],
      }),
    );
    this.ruleErrors.grantWrite(this.ruleRole);
    const rule = (action: RotationAction, machine: StateMachine) =>
      new CfnTopicRule(this, action === 'get' ? 'GetRule' : 'AckRule', {
        ruleName: `${stack.stackName.replace(/[^A-Za-z0-9_]/g, '_')}_rotation_${action}`,
        topicRulePayload: {
          description: `certflow rotation: ${this.topics.rules[action].topicFilter} starts the rotation-${action} workflow`,
          sql: this.topics.rules[action].sql,
          awsIotSqlVersion: '2016-03-23',
          ruleDisabled: false,
          actions: [
            {
              stepFunctions: {
                stateMachineName: machine.stateMachineName,
                executionNamePrefix: action,
                roleArn: this.ruleRole.roleArn,
              },
            },
          ],
          errorAction: {
            cloudwatchLogs: { logGroupName: this.ruleErrors.logGroupName, roleArn: this.ruleRole.roleArn },
          },
        },
      });
    this.getRule = rule('get', this.getStateMachine);
    this.ackRule = rule('ack', this.ackStateMachine);

    // the device policy: each device on its own topics, as CDF's example (the client id is the thing name); the
    // document is the core's, which the local runtime creates too
    this.devicePolicy = new CfnPolicy(this, 'DevicePolicy', {
      policyName,
      policyDocument: rotationDevicePolicyDocument({
        partition: stack.partition,
        region: stack.region,
        account: stack.account,
        topicPrefix: prefix,
      }),
    });

    // the continuous job on the rotation group (CloudFormation has no AWS::IoT::Job): CreateJob / DeleteJob
    const document = JSON.stringify(rotationJobDocument(prefix));
    const maximumPerMinute = props.jobMaximumPerMinute ?? 120;
    // a new document or rollout is a new job (a job's document cannot change): the id carries their hash
    const hash = createHash('sha256')
      .update(`${document}\n${caHierarchy.rotationThingGroupName}\n${maximumPerMinute}`)
      .digest('hex')
      .slice(0, 12);
    this.jobId = `certflow-rotate-certificates-${hash}`;
    const jobArn = iotArn('job', this.jobId);
    const createJob: AwsSdkCall = {
      service: 'Iot',
      action: 'createJob',
      parameters: {
        jobId: this.jobId,
        targets: [group],
        document,
        description: 'certflow: devices in the rotation group rotate their certificate over MQTT',
        targetSelection: 'CONTINUOUS',
        jobExecutionsRolloutConfig: { maximumPerMinute },
      },
      physicalResourceId: PhysicalResourceId.of(this.jobId),
    };
    this.job = new AwsCustomResource(this, 'RotationJob', {
      onCreate: createJob,
      onUpdate: createJob,
      onDelete: { service: 'Iot', action: 'deleteJob', parameters: { jobId: this.jobId, force: true } },
      policy: AwsCustomResourcePolicy.fromStatements([
        new PolicyStatement({ actions: ['iot:CreateJob'], resources: [jobArn, group] }),
        new PolicyStatement({ actions: ['iot:DeleteJob'], resources: [jobArn] }),
      ]),
      installLatestAwsSdk: false,
      logGroup: new LogGroup(this, 'RotationJobLogs', { retention: logRetention }),
    });
    if (caHierarchy.rotationThingGroup) this.job.node.addDependency(caHierarchy.rotationThingGroup);
    // the provider function AwsCustomResource shares across the stack (a singleton at the stack's root)
    const provider = `AWS${AwsCustomResource.PROVIDER_FUNCTION_UUID.replace(/-/g, '')}`;
    NagSuppressions.addResourceSuppressionsByPath(stack, `${stack.node.path}/${provider}/ServiceRole/Resource`, [
      {
        id: 'AwsSolutions-IAM4',
        reason:
          'The AwsCustomResource provider (CDK-owned singleton) runs with AWSLambdaBasicExecutionRole for its own ' +
          'logs; its IoT rights are the CreateJob/DeleteJob statements on the rotation job and group only.',
        appliesTo: ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole'],
      },
    ]);
  }
}
