import { readFileSync } from 'node:fs';
import aslValidator from 'asl-validator';
import { Match } from 'aws-cdk-lib/assertions';
import { placeholdersOf } from '../../lib/asl';
import { REGISTRY_REVOCATION_DEFINITION_PATH } from '../../lib/constructs/registry-revocation';
import { REGISTRY_REVOCATION_RULE_PATTERN } from '../../lambdas/core/events';
import { RegistryRevocationEnv } from '../../lambdas/handlers/env';
import {
  actionsOf,
  assetText,
  buildCertflowApp,
  CertflowApp,
  logicalId,
  resourcesOf,
  resourceText,
  statementsOfRole,
} from './certflow-app';

type State = Record<string, unknown> & { Type: string; Retry?: { ErrorEquals: string[] }[] };
type Resource = { Type: string; Properties: Record<string, unknown> };

const aslText = readFileSync(REGISTRY_REVOCATION_DEFINITION_PATH, 'utf8');

let built: CertflowApp;
let resources: Record<string, Resource>;
beforeAll(() => {
  built = buildCertflowApp({ bundle: false, config: { apiRates: { 'iot:UpdateCertificate': 40 } } });
  resources = built.template.toJSON().Resources as typeof resources;
});
const rr = () => built.stack.registryRevocation;

describe('the registry-revocation ASL file', () => {
  const states = Object.entries((JSON.parse(aslText) as { States: Record<string, State> }).States);

  it('validates with asl-validator, as written and with its placeholders replaced', () => {
    const rendered = aslText.replace(
      /\$\{([A-Za-z0-9_]+)\}/g,
      (_, name: string) => `arn:aws:lambda:eu-west-1:111122223333:function:certflow-${name}`,
    );
    for (const text of [aslText, rendered]) {
      const result = aslValidator(JSON.parse(text), { checkPaths: true, checkArn: true });
      expect(result.errors).toEqual([]);
      expect(result.isValid).toBe(true);
    }
  });

  it('retries every Task on throttling and on a rate-limit backlog', () => {
    const tasks = states.filter(([, s]) => s.Type === 'Task');
    expect(tasks.map(([name]) => name)).toEqual(['RevokeInDeviceRegistry']);
    for (const [, task] of tasks) {
      const retried = (task.Retry ?? []).flatMap((r) => r.ErrorEquals);
      expect(retried).toEqual(expect.arrayContaining(['RateLimitBacklogError', 'ThrottlingException']));
    }
  });
});

describe('RegistryRevocation state machine', () => {
  const props = () =>
    resources[logicalId(rr().stateMachine)]!.Properties as {
      DefinitionS3Location: { Key: string };
      DefinitionSubstitutions: Record<string, unknown>;
    } & Record<string, unknown>;

  it('is an Express state machine that logs errors with their input, with X-Ray tracing', () => {
    expect(props()).toMatchObject({
      StateMachineType: 'EXPRESS',
      LoggingConfiguration: { Level: 'ERROR', IncludeExecutionData: true },
      TracingConfiguration: { Enabled: true },
    });
  });

  it('deploys the shared ASL file with every placeholder substituted', () => {
    expect(Object.keys(props().DefinitionSubstitutions)).toEqual(placeholdersOf(aslText));
    expect(props().DefinitionSubstitutions.RevokeInRegistryFunctionArn).toEqual({
      'Fn::GetAtt': [logicalId(rr().revokeInRegistry.function), 'Arn'],
    });
    expect(assetText(built.assembly, props().DefinitionS3Location.Key)).toBe(aslText);
  });

  it('may invoke its function and nothing else', () => {
    const statements = statementsOfRole(built.template, logicalId(rr().stateMachine.role));
    expect(statements.flatMap(actionsOf).filter((a) => !/^(logs|xray):/.test(a))).toEqual(['lambda:InvokeFunction']);
    const invoke = statements.find((s) => actionsOf(s).includes('lambda:InvokeFunction'))!;
    expect(resourcesOf(invoke)).toEqual([{ 'Fn::GetAtt': [logicalId(rr().revokeInRegistry.function), 'Arn'] }]);
  });
});

describe('RegistryRevocation rule', () => {
  const rule = () => resources[logicalId(rr().rule)]!.Properties;

  it('matches Certificate Revoked of device and server certificates on the certflow bus', () => {
    expect(rule().EventPattern).toEqual(REGISTRY_REVOCATION_RULE_PATTERN);
    expect(REGISTRY_REVOCATION_RULE_PATTERN).toEqual({
      source: ['certflow'],
      'detail-type': ['Certificate Revoked'],
      detail: { kind: ['device', 'server'] },
    });
    expect(rule().EventBusName).toEqual({ Ref: logicalId(built.stack.bus.bus) });
  });

  it('targets the state machine with the retry policy and dead-letter queue of the inventory rule', () => {
    expect(rule().Targets).toEqual([
      expect.objectContaining({
        Arn: { Ref: logicalId(rr().stateMachine) },
        RoleArn: { 'Fn::GetAtt': [logicalId(rr().ruleRole), 'Arn'] },
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [logicalId(rr().deadLetterQueue), 'Arn'] } },
        RetryPolicy: { MaximumRetryAttempts: 185, MaximumEventAgeInSeconds: 86_400 },
      }),
    ]);
    expect(resources[logicalId(rr().deadLetterQueue)]!.Properties).toMatchObject({ SqsManagedSseEnabled: true });
    expect(statementsOfRole(built.template, logicalId(rr().ruleRole))).toEqual([
      { Effect: 'Allow', Action: 'states:StartExecution', Resource: { Ref: logicalId(rr().stateMachine) } },
    ]);
  });
});

describe('RegistryRevocation function', () => {
  const fn = () => resources[logicalId(rr().revokeInRegistry.function)]!.Properties;
  const statements = () => statementsOfRole(built.template, logicalId(rr().revokeInRegistry.role));

  it('has an environment RegistryRevocationEnv accepts: the task table and the configured rates', () => {
    const { NODE_OPTIONS, ...env } = (fn().Environment as { Variables: Record<string, unknown> }).Variables;
    expect(NODE_OPTIONS).toBe('--enable-source-maps');
    expect(env).toEqual({
      RATE_TABLE_NAME: { Ref: logicalId(built.stack.table.table) },
      API_RATES: JSON.stringify({ 'iot:UpdateCertificate': 40 }),
    });
    const asStrings = Object.fromEntries(
      Object.entries(env).map(([k, v]) => [k, typeof v === 'string' ? v : `token:${JSON.stringify(v)}`]),
    );
    expect(RegistryRevocationEnv.parse(asStrings).API_RATES).toEqual({ 'iot:UpdateCertificate': 40 });
  });

  it('may DescribeCertificate and UpdateCertificate on certificates of this account and region, no other IoT action', () => {
    const iot = statements().filter((s) => actionsOf(s).some((a) => a.startsWith('iot:')));
    expect(iot.map((s) => ({ actions: actionsOf(s).sort(), resources: resourcesOf(s).map(resourceText) }))).toEqual([
      {
        actions: ['iot:DescribeCertificate', 'iot:UpdateCertificate'],
        resources: ['arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:cert/*'],
      },
    ]);
  });

  it('may get and update the rate#iot:UpdateCertificate item of the task table only', () => {
    const dynamo = statements().filter((s) => actionsOf(s).some((a) => a.startsWith('dynamodb:')));
    expect(dynamo).toEqual([
      {
        Effect: 'Allow',
        Action: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
        Resource: { 'Fn::GetAtt': [logicalId(built.stack.table.table), 'Arn'] },
        Condition: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['rate#iot:UpdateCertificate'] } },
      },
    ]);
    expect(
      statements()
        .flatMap(actionsOf)
        .filter((a) => !/^(dynamodb|iot|logs|xray):/.test(a)),
    ).toEqual([]);
  });

  it('leaves no unsuppressed cdk-nag finding on the construct', () => {
    const nag = Match.stringLikeRegexp('AwsSolutions-.*');
    const findings = [...built.annotations.findError('*', nag), ...built.annotations.findWarning('*', nag)];
    expect(findings.filter((m) => m.id.includes('/RegistryRevocation/')).map((m) => m.id)).toEqual([]);
    // the function's suppressions: X-Ray's Resource::* (every CertflowFunction) and cert/*, nothing else
    const role = resources[logicalId(rr().revokeInRegistry.role)] as unknown as {
      Metadata: { cdk_nag: { rules_to_suppress: { id: string; applies_to: unknown[] }[] } };
    };
    expect(role.Metadata.cdk_nag.rules_to_suppress.map((r) => [r.id, JSON.stringify(r.applies_to)]).sort()).toEqual([
      ['AwsSolutions-IAM5', '["Resource::*"]'],
      ['AwsSolutions-IAM5', expect.stringMatching(/:iot:.*:cert.*\*\$/)],
    ]);
  });
});
