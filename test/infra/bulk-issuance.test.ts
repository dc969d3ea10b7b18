import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { AwsCustomResource } from 'aws-cdk-lib/custom-resources';
import { Match } from 'aws-cdk-lib/assertions';
import type { CertflowFunction } from '../../lib/constructs/certflow-function';
import { placeholdersOf } from '../../lib/asl';
import { BULK_DEFINITION_PATH } from '../../lib/constructs/bulk-issuance';
import { actionsOf, buildCertflowApp, CertflowApp, logicalId, resourcesOf, statementsOfRole } from './certflow-app';
import {
  type Definition,
  expectDeployedAsWritten,
  expectEveryTaskRetries,
  expectValidAsl,
  type State,
} from './asl-checks';

const SUBSTITUTIONS = [
  'PlanChunksFunctionArn',
  'IssueChunkFunctionArn',
  'AssembleZipFunctionArn',
  'RecordFailureFunctionArn',
  'DeleteChunkFilesFunctionArn',
  'TaskTableName',
  'EventBusName',
];
const aslText = readFileSync(BULK_DEFINITION_PATH, 'utf8');

/** Every state of a definition, nested Map and Parallel states included, with its path. */
function allStates(definition: Definition, prefix = ''): [string, State][] {
  return Object.entries(definition.States).flatMap(([name, state]): [string, State][] => {
    const nested: [string, State][] = [];
    const processor = (state.ItemProcessor ?? state.Iterator) as Definition | undefined;
    if (processor) nested.push(...allStates(processor, `${prefix}${name}/`));
    for (const branch of (state.Branches ?? []) as Definition[]) nested.push(...allStates(branch, `${prefix}${name}/`));
    return [[`${prefix}${name}`, state], ...nested];
  });
}

/** The ASL as deployed: placeholders replaced by values of the right shape. */
const render = (text: string): string =>
  text.replace(/\$\{([A-Za-z0-9_]+)\}/g, (_, name: string) =>
    name.endsWith('FunctionArn')
      ? `arn:aws:lambda:eu-west-1:111122223333:function:certflow-${name}`
      : `certflow-${name.toLowerCase()}`,
  );

let built: CertflowApp;
beforeAll(() => {
  built = buildCertflowApp();
});

describe('the bulk-issuance ASL file', () => {
  const definition = JSON.parse(aslText) as Definition;

  it('has exactly the seven placeholders the stack substitutes', () => {
    expect(placeholdersOf(aslText).sort()).toEqual([...SUBSTITUTIONS].sort());
  });

  it('validates with asl-validator, as written and as rendered', () => {
    expectValidAsl(aslText, render(aslText));
  });

  it('gives every Task state a Retry', () => {
    expectEveryTaskRetries(allStates(definition), 7);
  });

  it("announces the batch, then deletes the chunks' files; a cleanup that keeps failing still completes the batch", () => {
    const states = definition.States;
    expect(states.MarkTaskComplete!.Next).toBe('EmitBatchCompleted');
    expect(states.EmitBatchCompleted!.Next).toBe('DeleteChunkFiles');
    expect(states.DeleteChunkFiles).toMatchObject({
      Type: 'Task',
      Parameters: {
        FunctionName: '${DeleteChunkFilesFunctionArn}',
        Payload: { 'taskId.$': '$.zip.taskId', 'chunksTotal.$': '$.zip.chunksTotal' },
      },
      ResultPath: null,
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: null, Next: 'BatchComplete' }],
      Next: 'BatchComplete',
    });
  });

  it('fans chunks out in a Distributed Map of Express children that tolerates no failure', () => {
    const maps = allStates(definition).filter(([, s]) => s.Type === 'Map');
    expect(maps).toHaveLength(1);
    const [, map] = maps[0]!;
    expect(map).toMatchObject({
      ItemProcessor: { ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'EXPRESS' } },
      ToleratedFailurePercentage: 0,
    });
  });
});

describe('BulkIssuance state machine', () => {
  it('is a Standard state machine that logs ALL without execution data, with X-Ray tracing', () => {
    built.template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineType: 'STANDARD',
      LoggingConfiguration: {
        Level: 'ALL',
        IncludeExecutionData: false,
        Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: Match.anyValue() } }],
      },
      TracingConfiguration: { Enabled: true },
    });
  });

  it('substitutes exactly the seven placeholders of the ASL', () => {
    const [machine] = Object.values(built.template.findResources('AWS::StepFunctions::StateMachine'));
    const substitutions = (machine as { Properties: { DefinitionSubstitutions: Record<string, unknown> } }).Properties
      .DefinitionSubstitutions;
    expect(Object.keys(substitutions).sort()).toEqual([...SUBSTITUTIONS].sort());
    const issueChunk = logicalId(built.stack.bulkIssuance.issueChunk.function);
    expect(substitutions.IssueChunkFunctionArn).toEqual({ 'Fn::GetAtt': [issueChunk, 'Arn'] });
    expect(substitutions.TaskTableName).toEqual({ Ref: logicalId(built.stack.table.table) });
    expect(substitutions.EventBusName).toEqual({ Ref: logicalId(built.stack.bus.bus) });
  });

  it('deploys the ASL file itself, and no placeholder is left once substituted', () => {
    const [machine] = Object.values(built.template.findResources('AWS::StepFunctions::StateMachine'));
    const props = (
      machine as {
        Properties: { DefinitionS3Location: { Key: string }; DefinitionSubstitutions: Record<string, unknown> };
      }
    ).Properties;
    expectDeployedAsWritten(built.assembly, props, aslText);
  });

  it('lets the state machine invoke the five workflow functions and nothing else', () => {
    const { bulkIssuance } = built.stack;
    const statements = statementsOfRole(built.template, logicalId(bulkIssuance.stateMachine.role));
    const invoke = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('lambda:')));
    expect(invoke).toHaveLength(1);
    expect(actionsOf(invoke[0]!)).toEqual(['lambda:InvokeFunction']);
    const expected = [
      bulkIssuance.planChunks,
      bulkIssuance.issueChunk,
      bulkIssuance.assembleZip,
      bulkIssuance.recordFailure,
      bulkIssuance.deleteChunkFiles,
    ]
      .map((f) => ({ 'Fn::GetAtt': [logicalId(f.function), 'Arn'] }))
      .map((r) => JSON.stringify(r))
      .sort();
    expect(
      resourcesOf(invoke[0]!)
        .map((r) => JSON.stringify(r))
        .sort(),
    ).toEqual(expected);
  });

  it('lets the state machine update the task (MarkTaskComplete) and put events on the bus', () => {
    const statements = statementsOfRole(built.template, logicalId(built.stack.bulkIssuance.stateMachine.role));
    const table = { 'Fn::GetAtt': [logicalId(built.stack.table.table), 'Arn'] };
    const bus = { 'Fn::GetAtt': [logicalId(built.stack.bus.bus), 'Arn'] };
    expect(statements).toContainEqual(
      expect.objectContaining({ Action: 'dynamodb:UpdateItem', Effect: 'Allow', Resource: table }),
    );
    expect(statements).toContainEqual(expect.objectContaining({ Action: 'events:PutEvents', Resource: bus }));
  });

  it('lets IssueChunk read and update the task table (task, rate schedules) and put chunk leases, nothing more', () => {
    const statements = statementsOfRole(built.template, logicalId(built.stack.bulkIssuance.issueChunk.role));
    const table = { 'Fn::GetAtt': [logicalId(built.stack.table.table), 'Arn'] };
    const dynamo = statements.filter((st) => actionsOf(st).some((a) => a.startsWith('dynamodb:')));
    expect(dynamo).toHaveLength(1);
    expect(actionsOf(dynamo[0]!).sort()).toEqual(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem']);
    expect(dynamo[0]!.Resource).toEqual(table);
    // leases a dead attempt could not give back expire through the table's TTL
    built.template.hasResourceProperties('AWS::DynamoDB::Table', {
      TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true },
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
    });
  });

  it('lets the Distributed Map start, describe and stop the child executions of this state machine only', () => {
    const machine = logicalId(built.stack.bulkIssuance.stateMachine);
    const statements = statementsOfRole(built.template, logicalId(built.stack.bulkIssuance.stateMachine.role));
    const start = statements.find((s) => actionsOf(s).includes('states:StartExecution'));
    expect(start?.Resource).toEqual({ Ref: machine });
    const describe = statements.find((s) => actionsOf(s).includes('states:DescribeExecution'));
    expect(actionsOf(describe!).sort()).toEqual(['states:DescribeExecution', 'states:StopExecution']);
    const arn = JSON.stringify(describe!.Resource);
    expect(arn).toContain(':execution:');
    expect(arn).toContain(JSON.stringify({ 'Fn::GetAtt': [machine, 'Name'] }));
    expect(arn).toMatch(/"\/\*"\]\]\}$/);
  });
});

describe('BulkIssuance functions', () => {
  it('run on Node.js 22, arm64, traced, JSON logs into their own log group, source maps on', () => {
    // the AwsCustomResource provider of the rotation job is CDK's own function, not a CertflowFunction
    const functions = Object.fromEntries(
      Object.entries(built.template.findResources('AWS::Lambda::Function')).filter(
        ([id]) => !id.startsWith(`AWS${AwsCustomResource.PROVIDER_FUNCTION_UUID.replace(/-/g, '')}`),
      ),
    );
    // the five workflow functions, the API function, the inventory's record function, the registry revocation,
    // RevokeIssued, the sweep, the five rotation functions, and provisioning's API and four workflow functions
    expect(Object.keys(functions)).toHaveLength(20);
    for (const fn of Object.values(functions) as { Properties: Record<string, unknown> }[]) {
      expect(fn.Properties).toMatchObject({
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        TracingConfig: { Mode: 'Active' },
        LoggingConfig: { LogFormat: 'JSON', LogGroup: { Ref: expect.any(String) } },
        Environment: { Variables: expect.objectContaining({ NODE_OPTIONS: '--enable-source-maps' }) },
      });
    }
  });

  it('sizes IssueChunk at one full vCPU for 60 s (inside an EXPRESS child with its retries) and AssembleZip at 1 GB for 15 minutes', () => {
    const resources = built.template.toJSON().Resources as Record<string, { Properties: Record<string, unknown> }>;
    const props = (fn: CertflowFunction) => resources[logicalId(fn.function)]!.Properties;
    expect(props(built.stack.bulkIssuance.issueChunk)).toMatchObject({ MemorySize: 1769, Timeout: 60 });
    expect(props(built.stack.bulkIssuance.assembleZip)).toMatchObject({ MemorySize: 1024, Timeout: 900 });
    // deleting five keys per chunk, 1,000 a DeleteObjects: minutes at the largest batches
    expect(props(built.stack.bulkIssuance.deleteChunkFiles)).toMatchObject({ MemorySize: 256, Timeout: 300 });
    expect(props(built.stack.bulkIssuance.recordFailure)).toMatchObject({ MemorySize: 256, Timeout: 300 });
  });

  it('give the workflow functions the configured chunk size, concurrency and suppliers', () => {
    built.template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          CHUNK_SIZE: '1000',
          MAX_CONCURRENCY: '100',
          SUPPLIERS: '{}',
          CA_KEY_STORE: 'ssm',
        }),
      },
    });
  });

  it('give IssueChunk no service-wide action (no s3:*, dynamodb:* or any other wildcard action)', () => {
    const statements = statementsOfRole(built.template, logicalId(built.stack.bulkIssuance.issueChunk.role));
    const actions = statements.flatMap(actionsOf);
    expect(actions).not.toContain('s3:*');
    expect(actions).not.toContain('dynamodb:*');
    expect(actions.filter((a) => a.includes('*'))).toEqual([]);
  });

  it('give IssueChunk the CA reads it needs: SSM CA parameters, SecureString decryption via SSM, AWS IoT', () => {
    const statements = statementsOfRole(built.template, logicalId(built.stack.bulkIssuance.issueChunk.role));
    const ssm = statements.find((s) => actionsOf(s).includes('ssm:GetParameter'))!;
    expect(JSON.stringify(ssm.Resource)).toContain(':parameter/cdf-ca-key-*');
    expect(JSON.stringify(ssm.Resource)).toContain(':parameter/cdf-ca-chain-*');
    // SsmCaKeyStore reads the certificate of a CA certflow created from cdf-ca-cert-{caId}
    expect(JSON.stringify(ssm.Resource)).toContain(':parameter/cdf-ca-cert-*');
    expect(actionsOf(ssm)).toEqual(['ssm:GetParameter']);
    const decrypt = statements.find((s) => actionsOf(s).includes('kms:Decrypt'))!;
    expect(JSON.stringify(decrypt.Condition)).toContain('kms:ViaService');
    expect(statements.flatMap(actionsOf)).not.toContain('kms:Sign');
    const iot = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('iot:'))).flatMap(actionsOf);
    expect(iot.sort()).toEqual([
      'iot:DescribeCACertificate',
      'iot:DescribeCertificate',
      'iot:RegisterCertificate',
      'iot:RegisterCertificateWithoutCA',
    ]);
  });

  it('give RecordFailure deletes under batches/ and no object reads or writes', () => {
    const statements = statementsOfRole(built.template, logicalId(built.stack.bulkIssuance.recordFailure.role));
    const s3 = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('s3:')));
    expect(s3.flatMap(actionsOf)).toEqual(['s3:DeleteObject']);
    expect(JSON.stringify(s3[0]!.Resource)).toContain('/batches/*');
  });

  it('give DeleteChunkFiles s3:DeleteObject under batches/ only: no reads, writes, listing or table access', () => {
    const statements = statementsOfRole(built.template, logicalId(built.stack.bulkIssuance.deleteChunkFiles.role));
    const s3 = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('s3:')));
    expect(s3.flatMap(actionsOf)).toEqual(['s3:DeleteObject']);
    expect(resourcesOf(s3[0]!)).toHaveLength(1);
    expect(JSON.stringify(s3[0]!.Resource)).toMatch(/"\/batches\/\*"\]\]\}$/);
    expect(statements.flatMap(actionsOf).filter((a) => a.startsWith('dynamodb:'))).toEqual([]);
  });

  it('give the functions that read a task BatchGetItem for its done shards', () => {
    const { bulkIssuance } = built.stack;
    for (const fn of [bulkIssuance.planChunks, bulkIssuance.assembleZip, bulkIssuance.recordFailure]) {
      const actions = statementsOfRole(built.template, logicalId(fn.role)).flatMap(actionsOf);
      expect(actions).toEqual(expect.arrayContaining(['dynamodb:GetItem', 'dynamodb:BatchGetItem']));
    }
  });

  it('are bundled by the local esbuild: minified CommonJS with a source map, the AWS SDK included (locked versions)', () => {
    const fn = (built.template.toJSON().Resources as Record<string, { Properties: { Code: { S3Key: string } } }>)[
      logicalId(built.stack.bulkIssuance.issueChunk.function)
    ]!;
    const dir = path.join(built.assembly.directory, `asset.${fn.Properties.Code.S3Key.replace(/\.zip$/, '')}`);
    expect(readdirSync(dir).sort()).toEqual(['index.js', 'index.js.map']);
    const code = readFileSync(path.join(dir, 'index.js'), 'utf8');
    expect(code).not.toMatch(/require\("@aws-sdk\/client-(s3|dynamodb|ssm|iot|kms|eventbridge)"\)/);
    expect(code).toContain('PutObjectCommand');
    expect(code).toContain('sourceMappingURL=index.js.map');
    expect(code).not.toMatch(/^import /m);
  });
});
