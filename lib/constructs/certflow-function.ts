import * as path from 'node:path';
import { Duration, RemovalPolicy, Token } from 'aws-cdk-lib';
import { IGrantable, IPrincipal, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import {
  ApplicationLogLevel,
  Architecture,
  LoggingFormat,
  Runtime,
  SystemLogLevel,
  Tracing,
} from 'aws-cdk-lib/aws-lambda';
import { LogLevel, NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import type { z } from 'zod';

/** The repository root: handler entries, the lock file and the ASL files are found from here. */
export const PROJECT_ROOT = path.resolve(__dirname, '..', '..');

/** The source file of a Lambda entry point, e.g. `handlerEntry('sfn-issue-chunk')`. */
export const handlerEntry = (name: string): string => path.join(PROJECT_ROOT, 'lambdas', 'handlers', `${name}.ts`);

/**
 * A function's environment typed from its zod schema: every variable the schema requires must be given, the ones
 * with a default may be; all values are strings (tokens such as a table name are strings at synth time).
 */
export type FunctionEnvironment<S extends z.ZodObject> = { [K in keyof z.input<S>]: string };

/**
 * Validates `environment` against `schema` at synth time. A value that is an unresolved token (a table name, an
 * ARN …) is only known at deploy time: it counts as present, and the schema's checks of its content are skipped.
 */
export function checkEnvironment(
  schema: z.ZodObject,
  environment: Readonly<Record<string, string | undefined>>,
  what = 'function',
): void {
  const result = schema.safeParse(environment);
  if (result.success) return;
  const problems = result.error.issues.filter((issue) => {
    const key = issue.path[0];
    const value = typeof key === 'string' ? environment[key] : undefined;
    return !(typeof value === 'string' && Token.isUnresolved(value));
  });
  if (problems.length === 0) return;
  const list = problems.map((i) => `${i.path.join('.') || '(environment)'}: ${i.message}`).join('; ');
  throw new Error(`invalid environment for ${what}: ${list}`);
}

export interface CertflowFunctionProps<S extends z.ZodObject> {
  /** the handler source file (see `handlerEntry`); its export `handler` is the entry point */
  readonly entry: string;
  readonly description?: string;
  /** the zod schema the handler reads its environment with (`lambdas/handlers/env.ts`) */
  readonly envSchema: S;
  /** checked against `envSchema` at synth: a missing or malformed variable fails the synth */
  readonly environment: FunctionEnvironment<S>;
  /** MB, default 512 */
  readonly memorySize?: number;
  /** default 30 seconds */
  readonly timeout?: Duration;
  /** retention of the function's log group, default three months */
  readonly logRetention?: RetentionDays;
  /** what happens to the log group when the stack is deleted, default RETAIN */
  readonly logRemovalPolicy?: RemovalPolicy;
}

/** The X-Ray actions that tracing needs; X-Ray has no resource-level permissions, so they take `*`. */
export const XRAY_WRITE_ACTIONS = ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'];

/**
 * A certflow Lambda: NodejsFunction on Node.js 22 / arm64, X-Ray tracing, JSON logs into an explicit log group,
 * minified CommonJS bundle with source maps (the AWS SDK v3 comes from the runtime), an explicit role with no
 * managed policy, and an environment typed and validated from the handler's zod schema.
 */
export class CertflowFunction<S extends z.ZodObject = z.ZodObject> extends Construct implements IGrantable {
  readonly function: NodejsFunction;
  readonly role: Role;
  readonly logGroup: LogGroup;
  readonly grantPrincipal: IPrincipal;

  constructor(scope: Construct, id: string, props: CertflowFunctionProps<S>) {
    super(scope, id);
    const environment = props.environment as Record<string, string | undefined>;
    checkEnvironment(props.envSchema, environment, this.node.path);

    this.logGroup = new LogGroup(this, 'LogGroup', {
      retention: props.logRetention ?? RetentionDays.THREE_MONTHS,
      removalPolicy: props.logRemovalPolicy ?? RemovalPolicy.RETAIN,
    });
    this.role = new Role(this, 'Role', {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: `certflow ${id}: explicit least-privilege policies, no managed policy`,
    });
    this.grantPrincipal = this.role;
    // logs:CreateLogGroup is not needed: the log group exists before the function
    this.logGroup.grantWrite(this.role);

    const defined: Record<string, string> = {};
    for (const [name, value] of Object.entries(environment)) if (value !== undefined) defined[name] = value;

    this.function = new NodejsFunction(this, 'Function', {
      entry: props.entry,
      handler: 'handler',
      description: props.description,
      runtime: Runtime.NODEJS_22_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize ?? 512,
      timeout: props.timeout ?? Duration.seconds(30),
      tracing: Tracing.ACTIVE,
      loggingFormat: LoggingFormat.JSON,
      applicationLogLevelV2: ApplicationLogLevel.INFO,
      systemLogLevelV2: SystemLogLevel.WARN,
      logGroup: this.logGroup,
      role: this.role,
      environment: { ...defined, NODE_OPTIONS: '--enable-source-maps' },
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: path.join(PROJECT_ROOT, 'package-lock.json'),
      bundling: {
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        target: 'node22',
        format: OutputFormat.CJS,
        // everything bundled: the SDK versions in package-lock.json, not whatever the runtime ships
        externalModules: [],
        forceDockerBundling: false,
        logLevel: LogLevel.WARNING,
      },
    });

    NagSuppressions.addResourceSuppressions(
      this.role,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'Resource::* only carries xray:PutTraceSegments and xray:PutTelemetryRecords (tracing ACTIVE): ' +
            'X-Ray has no resource-level permissions.',
          appliesTo: ['Resource::*'],
        },
      ],
      true,
    );
    NagSuppressions.addResourceSuppressions(this.function, [
      {
        id: 'AwsSolutions-L1',
        reason:
          'nodejs22.x is pinned on purpose: the bundle targets node22 and the code is tested on it. aws-cdk-lib ' +
          'already lists nodejs24.x; moving to it is a deliberate upgrade of runtime and esbuild target together.',
      },
    ]);
  }

  get functionArn(): string {
    return this.function.functionArn;
  }

  get functionName(): string {
    return this.function.functionName;
  }

  addToRolePolicy(statement: PolicyStatement): void {
    this.role.addToPrincipalPolicy(statement);
  }
}
