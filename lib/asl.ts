/** Helpers for the shared ASL files of `statemachines/`: their `${Name}` placeholders and the stack's values. */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { ArnFormat, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Policy, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { DefinitionBody, type LogLevel, StateMachine, type StateMachineType } from 'aws-cdk-lib/aws-stepfunctions';
import { NagSuppressions } from 'cdk-nag';
import type { Construct } from 'constructs';
import { PROJECT_ROOT } from './constructs/certflow-function';
import { arnFindingMatching } from './nag';

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

/** The labels of the Distributed Map states of an ASL document (their child executions are named after them). */
export function distributedMapLabels(definition: string): string[] {
  const labels: string[] = [];
  const visit = (states: Record<string, Record<string, unknown>>) => {
    for (const [name, state] of Object.entries(states)) {
      const processor = (state.ItemProcessor ?? state.Iterator) as
        { ProcessorConfig?: { Mode?: string }; States?: Record<string, Record<string, unknown>> } | undefined;
      if (state.Type === 'Map' && processor?.ProcessorConfig?.Mode === 'DISTRIBUTED') {
        labels.push(typeof state.Label === 'string' ? state.Label : name);
      }
      if (processor?.States) visit(processor.States);
      for (const branch of (state.Branches ?? []) as { States: Record<string, Record<string, unknown>> }[]) {
        visit(branch.States);
      }
    }
  };
  visit((JSON.parse(definition) as { States: Record<string, Record<string, unknown>> }).States);
  return labels;
}

/**
 * A Distributed Map runs child executions of its state machine: it needs to start, describe and stop them (and
 * redrive its map runs). A separate policy (`DistributedMapPolicy` of `scope`): the state machine's own ARN in its
 * default policy would be a dependency cycle.
 */
export function grantDistributedMap(scope: Construct, stateMachine: StateMachine, definition: string): Policy {
  const stack = Stack.of(scope);
  const name = stateMachine.stateMachineName;
  const executionArn = (resourceName: string) =>
    stack.formatArn({
      service: 'states',
      resource: 'execution',
      resourceName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
  const distributedMap = new Policy(scope, 'DistributedMapPolicy', {
    statements: [
      new PolicyStatement({ actions: ['states:StartExecution'], resources: [stateMachine.stateMachineArn] }),
      new PolicyStatement({
        actions: ['states:DescribeExecution', 'states:StopExecution'],
        resources: [executionArn(`${name}/*`)],
      }),
      new PolicyStatement({
        actions: ['states:RedriveExecution'],
        resources: distributedMapLabels(definition).map((label) => executionArn(`${name}/${label}:*`)),
      }),
    ],
  });
  stateMachine.role.attachInlinePolicy(distributedMap);
  NagSuppressions.addResourceSuppressions(distributedMap, [
    {
      id: 'AwsSolutions-IAM5',
      reason:
        'Distributed Map child executions are named {stateMachine}/{mapRunLabel}:{id} at run time: describe/stop ' +
        'and redrive are limited to the child executions of this state machine.',
      appliesTo: [arnFindingMatching('states', 'execution:<[A-Za-z0-9]+\\.Name>\\/.+')],
    },
  ]);
  return distributedMap;
}
