import { readFileSync } from 'node:fs';
import { Match } from 'aws-cdk-lib/assertions';
import { placeholdersOf } from '../../lib/asl';
import { REVOKE_ISSUED_DEFINITION_PATH } from '../../lib/constructs/compromise-response';
import { cdkEventPattern, INVENTORY_DEFINITION_PATH } from '../../lib/constructs/inventory';
import { INVENTORY_RULE_PATTERN } from '../../lambdas/core/events';
import { INVENTORY_RULE_PATTERN as LOCAL_RULE_PATTERN } from '../../local/certflow';
import { CaEnv, InventoryEnv } from '../../lambdas/handlers/env';
import {
  actionsOf,
  buildCertflowApp,
  CertflowApp,
  logicalId,
  resourcesOf,
  resourceText,
  Statement,
  statementsOfRole,
} from './certflow-app';
import {
  type Definition,
  expectDeployedAsWritten,
  expectEveryTaskRetries,
  expectValidAsl,
  statesOf,
  withFunctionArns,
} from './asl-checks';

type Resource = { Type: string; Properties: Record<string, unknown> };

const aslText = readFileSync(INVENTORY_DEFINITION_PATH, 'utf8');
const revokeIssuedAsl = readFileSync(REVOKE_ISSUED_DEFINITION_PATH, 'utf8');

let built: CertflowApp;
let resources: Record<string, Resource>;
beforeAll(() => {
  // nothing here depends on the function bundles (bulk-issuance.test.ts bundles)
  built = buildCertflowApp({ bundle: false });
  resources = built.template.toJSON().Resources as typeof resources;
});

const machineProps = () =>
  resources[logicalId(built.stack.inventory.stateMachine)]!.Properties as {
    DefinitionS3Location: { Key: string };
    DefinitionSubstitutions: Record<string, unknown>;
  } & Record<string, unknown>;

describe('the inventory ASL file', () => {
  const definition = JSON.parse(aslText) as Definition;

  it('validates with asl-validator, as written and with its placeholders replaced', () => {
    expectValidAsl(aslText, withFunctionArns(aslText));
  });

  it('gives every Task state a Retry', () => {
    expectEveryTaskRetries(Object.entries(definition.States));
  });
});

describe('CertificateInventory state machine', () => {
  it('is an Express state machine that logs errors to its log group, with X-Ray tracing', () => {
    expect(machineProps()).toMatchObject({
      StateMachineType: 'EXPRESS',
      LoggingConfiguration: {
        Level: 'ERROR',
        Destinations: [
          {
            CloudWatchLogsLogGroup: {
              LogGroupArn: { 'Fn::GetAtt': [logicalId(built.stack.inventory.logGroup), 'Arn'] },
            },
          },
        ],
      },
      TracingConfiguration: { Enabled: true },
    });
  });

  it('substitutes every placeholder of the ASL and nothing else; none is left in the deployed file', () => {
    const props = machineProps();
    expect(Object.keys(props.DefinitionSubstitutions).sort()).toEqual(placeholdersOf(aslText).sort());
    expect(props.DefinitionSubstitutions.RecordInventoryFunctionArn).toEqual({
      'Fn::GetAtt': [logicalId(built.stack.inventory.recordInventory.function), 'Arn'],
    });
    expectDeployedAsWritten(built.assembly, props, aslText);
  });

  it('may invoke the record-inventory function and nothing else', () => {
    const statements = statementsOfRole(built.template, logicalId(built.stack.inventory.stateMachine.role));
    const actions = statements.flatMap(actionsOf);
    expect(actions.filter((a) => !/^(logs|xray):/.test(a))).toEqual(['lambda:InvokeFunction']);
    const invoke = statements.find((s) => actionsOf(s).includes('lambda:InvokeFunction'))!;
    expect(resourcesOf(invoke)).toEqual([
      { 'Fn::GetAtt': [logicalId(built.stack.inventory.recordInventory.function), 'Arn'] },
    ]);
  });
});

describe('CertificateInventory rule', () => {
  const rule = () => resources[logicalId(built.stack.inventory.rule)]!.Properties;
  const target = () => (rule().Targets as Record<string, unknown>[])[0]!;

  it('matches exactly INVENTORY_RULE_PATTERN, the pattern of the local bus too, on the certflow bus', () => {
    expect(LOCAL_RULE_PATTERN).toBe(INVENTORY_RULE_PATTERN);
    expect(rule().EventPattern).toEqual(INVENTORY_RULE_PATTERN);
    expect(INVENTORY_RULE_PATTERN).toEqual({
      source: ['certflow'],
      'detail-type': ['Certificate Issued', 'Certificate Revoked'],
    });
    expect(rule().EventBusName).toEqual({ Ref: logicalId(built.stack.bus.bus) });
  });

  it('targets the state machine, with a retry policy and a dead-letter queue', () => {
    expect(rule().Targets).toHaveLength(1);
    expect(target()).toMatchObject({
      Arn: { Ref: logicalId(built.stack.inventory.stateMachine) },
      RoleArn: { 'Fn::GetAtt': [logicalId(built.stack.inventory.ruleRole), 'Arn'] },
      DeadLetterConfig: { Arn: { 'Fn::GetAtt': [logicalId(built.stack.inventory.deadLetterQueue), 'Arn'] } },
      RetryPolicy: { MaximumRetryAttempts: 185, MaximumEventAgeInSeconds: 86_400 },
    });
  });

  it("gives the rule's role states:StartExecution on the inventory state machine and nothing else", () => {
    const statements = statementsOfRole(built.template, logicalId(built.stack.inventory.ruleRole));
    expect(statements).toEqual([
      {
        Effect: 'Allow',
        Action: 'states:StartExecution',
        Resource: { Ref: logicalId(built.stack.inventory.stateMachine) },
      },
    ]);
    const role = resources[logicalId(built.stack.inventory.ruleRole)]!.Properties;
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

  it('dead-letters into an encrypted queue that refuses requests without TLS and takes messages from this rule only', () => {
    const queue = logicalId(built.stack.inventory.deadLetterQueue);
    expect(resources[queue]!.Properties).toMatchObject({ SqsManagedSseEnabled: true });
    built.template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      Queues: [{ Ref: queue }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          Match.objectLike({
            Effect: 'Allow',
            Action: 'sqs:SendMessage',
            Principal: { Service: 'events.amazonaws.com' },
            Condition: {
              ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [logicalId(built.stack.inventory.rule), 'Arn'] } },
            },
          }),
        ]),
      },
    });
  });
});

describe('cdkEventPattern', () => {
  it('ok/wire form: detail-type becomes detailType, other keys stay', () => {
    expect(cdkEventPattern({ source: ['certflow'], 'detail-type': ['A'], detail: { x: [1] } })).toEqual({
      source: ['certflow'],
      detailType: ['A'],
      detail: { x: [1] },
    });
  });

  it('error/cdk form: refuses detailType, which EventBridge would not read', () => {
    expect(() => cdkEventPattern({ detailType: ['A'] })).toThrow(/detail-type/);
  });
});

describe('CertificateInventory record-inventory function', () => {
  const fn = () => resources[logicalId(built.stack.inventory.recordInventory.function)]!.Properties;

  it('has 256 MB, 30 s, and an environment InventoryEnv accepts that names the inventory table', () => {
    expect(fn()).toMatchObject({ MemorySize: 256, Timeout: 30 });
    const { NODE_OPTIONS, ...env } = (fn().Environment as { Variables: Record<string, unknown> }).Variables;
    expect(NODE_OPTIONS).toBe('--enable-source-maps');
    expect(env).toEqual({ INVENTORY_TABLE_NAME: { Ref: logicalId(built.stack.inventory.inventoryTable.table) } });
    const asStrings = Object.fromEntries(
      Object.entries(env).map(([k, v]) => [k, typeof v === 'string' ? v : `token:${JSON.stringify(v)}`]),
    );
    expect(InventoryEnv.safeParse(asStrings).error?.issues ?? []).toEqual([]);
  });

  it('may put, update and get items of the inventory table only: no dynamodb:*, no s3:*', () => {
    const statements = statementsOfRole(built.template, logicalId(built.stack.inventory.recordInventory.role));
    const actions = statements.flatMap(actionsOf);
    expect(actions).not.toContain('dynamodb:*');
    expect(actions).not.toContain('s3:*');
    expect(actions.filter((a) => a.startsWith('s3:'))).toEqual([]);
    const dynamo = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('dynamodb:')));
    expect(dynamo).toHaveLength(1);
    expect(actionsOf(dynamo[0]!).sort()).toEqual(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem']);
    expect(resourcesOf(dynamo[0]!)).toEqual([
      { 'Fn::GetAtt': [logicalId(built.stack.inventory.inventoryTable.table), 'Arn'] },
    ]);
    expect(actions.filter((a) => !/^(dynamodb|logs|xray):/.test(a))).toEqual([]);
  });
});

describe('CaHierarchy', () => {
  it('has a customer managed KMS key with rotation, retained', () => {
    built.template.hasResource('AWS::KMS::Key', {
      Properties: Match.objectLike({ EnableKeyRotation: true }),
      DeletionPolicy: 'Retain',
    });
  });

  it('has the rotation thing group cdfRotateCertificates, retained', () => {
    built.template.hasResource('AWS::IoT::ThingGroup', {
      Properties: Match.objectLike({ ThingGroupName: 'cdfRotateCertificates' }),
      DeletionPolicy: 'Retain',
    });
  });
});

const functionStatements = (): Statement[] =>
  statementsOfRole(built.template, logicalId(built.stack.compromiseResponse.revokeIssued.role));
const withAction = (prefix: string) =>
  functionStatements()
    .filter((s) => actionsOf(s).some((a) => a.startsWith(prefix)))
    .map((s) => ({ actions: actionsOf(s).sort(), resources: resourcesOf(s).map(resourceText).sort() }));

describe('the revoke-issued ASL file', () => {
  it('validates with asl-validator, as written and with its placeholders replaced', () => {
    expectValidAsl(revokeIssuedAsl, withFunctionArns(revokeIssuedAsl));
  });

  it('gives every Task state a Retry', () => {
    expectEveryTaskRetries(statesOf(revokeIssuedAsl));
  });
});

describe('CompromiseResponse state machine', () => {
  const props = () =>
    resources[logicalId(built.stack.compromiseResponse.stateMachine)]!.Properties as {
      DefinitionS3Location: { Key: string };
      DefinitionSubstitutions: Record<string, unknown>;
    } & Record<string, unknown>;

  it('is a Standard state machine that logs ALL without execution data, with X-Ray tracing', () => {
    expect(props()).toMatchObject({
      StateMachineType: 'STANDARD',
      LoggingConfiguration: { Level: 'ALL', IncludeExecutionData: false },
      TracingConfiguration: { Enabled: true },
    });
  });

  it('substitutes every placeholder of the ASL and nothing else; none is left in the deployed file', () => {
    expect(Object.keys(props().DefinitionSubstitutions).sort()).toEqual(placeholdersOf(revokeIssuedAsl).sort());
    expect(props().DefinitionSubstitutions.RevokeIssuedFunctionArn).toEqual({
      'Fn::GetAtt': [logicalId(built.stack.compromiseResponse.revokeIssued.function), 'Arn'],
    });
    expectDeployedAsWritten(built.assembly, props(), revokeIssuedAsl);
  });

  it('may invoke the RevokeIssued function and nothing else', () => {
    const statements = statementsOfRole(built.template, logicalId(built.stack.compromiseResponse.stateMachine.role));
    expect(statements.flatMap(actionsOf).filter((a) => !/^(logs|xray):/.test(a))).toEqual(['lambda:InvokeFunction']);
    const invoke = statements.find((s) => actionsOf(s).includes('lambda:InvokeFunction'))!;
    expect(resourcesOf(invoke)).toEqual([
      { 'Fn::GetAtt': [logicalId(built.stack.compromiseResponse.revokeIssued.function), 'Arn'] },
    ]);
  });
});

describe('CompromiseResponse RevokeIssued function', () => {
  it('has an environment CaEnv accepts (deploy-time values as tokens), with no variable CaEnv does not declare', () => {
    const fn = resources[logicalId(built.stack.compromiseResponse.revokeIssued.function)]!.Properties;
    const { NODE_OPTIONS, ...env } = (fn.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(NODE_OPTIONS).toBe('--enable-source-maps');
    const asStrings = Object.fromEntries(
      Object.entries(env).map(([k, v]) => [k, typeof v === 'string' ? v : `token:${JSON.stringify(v)}`]),
    );
    expect(CaEnv.safeParse(asStrings).error?.issues ?? []).toEqual([]);
    expect(Object.keys(env).sort()).toEqual(Object.keys(CaEnv.shape).sort());
  });

  it('reads CA keys but never writes them: GetParameter and kms:Decrypt only', () => {
    expect(withAction('ssm:').flatMap((s) => s.actions)).toEqual(['ssm:GetParameter']);
    expect(withAction('kms:').flatMap((s) => s.actions)).toEqual(['kms:Decrypt']);
  });

  it('queries the byIssuer index only, updates inventory and CA items, and writes CRLs only', () => {
    const { inventory, bucket } = built.stack;
    const inventoryTable = logicalId(inventory.inventoryTable.table);
    expect(withAction('dynamodb:')).toEqual(
      expect.arrayContaining([
        { actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem'], resources: [`\${${inventoryTable}.Arn}`] },
        {
          actions: ['dynamodb:Query'],
          resources: [
            `arn:\${AWS::Partition}:dynamodb:\${AWS::Region}:\${AWS::AccountId}:table/\${${inventoryTable}}/index/byIssuer`,
          ],
        },
        { actions: ['dynamodb:UpdateItem'], resources: [`\${${logicalId(inventory.caTable.table)}.Arn}`] },
      ]),
    );
    expect(withAction('dynamodb:')).toHaveLength(3);
    expect(withAction('s3:')).toEqual([
      { actions: ['s3:PutObject'], resources: [`\${${logicalId(bucket.bucket)}.Arn}/crls/*`] },
    ]);
  });

  it('has no service-wide action', () => {
    const actions = functionStatements().flatMap(actionsOf);
    expect(actions.filter((a) => a.includes('*'))).toEqual([]);
  });
});
