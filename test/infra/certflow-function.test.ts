import { App, Aws, Stack, Token } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { z } from 'zod';
import { CertflowFunction, checkEnvironment, handlerEntry } from '../../lib/constructs/certflow-function';
import { BulkEnv } from '../../lambdas/handlers/env';

/** A stack whose assets are not bundled: these tests are about the construct, not the bundle. */
const unbundledStack = () => new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Test');
const entry = handlerEntry('sfn-plan-chunks');
const tableName = Aws.STACK_NAME;

describe('checkEnvironment', () => {
  const Schema = z.object({ NAME: z.string().min(1), SIZE: z.string().regex(/^\d+$/).default('1') });

  it('accepts an environment the schema accepts', () => {
    expect(() => checkEnvironment(Schema, { NAME: 'tasks', SIZE: '10' })).not.toThrow();
  });

  it('error/missing: names the variable', () => {
    expect(() => checkEnvironment(Schema, { SIZE: '10' }, 'Fn')).toThrow(/invalid environment for Fn: NAME/);
  });

  it('error/malformed: names the variable', () => {
    expect(() => checkEnvironment(Schema, { NAME: 'x', SIZE: 'ten' })).toThrow(/SIZE/);
  });

  it('ok/token: a deploy-time value counts as present and is not checked further', () => {
    expect(() => checkEnvironment(Schema, { NAME: tableName, SIZE: Token.asString({ Ref: 'Size' }) })).not.toThrow();
  });
});

describe('CertflowFunction', () => {
  const environment = { TASK_TABLE_NAME: tableName, BUCKET_NAME: 'bucket', EVENT_BUS_NAME: 'bus' };

  it('fails the synth when a required variable is missing', () => {
    const stack = unbundledStack();
    expect(
      () =>
        new CertflowFunction(stack, 'Fn', {
          entry,
          envSchema: BulkEnv,
          // @ts-expect-error TASK_TABLE_NAME is required by BulkEnv
          environment: { BUCKET_NAME: 'bucket', EVENT_BUS_NAME: 'bus' },
        }),
    ).toThrow(/TASK_TABLE_NAME/);
  });

  it('fails the synth when a variable does not parse', () => {
    const stack = unbundledStack();
    expect(
      () =>
        new CertflowFunction(stack, 'Fn', {
          entry,
          envSchema: BulkEnv,
          environment: { ...environment, CHUNK_SIZE: 'many' },
        }),
    ).toThrow(/CHUNK_SIZE/);
  });

  it('builds a Node.js 22 arm64 function with tracing, JSON logs, its own log group and an explicit role', () => {
    const stack = unbundledStack();
    const fn = new CertflowFunction(stack, 'Fn', { entry, envSchema: BulkEnv, environment });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      TracingConfig: { Mode: 'Active' },
      LoggingConfig: {
        LogFormat: 'JSON',
        LogGroup: { Ref: stack.getLogicalId(fn.logGroup.node.defaultChild as never) },
      },
      Environment: {
        Variables: { ...environment, TASK_TABLE_NAME: { Ref: 'AWS::StackName' }, NODE_OPTIONS: '--enable-source-maps' },
      },
      MemorySize: 512,
      Timeout: 30,
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
    const roles = Object.values(template.findResources('AWS::IAM::Role')) as { Properties: Record<string, unknown> }[];
    expect(roles).toHaveLength(1);
    expect(roles[0]!.Properties.ManagedPolicyArns).toBeUndefined();
  });
});
