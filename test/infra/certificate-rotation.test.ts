import { readFileSync } from 'node:fs';
import aslValidator from 'asl-validator';
import { CfnElement, Stack } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import { placeholdersOf } from '../../lib/asl';
import { ROTATION_ACK_DEFINITION_PATH, ROTATION_GET_DEFINITION_PATH } from '../../lib/constructs/certificate-rotation';
import { rotationDevicePolicyDocument } from '../../lambdas/core/rotation/device-policy';
import { TRANSIENT_ERROR_NAMES } from '../../lambdas/core/rotation/reasons';
import { rotationJobDocument, ROTATION_RULES, rotationTopics } from '../../lambdas/core/rotation/topics';
import { RotationEnv } from '../../lambdas/handlers/env';
import {
  actionsOf,
  buildCertflowApp,
  CertflowApp,
  logicalId,
  resourcesOf,
  resourceText,
  statementsOfRole,
  type Statement,
} from './certflow-app';

type State = Record<string, unknown> & { Type: string };
type Definition = { StartAt: string; States: Record<string, State> };
type Resource = { Type: string; Properties: Record<string, unknown>; Metadata?: Record<string, unknown> };

const ASL = {
  'rotation-get': readFileSync(ROTATION_GET_DEFINITION_PATH, 'utf8'),
  'rotation-ack': readFileSync(ROTATION_ACK_DEFINITION_PATH, 'utf8'),
};

let built: CertflowApp;
let resources: Record<string, Resource>;
beforeAll(() => {
  built = buildCertflowApp({ bundle: false });
  resources = built.template.toJSON().Resources as typeof resources;
});
const rotation = () => built.stack.rotation;
/** the logical id of a construct, or of a Cfn resource itself */
const idOf = (construct: Parameters<typeof logicalId>[0]) =>
  construct instanceof CfnElement ? Stack.of(construct).getLogicalId(construct) : logicalId(construct);
const propsOf = (construct: Parameters<typeof logicalId>[0]) => resources[idOf(construct)]!.Properties;
const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);

describe.each(Object.entries(ASL))('the %s ASL file', (name, text) => {
  const definition = JSON.parse(text) as Definition;
  const tasks = Object.entries(definition.States).filter(([, s]) => s.Type === 'Task');

  it('validates with asl-validator, as written and with its placeholders replaced', () => {
    const rendered = text.replace(
      /\$\{([A-Za-z0-9_]+)\}/g,
      (_, p: string) => `arn:aws:lambda:eu-west-1:111122223333:function:certflow-${p}`,
    );
    for (const t of [text, rendered]) {
      const result = aslValidator(JSON.parse(t), { checkPaths: true, checkArn: true });
      expect(result.errors).toEqual([]);
      expect(result.isValid).toBe(true);
    }
  });

  it('is JSONPath only', () => {
    expect(text).not.toMatch(/JSONata|"Arguments"|"Assign"|"Output"/);
  });

  it('retries every Task on the transient errors the core rethrows and on Lambda hiccups, with backoff', () => {
    expect(tasks.length).toBeGreaterThan(0);
    for (const [, state] of tasks) {
      const [retry, ...others] = state.Retry as {
        ErrorEquals: string[];
        BackoffRate: number;
        MaxAttempts: number;
        IntervalSeconds: number;
      }[];
      expect(others).toEqual([]);
      expect(retry!.ErrorEquals).toEqual(expect.arrayContaining([...TRANSIENT_ERROR_NAMES, 'Lambda.ServiceException']));
      expect(retry!.ErrorEquals).not.toContain('States.ALL');
      expect(retry!.ErrorEquals).not.toContain('RotationRejectedError');
      expect(retry!.BackoffRate).toBeGreaterThan(1);
      expect(retry!.MaxAttempts).toBeGreaterThanOrEqual(2);
    }
  });

  it('catches RotationRejectedError by name first, then anything else, into ReplyRejected', () => {
    for (const stateName of [
      'ApproveDevice',
      ...(name === 'rotation-get' ? ['SignCertificate', 'ActivatePackagedCertificate'] : ['AcknowledgeRotation']),
    ]) {
      expect(definition.States[stateName]!.Catch).toEqual([
        { ErrorEquals: ['RotationRejectedError'], ResultPath: '$.error', Next: 'ReplyRejected' },
        { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'ReplyRejected' },
      ]);
    }
    expect(definition.States.ReplyRejected!.Parameters).toMatchObject({
      Payload: { outcome: 'rejected', 'error.$': '$.error', action: name.slice('rotation-'.length) },
    });
  });
});

describe('the rotation state machines', () => {
  it('are Express, logging ALL without execution data, with X-Ray tracing', () => {
    for (const machine of [rotation().getStateMachine, rotation().ackStateMachine]) {
      expect(propsOf(machine)).toMatchObject({
        StateMachineType: 'EXPRESS',
        LoggingConfiguration: { Level: 'ALL', IncludeExecutionData: false },
        TracingConfiguration: { Enabled: true },
      });
    }
  });

  it('substitute exactly the placeholders of their files', () => {
    const get = propsOf(rotation().getStateMachine).DefinitionSubstitutions as Record<string, unknown>;
    const ack = propsOf(rotation().ackStateMachine).DefinitionSubstitutions as Record<string, unknown>;
    expect(Object.keys(get).sort()).toEqual(placeholdersOf(ASL['rotation-get']).sort());
    expect(Object.keys(ack).sort()).toEqual(placeholdersOf(ASL['rotation-ack']).sort());
    expect(get.VendCertificateFunctionArn).toEqual({ 'Fn::GetAtt': [logicalId(rotation().vend.function), 'Arn'] });
    expect(ack.AcknowledgeRotationFunctionArn).toEqual({
      'Fn::GetAtt': [logicalId(rotation().acknowledge.function), 'Arn'],
    });
  });
});

describe('the rotation topic rules', () => {
  it('use CDF’s SQL from the core, one per action, starting their state machine through the rule role', () => {
    expect(ROTATION_RULES.rules.get.sql).toBe(
      "SELECT topic(3) as deviceId, topic(4) as action, principal() as certId, * FROM 'cdf/certificates/+/get'",
    );
    for (const [rule, machine, action] of [
      [rotation().getRule, rotation().getStateMachine, 'get'],
      [rotation().ackRule, rotation().ackStateMachine, 'ack'],
    ] as const) {
      const payload = (propsOf(rule) as { TopicRulePayload: Record<string, unknown> }).TopicRulePayload;
      expect(payload).toMatchObject({
        Sql: ROTATION_RULES.rules[action].sql,
        AwsIotSqlVersion: '2016-03-23',
        RuleDisabled: false,
        Actions: [
          {
            StepFunctions: {
              StateMachineName: { 'Fn::GetAtt': [logicalId(machine), 'Name'] },
              ExecutionNamePrefix: action,
              RoleArn: { 'Fn::GetAtt': [logicalId(rotation().ruleRole), 'Arn'] },
            },
          },
        ],
        ErrorAction: { CloudwatchLogs: { LogGroupName: { Ref: logicalId(rotation().ruleErrors) } } },
      });
    }
  });

  it('follow a configured prefix: the thing name moves to its topic level', () => {
    const topics = rotationTopics('acme/fleet/rotation');
    expect(topics.rules.ack.sql).toBe(
      "SELECT topic(4) as deviceId, topic(5) as action, principal() as certId, * FROM 'acme/fleet/rotation/+/ack'",
    );
    const app = buildCertflowApp({ bundle: false, config: { rotationTopicPrefix: 'acme/fleet/rotation' } });
    const rules = Object.values(app.template.findResources('AWS::IoT::TopicRule')) as {
      Properties: { TopicRulePayload: { Sql: string } };
    }[];
    expect(rules.map((r) => r.Properties.TopicRulePayload.Sql).sort()).toEqual(
      [topics.rules.ack.sql, topics.rules.get.sql].sort(),
    );
  });

  it('have a role that iot.amazonaws.com of this account assumes, allowed StartExecution on the two machines only', () => {
    const role = propsOf(rotation().ruleRole) as { AssumeRolePolicyDocument: { Statement: Statement[] } };
    expect(role.AssumeRolePolicyDocument.Statement).toEqual([
      expect.objectContaining({
        Principal: { Service: 'iot.amazonaws.com' },
        Condition: {
          StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
          ArnLike: { 'aws:SourceArn': expect.anything() },
        },
      }),
    ]);
    const statements = statementsOfRole(built.template, logicalId(rotation().ruleRole));
    const start = statements.filter((s) => actionsOf(s).includes('states:StartExecution'));
    expect(start.flatMap(resourcesOf)).toEqual([
      { Ref: logicalId(rotation().getStateMachine) },
      { Ref: logicalId(rotation().ackStateMachine) },
    ]);
    expect(statements.flatMap(actionsOf).filter((a) => !/^(states:StartExecution|logs:)/.test(a))).toEqual([]);
  });
});

describe('the device policy', () => {
  const statements = () =>
    (propsOf(rotation().devicePolicy) as { PolicyDocument: { Statement: Statement[] } }).PolicyDocument.Statement;
  const texts = (action: string) =>
    statements()
      .filter((s) => actionsOf(s).includes(action))
      .flatMap(resourcesOf)
      .map(resourceText);

  it('is the core’s document (the one the local runtime creates), for this stack’s partition, region and account', () => {
    const stack = built.stack;
    expect(propsOf(rotation().devicePolicy).PolicyDocument).toEqual(
      stack.resolve(
        rotationDevicePolicyDocument({ partition: stack.partition, region: stack.region, account: stack.account }),
      ),
    );
  });

  it('is named as configured (the policy rotated certificates get) and lets a thing connect only as itself', () => {
    expect(propsOf(rotation().devicePolicy).PolicyName).toBe('certflow-rotation-device');
    const connect = statements().find((s) => actionsOf(s).includes('iot:Connect'))!;
    expect(resourcesOf(connect).map(resourceText)).toEqual([
      'arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:client/${iot:Connection.Thing.ThingName}',
    ]);
    expect(connect.Condition).toEqual({ Bool: { 'iot:Connection.Thing.IsAttached': 'true' } });
  });

  it('restricts publish, subscribe and receive to the device’s own rotation and job topics (${iot:ClientId})', () => {
    const t = 'arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:topic/';
    const f = 'arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:topicfilter/';
    expect(texts('iot:Publish')).toEqual([
      `${t}cdf/certificates/\${iot:ClientId}/get`,
      `${t}cdf/certificates/\${iot:ClientId}/ack`,
      `${t}$aws/things/\${iot:ClientId}/jobs/*`,
    ]);
    expect(texts('iot:Subscribe')).toEqual([
      `${f}cdf/certificates/\${iot:ClientId}/get/*`,
      `${f}cdf/certificates/\${iot:ClientId}/ack/*`,
      `${f}$aws/things/\${iot:ClientId}/jobs/*`,
    ]);
    expect(texts('iot:Receive')).toEqual([
      `${t}cdf/certificates/\${iot:ClientId}/get/*`,
      `${t}cdf/certificates/\${iot:ClientId}/ack/*`,
      `${t}$aws/things/\${iot:ClientId}/jobs/*`,
    ]);
    expect(statements().flatMap(actionsOf).sort()).toEqual([
      'iot:Connect',
      'iot:Publish',
      'iot:Receive',
      'iot:Subscribe',
    ]);
  });
});

describe('the continuous rotation job', () => {
  const job = () => {
    const [[, custom]] = ofType('Custom::AWS') as [[string, Resource]];
    return custom;
  };

  it('is created with CreateJob (CONTINUOUS on the rotation group, CDF’s document, 120 per minute) and deleted with DeleteJob', () => {
    const create = JSON.parse(resourceText(job().Properties.Create)) as {
      service: string;
      action: string;
      parameters: Record<string, unknown>;
      physicalResourceId: { id: string };
    };
    expect(create).toMatchObject({ service: 'Iot', action: 'createJob', physicalResourceId: { id: rotation().jobId } });
    expect(create.parameters).toMatchObject({
      jobId: rotation().jobId,
      targetSelection: 'CONTINUOUS',
      jobExecutionsRolloutConfig: { maximumPerMinute: 120 },
    });
    expect(JSON.parse(create.parameters.document as string)).toEqual(rotationJobDocument());
    expect(rotationJobDocument()).toEqual({
      get: { subscribe: 'cdf/certificates/{thingName}/get/+', publish: 'cdf/certificates/{thingName}/get' },
      ack: { subscribe: 'cdf/certificates/{thingName}/ack/+', publish: 'cdf/certificates/{thingName}/ack' },
    });
    expect(create.parameters.targets).toEqual([expect.stringMatching(/:thinggroup\/cdfRotateCertificates$/)]);
    expect(JSON.parse(resourceText(job().Properties.Delete))).toMatchObject({
      service: 'Iot',
      action: 'deleteJob',
      parameters: { jobId: rotation().jobId, force: true },
    });
    expect(rotation().jobId).toMatch(/^certflow-rotate-certificates-[0-9a-f]{12}$/);
  });

  it('depends on the rotation thing group the stack creates', () => {
    const [[id]] = ofType('Custom::AWS') as [[string, Resource]];
    const group = idOf(built.stack.caHierarchy.rotationThingGroup!);
    expect((resources[id] as unknown as { DependsOn?: string[] }).DependsOn).toEqual(expect.arrayContaining([group]));
  });
});

describe('the rotation functions', () => {
  const iotGrants = (fn: { role: Parameters<typeof logicalId>[0] }) =>
    statementsOfRole(built.template, logicalId(fn.role))
      .filter((s) => actionsOf(s).some((a) => a.startsWith('iot:')))
      .map((s) => ({ actions: actionsOf(s).sort(), resources: resourcesOf(s).map(resourceText).sort() }));
  const arn = (r: string) => `arn:\${AWS::Partition}:iot:\${AWS::Region}:\${AWS::AccountId}:${r}`;

  it('have an environment RotationEnv accepts, with CDF’s defaults', () => {
    for (const fn of [
      rotation().approve,
      rotation().vend,
      rotation().reply,
      rotation().rollback,
      rotation().acknowledge,
    ]) {
      const env = { ...(propsOf(fn.function).Environment as { Variables: Record<string, unknown> }).Variables };
      delete env.NODE_OPTIONS;
      expect(Object.keys(env).sort()).toEqual(Object.keys(RotationEnv.shape).sort());
      expect(env).toMatchObject({
        ROTATION_TOPIC_PREFIX: 'cdf/certificates',
        ROTATION_THING_GROUP: 'cdfRotateCertificates',
        ROTATION_VALIDITY_DAYS: '1095',
        ROTATED_CERTIFICATE_POLICY_NAME: 'certflow-rotation-device',
        DELETE_PREVIOUS_CERTIFICATE: 'false',
        ROTATION_REQUIRE_THING: 'true',
      });
    }
  });

  it('ApproveDevice: DescribeThing and ListThingGroupsForThing only', () => {
    expect(iotGrants(rotation().approve)).toEqual([
      { actions: ['iot:DescribeThing', 'iot:ListThingGroupsForThing'], resources: [arn('thing/*')] },
    ]);
  });

  it('Reply: iot:Publish on the four reply topic patterns only', () => {
    expect(iotGrants(rotation().reply)).toEqual([
      {
        actions: ['iot:Publish'],
        resources: [
          arn('topic/cdf/certificates/*/ack/accepted'),
          arn('topic/cdf/certificates/*/ack/rejected'),
          arn('topic/cdf/certificates/*/get/accepted'),
          arn('topic/cdf/certificates/*/get/rejected'),
        ],
      },
    ]);
  });

  it('AcknowledgeRotation: only leaves the group when deletion is off; the deletion actions when it is on', () => {
    const group = arn('thinggroup/cdfRotateCertificates');
    expect(iotGrants(rotation().acknowledge)).toEqual([
      { actions: ['iot:RemoveThingFromThingGroup'], resources: [group, arn('thing/*')].sort() },
    ]);
    const on = buildCertflowApp({ bundle: false, config: { deletePreviousCertificate: true } });
    const statements = statementsOfRole(on.template, logicalId(on.stack.rotation.acknowledge.role));
    expect(
      statements
        .flatMap(actionsOf)
        .filter((a) => a.startsWith('iot:'))
        .sort(),
    ).toEqual([
      'iot:DeleteCertificate',
      'iot:DescribeCertificate',
      'iot:DetachPolicy',
      'iot:DetachThingPrincipal',
      'iot:ListAttachedPolicies',
      'iot:ListPrincipalThings',
      'iot:ListThingPrincipals',
      'iot:RemoveThingFromThingGroup',
      'iot:UpdateCertificate',
    ]);
  });

  it('VendCertificate: the registry actions of both get flows, the packages, the CA key, the bus', () => {
    const statements = statementsOfRole(built.template, logicalId(rotation().vend.role));
    expect(
      statements
        .flatMap(actionsOf)
        .filter((a) => a.startsWith('iot:'))
        .sort(),
    ).toEqual([
      'iot:AttachPolicy',
      'iot:AttachThingPrincipal',
      'iot:DeleteCertificate',
      'iot:DescribeCACertificate',
      'iot:DescribeCertificate',
      'iot:DetachPolicy',
      'iot:DetachThingPrincipal',
      'iot:ListAttachedPolicies',
      'iot:ListPrincipalThings',
      'iot:RegisterCertificate',
      'iot:RegisterCertificateWithoutCA',
      'iot:UpdateCertificate',
      'iot:UpdateThing',
    ]);
    const s3 = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('s3:')));
    expect(s3.map((s) => ({ a: actionsOf(s), r: resourcesOf(s).map(resourceText) }))).toEqual([
      { a: ['s3:GetObject'], r: [expect.stringMatching(/\/certificates\/\*$/)] },
      { a: ['s3:ListBucket'], r: [expect.stringMatching(/\.Arn\}$/)] },
    ]);
    expect(statements.flatMap(actionsOf)).toEqual(expect.arrayContaining(['events:PutEvents', 'ssm:GetParameter']));
  });

  it('VendCertificate with an ACM PCA rotationCa: ACM PCA calls on that CA only, no CA key in SSM', () => {
    const pcaArn = 'arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/11111111-2222-3333-4444-555555555555';
    const withPca = buildCertflowApp({ bundle: false, config: { rotationCa: { type: 'acm-pca', arn: pcaArn } } });
    const statements = statementsOfRole(withPca.template, logicalId(withPca.stack.rotation.vend.role));
    const pca = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('acm-pca:')));
    expect(pca.map((s) => ({ a: actionsOf(s).sort(), r: resourcesOf(s) }))).toEqual([
      {
        a: ['acm-pca:DescribeCertificateAuthority', 'acm-pca:GetCertificate', 'acm-pca:IssueCertificate'],
        r: [pcaArn],
      },
    ]);
    expect(statements.flatMap(actionsOf).filter((a) => a.startsWith('ssm:') || a.startsWith('kms:'))).toEqual([]);
    const env = (withPca.template.toJSON().Resources as Record<string, Resource>)[
      logicalId(withPca.stack.rotation.vend.function)
    ]!.Properties.Environment as { Variables: Record<string, unknown> };
    expect(env.Variables).toMatchObject({ ROTATION_SIGNING_CA: JSON.stringify({ type: 'acm-pca', arn: pcaArn }) });
  });

  it('VendCertificate paces on the task table’s rate schedule items only, at the configured API rates', () => {
    const paced = buildCertflowApp({ bundle: false, config: { apiRates: { 'iot:RegisterCertificate': 50 } } });
    const statements = statementsOfRole(paced.template, logicalId(paced.stack.rotation.vend.role));
    const dynamo = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('dynamodb:')));
    expect(
      dynamo.map((s) => ({ a: actionsOf(s).sort(), r: resourcesOf(s).map(resourceText), c: s.Condition })),
    ).toEqual([
      {
        a: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
        r: [resourceText({ 'Fn::GetAtt': [logicalId(paced.stack.table.table), 'Arn'] })],
        c: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['rate#*'] } },
      },
    ]);
    const env = (paced.template.toJSON().Resources as Record<string, Resource>)[
      logicalId(paced.stack.rotation.vend.function)
    ]!.Properties.Environment as { Variables: Record<string, unknown> };
    expect(env.Variables).toMatchObject({
      RATE_LIMIT_TABLE_NAME: { Ref: logicalId(paced.stack.table.table) },
      API_RATES: JSON.stringify({ 'iot:RegisterCertificate': 50 }),
      ROTATION_SIGNING_CA: '',
    });
  });

  it('no function has a service-wide action', () => {
    for (const fn of [
      rotation().approve,
      rotation().vend,
      rotation().reply,
      rotation().rollback,
      rotation().acknowledge,
    ]) {
      const actions = statementsOfRole(built.template, logicalId(fn.role)).flatMap(actionsOf);
      expect(actions.filter((a) => a.endsWith(':*') || a === '*')).toEqual([]);
    }
  });
});

describe('CertificateRotation under cdk-nag', () => {
  it('reports no error and no warning for its resources', () => {
    const findings = [
      ...built.annotations.findError('*', Match.stringLikeRegexp('AwsSolutions-.*')),
      ...built.annotations.findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*')),
    ].filter((f) => f.id.includes('/Rotation/') || f.id.includes('AWS679f53fac002430cb0da5b7982bd2287'));
    expect(findings.map((f) => `${f.id}: ${String(f.entry.data)}`)).toEqual([]);
  });
});
