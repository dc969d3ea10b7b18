/** The checks every ASL file of statemachines/ gets, and its deployment by an `aslStateMachine` construct. */
import aslValidator from 'asl-validator';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { assetText } from './certflow-app';

export type State = Record<string, unknown> & { Type: string };
export type Definition = { StartAt: string; States: Record<string, State> };

/** The top-level states of an ASL text, with their names. */
export const statesOf = (aslText: string): [string, State][] =>
  Object.entries((JSON.parse(aslText) as Definition).States);

/** The ASL as deployed when every placeholder is a function: each `${Name}` replaced by a Lambda ARN. */
export const withFunctionArns = (aslText: string): string =>
  aslText.replace(
    /\$\{([A-Za-z0-9_]+)\}/g,
    (_, name: string) => `arn:aws:lambda:eu-west-1:111122223333:function:certflow-${name}`,
  );

/** asl-validator, with paths and ARNs checked, finds nothing wrong in any of the texts. */
export function expectValidAsl(...texts: string[]): void {
  for (const text of texts) {
    const result = aslValidator(JSON.parse(text), { checkPaths: true, checkArn: true });
    expect(result.errors).toEqual([]);
    expect(result.isValid).toBe(true);
  }
}

/** There are at least `minimum` Task states among `states`, and every one of them has a Retry. */
export function expectEveryTaskRetries(states: [string, State][], minimum = 1): void {
  const tasks = states.filter(([, s]) => s.Type === 'Task');
  expect(tasks.length).toBeGreaterThanOrEqual(minimum);
  const withoutRetry = tasks.filter(([, s]) => !Array.isArray(s.Retry) || s.Retry.length === 0).map(([n]) => n);
  expect(withoutRetry).toEqual([]);
}

/** The state machine deploys the ASL file itself, and no placeholder is left once its substitutions are made. */
export function expectDeployedAsWritten(
  assembly: CloudAssembly,
  props: { DefinitionS3Location: { Key: string }; DefinitionSubstitutions: Record<string, unknown> },
  aslText: string,
): void {
  const deployed = assetText(assembly, props.DefinitionS3Location.Key);
  expect(deployed).toBe(aslText);
  const substituted = Object.keys(props.DefinitionSubstitutions).reduce(
    (text, name) => text.split(`\${${name}}`).join('VALUE'),
    deployed,
  );
  expect(substituted).not.toMatch(/\$\{/);
}
