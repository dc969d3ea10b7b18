/** Helpers for the shared ASL files of `statemachines/`: their `${Name}` placeholders and the stack's values. */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { DefinitionBody, type LogLevel, StateMachine, type StateMachineType } from 'aws-cdk-lib/aws-stepfunctions';
import { NagSuppressions } from 'cdk-nag';
import type { Construct } from 'constructs';
import { PROJECT_ROOT } from './constructs/certflow-function';

/** The `${Name}` placeholders of an ASL document, each once. */
export function placeholdersOf(definition: string): string[] {
  return [...new Set([...definition.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]!))];
}

/**
 * Fails the synth unless `substitutions` gives a value to every placeholder of the ASL document and has no value
 * without a placeholder (a renamed placeholder would otherwise reach Step Functions as literal `${Name}` text).
 */
export function checkSubstitutions(
  definitionPath: string,
  definition: string,
  substitutions: Readonly<Record<string, string>>,
): void {
  const placeholders = placeholdersOf(definition);
  const missing = placeholders.filter((p) => !(p in substitutions));
  const unused = Object.keys(substitutions).filter((k) => !placeholders.includes(k));
  if (missing.length > 0 || unused.length > 0) {
    throw new Error(
      `${path.relative(PROJECT_ROOT, definitionPath)}: placeholders without a value: [${missing.join(', ')}], ` +
        `values without a placeholder: [${unused.join(', ')}]`,
    );
  }
}

export interface AslStateMachineProps {
  /** names the vended log group `/aws/vendedlogs/states/{stack}-{name}` */
  name: string;
  comment: string;
  /** an ASL file of statemachines/ */
  definitionPath: string;
  /** a value for every `${Name}` placeholder of the file, and no other (checked at synth) */
  substitutions: Record<string, string>;
  type: StateMachineType;
  logs: { level: LogLevel; includeExecutionData: boolean };
  logRetention: RetentionDays;
  /** the functions its Tasks invoke (unqualified ARNs): the only lambda:InvokeFunction it gets */
  invokes: string[];
}

/**
 * A state machine from a shared ASL file, as every certflow workflow is deployed: placeholders checked, a retained
 * vended log group, X-Ray tracing, invoke rights on its own functions only, and the cdk-nag finding for the
 * tracing/log-delivery actions that have no resource-level permissions. Children `StateMachineLogs` and
 * `StateMachine` of `scope`.
 */
export function aslStateMachine(
  scope: Construct,
  props: AslStateMachineProps,
): { stateMachine: StateMachine; logGroup: LogGroup; definition: string } {
  const definition = readFileSync(props.definitionPath, 'utf8');
  checkSubstitutions(props.definitionPath, definition, props.substitutions);
  const logGroup = new LogGroup(scope, 'StateMachineLogs', {
    // the vended-logs prefix keeps CloudWatch Logs' resource policy small
    logGroupName: `/aws/vendedlogs/states/${Stack.of(scope).stackName}-${props.name}`,
    retention: props.logRetention,
    removalPolicy: RemovalPolicy.RETAIN,
  });
  const stateMachine = new StateMachine(scope, 'StateMachine', {
    comment: props.comment,
    stateMachineType: props.type,
    definitionBody: DefinitionBody.fromFile(props.definitionPath),
    definitionSubstitutions: props.substitutions,
    logs: { destination: logGroup, ...props.logs },
    tracingEnabled: true,
  });
  stateMachine.addToRolePolicy(new PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: props.invokes }));
  NagSuppressions.addResourceSuppressions(
    stateMachine.role,
    [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          'Resource::* only carries the X-Ray write/sampling actions (tracing) and the CloudWatch Logs ' +
          'log-delivery actions (execution logging): neither service supports resource-level permissions for them.',
        appliesTo: ['Resource::*'],
      },
    ],
    true,
  );
  return { stateMachine, logGroup, definition };
}
