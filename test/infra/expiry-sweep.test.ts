import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import { Schedule } from 'aws-cdk-lib/aws-events';
import { placeholdersOf } from '../../lib/asl';
import { PROJECT_ROOT } from '../../lib/constructs/certflow-function';
import { CertflowEventBus } from '../../lib/constructs/event-bus';
import { EXPIRY_SWEEP_DEFINITION_PATH, ExpirySweep } from '../../lib/constructs/expiry-sweep';
import { CertificateInventory } from '../../lib/constructs/inventory';
import { ExpiryEnv } from '../../lambdas/handlers/env';
import {
  actionsOf,
  buildCertflowApp,
  CertflowApp,
  logicalId,
  resourcesOf,
  resourceText,
  statementsOfRole,
} from './certflow-app';
import {
  type Definition,
  expectDeployedAsWritten,
  expectEveryTaskRetries,
  expectValidAsl,
  withFunctionArns,
} from './asl-checks';

type Resource = { Type: string; Properties: Record<string, unknown>; Metadata?: Record<string, unknown> };
type Suppression = { id: string; reason: string; is_reason_encoded?: boolean; applies_to?: unknown[] };

const aslText = readFileSync(EXPIRY_SWEEP_DEFINITION_PATH, 'utf8');

let built: CertflowApp;
let resources: Record<string, Resource>;
beforeAll(() => {
  // nothing here depends on the function bundles (bulk-issuance.test.ts bundles)
  built = buildCertflowApp({ bundle: false });
  resources = built.template.toJSON().Resources as typeof resources;
});

const sweep = () => built.stack.expirySweep;
const propsOf = (construct: Parameters<typeof logicalId>[0]) => resources[logicalId(construct)]!.Properties;

describe('the expiry-sweep ASL file', () => {
  const definition = JSON.parse(aslText) as Definition;

  it('validates with asl-validator, as written and with its placeholders replaced', () => {
    expectValidAsl(aslText, withFunctionArns(aslText));
  });

  it('gives every Task state a Retry', () => {
    expectEveryTaskRetries(Object.entries(definition.States));
  });

  it('has the one placeholder ExpirySweepFunctionArn', () => {
    expect(placeholdersOf(aslText)).toEqual(['ExpirySweepFunctionArn']);
  });
});

describe('ExpirySweep state machine', () => {
  const machineProps = () =>
    propsOf(sweep().stateMachine) as {
      DefinitionS3Location: { Key: string };
      DefinitionSubstitutions: Record<string, unknown>;
    } & Record<string, unknown>;

  it('is a Standard state machine that logs errors with their input to its log group, with X-Ray tracing', () => {
    expect(machineProps()).toMatchObject({
      StateMachineType: 'STANDARD',
      LoggingConfiguration: {
        Level: 'ERROR',
        IncludeExecutionData: true,
        Destinations: [
          { CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [logicalId(sweep().logGroup), 'Arn'] } } },
        ],
      },
      TracingConfiguration: { Enabled: true },
    });
    expect(propsOf(sweep().logGroup)).toMatchObject({
      LogGroupName: '/aws/vendedlogs/states/Certflow-expiry-sweep',
      RetentionInDays: 90,
    });
  });

  it('substitutes every placeholder of the ASL and nothing else; none is left in the deployed file', () => {
    const props = machineProps();
    expect(Object.keys(props.DefinitionSubstitutions).sort()).toEqual(placeholdersOf(aslText).sort());
    expect(props.DefinitionSubstitutions).toEqual({
      ExpirySweepFunctionArn: { 'Fn::GetAtt': [logicalId(sweep().sweep.function), 'Arn'] },
    });
    expectDeployedAsWritten(built.assembly, props, aslText);
  });

  it('may invoke the sweep function and nothing else', () => {
    const statements = statementsOfRole(built.template, logicalId(sweep().stateMachine.role));
    expect(statements.flatMap(actionsOf).filter((a) => !/^(logs|xray):/.test(a))).toEqual(['lambda:InvokeFunction']);
    const invoke = statements.find((s) => actionsOf(s).includes('lambda:InvokeFunction'))!;
    expect(resourcesOf(invoke)).toEqual([{ 'Fn::GetAtt': [logicalId(sweep().sweep.function), 'Arn'] }]);
  });

  it('fails the synth when the ASL has a placeholder without a value', () => {
    const stack = new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Test');
    const bus = new CertflowEventBus(stack, 'Events');
    const inventory = new CertificateInventory(stack, 'Inventory', { bus });
    expect(
      () =>
        new ExpirySweep(stack, 'ExpirySweep', {
          inventory,
          bus,
          definitionPath: path.join(PROJECT_ROOT, 'statemachines', 'inventory.asl.json'),
        }),
    ).toThrow(
      /placeholders without a value: \[RecordInventoryFunctionArn\].*without a placeholder: \[ExpirySweepFunctionArn\]/,
    );
  });
});

describe('ExpirySweep schedule', () => {
  const rule = () => propsOf(sweep().rule);

  it('runs at the configured rate (default every 24 hours) on the default bus', () => {
    expect(rule().ScheduleExpression).toBe(
      Schedule.rate(Duration.hours(built.stack.config.expirySweepHours)).expressionString,
    );
    expect(built.stack.config.expirySweepHours).toBe(24);
    expect(rule().ScheduleExpression).toBe('rate(1 day)');
    expect(rule().State).toBe('ENABLED');
    // schedules run on the account's default bus only
    expect(rule().EventBusName).toBeUndefined();
    expect(rule().EventPattern).toBeUndefined();
  });

  it('targets the state machine with the configured window as input, through its own role', () => {
    expect(rule().Targets).toEqual([
      expect.objectContaining({
        Arn: { Ref: logicalId(sweep().stateMachine) },
        RoleArn: { 'Fn::GetAtt': [logicalId(sweep().ruleRole), 'Arn'] },
        Input: expect.any(String),
      }),
    ]);
    const [target] = rule().Targets as { Input: string }[];
    expect(JSON.parse(target!.Input)).toEqual({ windowDays: built.stack.config.expiryWindowDays });
    expect(built.stack.config.expiryWindowDays).toBe(30);
  });

  it("gives the rule's role states:StartExecution on the sweep state machine and nothing else", () => {
    expect(statementsOfRole(built.template, logicalId(sweep().ruleRole))).toEqual([
      { Effect: 'Allow', Action: 'states:StartExecution', Resource: { Ref: logicalId(sweep().stateMachine) } },
    ]);
    const role = propsOf(sweep().ruleRole);
    expect(role.ManagedPolicyArns).toBeUndefined();
    expect(role.AssumeRolePolicyDocument).toMatchObject({
      Statement: [
        {
          Principal: { Service: 'events.amazonaws.com' },
          Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
        },
      ],
    });
  });
});

describe('ExpirySweep function', () => {
  const fn = () => propsOf(sweep().sweep.function);
  const statements = () => statementsOfRole(built.template, logicalId(sweep().sweep.role));
  const withAction = (prefix: string) =>
    statements()
      .filter((s) => actionsOf(s).some((a) => a.startsWith(prefix)))
      .map((s) => ({ actions: actionsOf(s).sort(), resources: resourcesOf(s).map(resourceText).sort() }));

  it('runs the sfn-expiry-sweep handler with 512 MB for 5 minutes', () => {
    expect(fn()).toMatchObject({ MemorySize: 512, Timeout: 300, Handler: 'index.handler' });
  });

  it('has an environment ExpiryEnv accepts (deploy-time values as tokens), with no variable ExpiryEnv does not declare', () => {
    const { NODE_OPTIONS, ...env } = (fn().Environment as { Variables: Record<string, unknown> }).Variables;
    expect(NODE_OPTIONS).toBe('--enable-source-maps');
    expect(env).toEqual({
      INVENTORY_TABLE_NAME: { Ref: logicalId(built.stack.inventory.inventoryTable.table) },
      EVENT_BUS_NAME: { Ref: logicalId(built.stack.bus.bus) },
      EXPIRY_WINDOW_DAYS: '30',
    });
    const asStrings = Object.fromEntries(
      Object.entries(env).map(([k, v]) => [k, typeof v === 'string' ? v : `token:${JSON.stringify(v)}`]),
    );
    expect(ExpiryEnv.safeParse(asStrings).error?.issues ?? []).toEqual([]);
    expect(Object.keys(env).sort()).toEqual(Object.keys(ExpiryEnv.shape).sort());
  });

  it('queries the byExpiry index only and updates inventory items, with no dynamodb:*', () => {
    const table = logicalId(built.stack.inventory.inventoryTable.table);
    expect(withAction('dynamodb:').sort((a, b) => a.actions[0]!.localeCompare(b.actions[0]!))).toEqual([
      {
        actions: ['dynamodb:Query'],
        resources: [
          `arn:\${AWS::Partition}:dynamodb:\${AWS::Region}:\${AWS::AccountId}:table/\${${table}}/index/byExpiry`,
        ],
      },
      { actions: ['dynamodb:UpdateItem'], resources: [`\${${table}.Arn}`] },
    ]);
    expect(statements().flatMap(actionsOf)).not.toContain('dynamodb:*');
  });

  it('puts events on the certflow bus only', () => {
    expect(withAction('events:')).toEqual([
      { actions: ['events:PutEvents'], resources: [`\${${logicalId(built.stack.bus.bus)}.Arn}`] },
    ]);
  });

  it('has no other action and no service-wide action', () => {
    const actions = statements().flatMap(actionsOf);
    expect(actions.filter((a) => a.includes('*'))).toEqual([]);
    expect(actions.filter((a) => !/^(dynamodb|events|logs|xray):/.test(a))).toEqual([]);
  });
});

describe('ExpirySweep under cdk-nag', () => {
  const ours = (id: string) => id.includes('/ExpirySweep/');

  it('reports no error and no warning', () => {
    const findings = [
      ...built.annotations.findError('*', Match.stringLikeRegexp('AwsSolutions-.*')),
      ...built.annotations.findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*')),
    ].filter((f) => ours(f.id));
    expect(findings.map((f) => `${f.id}: ${String(f.entry.data)}`)).toEqual([]);
  });

  it('suppresses only SF1 on the state machine and IAM5 Resource::* (X-Ray, log delivery) on its roles, each with a reason', () => {
    // logical ids are made from construct paths: the construct's resources are the ones named ExpirySweep…
    const found = Object.entries(resources)
      .filter(([id]) => id.startsWith('ExpirySweep'))
      .flatMap(([, r]) =>
        ((r.Metadata?.cdk_nag as { rules_to_suppress?: Suppression[] } | undefined)?.rules_to_suppress ?? []).map(
          (rule) => ({ type: r.Type, rule }),
        ),
      );
    for (const { rule } of found) {
      const reason = rule.is_reason_encoded ? Buffer.from(rule.reason, 'base64').toString() : rule.reason;
      expect(reason.trim().length).toBeGreaterThanOrEqual(40);
      if (rule.id === 'AwsSolutions-IAM5') expect(rule.applies_to).toEqual(['Resource::*']);
    }
    expect([...new Set(found.map(({ type, rule }) => `${type} ${rule.id}`))].sort()).toEqual([
      'AWS::IAM::Policy AwsSolutions-IAM5',
      'AWS::IAM::Role AwsSolutions-IAM5',
      'AWS::Lambda::Function AwsSolutions-L1',
      'AWS::StepFunctions::StateMachine AwsSolutions-SF1',
    ]);
  });
});
