/**
 * Builds the certflow app once for a test file: the stack with cdk-nag applied, its template and its cloud
 * assembly. NodejsFunction bundling (local esbuild) runs unless `bundle: false`.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { App, Aspects, CfnElement, Stack } from 'aws-cdk-lib';
import { Annotations, Template } from 'aws-cdk-lib/assertions';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { CertflowStack } from '../../lib/certflow-stack';
import { DeployConfigInput, parseDeployConfig } from '../../lib/config';

export interface CertflowApp {
  app: App;
  stack: CertflowStack;
  template: Template;
  /** the annotations (cdk-nag findings among them); made once, as each Annotations.fromStack synthesizes again */
  annotations: Annotations;
  assembly: CloudAssembly;
}

export function buildCertflowApp(options: { config?: DeployConfigInput; bundle?: boolean } = {}): CertflowApp {
  const app = new App({
    // an empty list skips asset bundling (the template is the same but for asset hashes)
    context: options.bundle === false ? { 'aws:cdk:bundling-stacks': [] } : {},
  });
  const stack = new CertflowStack(app, 'Certflow', { config: parseDeployConfig(options.config ?? {}) });
  Aspects.of(app).add(new AwsSolutionsChecks());
  const template = Template.fromStack(stack);
  const annotations = Annotations.fromStack(stack);
  const assembly = app.synth();
  return { app, stack, template, annotations, assembly };
}

/** The logical id of a construct's CloudFormation resource. */
export function logicalId(construct: IConstruct): string {
  const cfn = construct.node.defaultChild;
  if (!(cfn instanceof CfnElement)) throw new Error(`${construct.node.path} has no CloudFormation resource`);
  return Stack.of(construct).getLogicalId(cfn);
}

export interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, unknown>;
}

export const actionsOf = (s: Statement): string[] => (Array.isArray(s.Action) ? s.Action : [s.Action]);
export const resourcesOf = (s: Statement): unknown[] => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]);

/** Every statement of every policy attached to the role with this logical id (inline AWS::IAM::Policy resources). */
export function statementsOfRole(template: Template, roleLogicalId: string): Statement[] {
  const policies = template.findResources('AWS::IAM::Policy') as Record<
    string,
    { Properties: { Roles: unknown[]; PolicyDocument: { Statement: Statement[] } } }
  >;
  return Object.values(policies)
    .filter((p) => p.Properties.Roles.some((r) => JSON.stringify(r) === JSON.stringify({ Ref: roleLogicalId })))
    .flatMap((p) => p.Properties.PolicyDocument.Statement);
}

/** The text of an asset file of the assembly, by its S3 object key as the template names it. */
export function assetText(assembly: CloudAssembly, objectKey: string): string {
  return readFileSync(path.join(assembly.directory, `asset.${objectKey}`), 'utf8');
}

/**
 * A resource of a policy statement as text: `Fn::Join` flattened, `Ref` as `${Name}`, `Fn::GetAtt` as
 * `${Name.Attribute}`, e.g. `arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/cdf-ca-key-*`.
 */
export function resourceText(resource: unknown): string {
  if (typeof resource === 'string') return resource;
  const r = resource as Record<string, unknown>;
  if ('Ref' in r) return `\${${String(r.Ref)}}`;
  if ('Fn::GetAtt' in r) return `\${${(r['Fn::GetAtt'] as string[]).join('.')}}`;
  if ('Fn::Join' in r) {
    const [separator, parts] = r['Fn::Join'] as [string, unknown[]];
    return parts.map(resourceText).join(separator);
  }
  throw new Error(`no text for ${JSON.stringify(resource)}`);
}
