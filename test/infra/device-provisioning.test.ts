import { readFileSync } from 'node:fs';
import aslValidator from 'asl-validator';
import { Match } from 'aws-cdk-lib/assertions';
import { placeholdersOf } from '../../lib/asl';
import { defaultClients } from '../../lambdas/adapters/aws/bulk-deps';
import { KmsCaKeyStore } from '../../lambdas/adapters/aws/kms-signer';
import { awsProvisioningDeps } from '../../lambdas/adapters/aws/provisioning-deps';
import { SsmCaKeyStore } from '../../lambdas/adapters/aws/ssm-ca-key-store';
import { ProvisioningEnv, readEnv } from '../../lambdas/handlers/env';
import { DeviceProvisioning, PROVISIONING_DEFINITION_PATH } from '../../lib/constructs/device-provisioning';
import { StateMachineRunner } from '../../local/runtime/state-machine-runner';
import { actionsOf, buildCertflowApp, CertflowApp, logicalId, resourcesOf, statementsOfRole } from './certflow-app';

const PCA_ARN = 'arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/11111111-2222-3333-4444-555555555555';
const aslText = readFileSync(PROVISIONING_DEFINITION_PATH, 'utf8');
const PLACEHOLDERS = [
  'PlanProvisioningFunctionArn',
  'ProvisionChunkFunctionArn',
  'FinishProvisioningFunctionArn',
  'RecordProvisioningFailureFunctionArn',
];

let built: CertflowApp;
beforeAll(() => {
  built = buildCertflowApp({ bundle: false, config: { provisioningPcaAliases: { factory: PCA_ARN } } });
});

type State = Record<string, unknown> & { Type: string; Retry?: unknown[] };
function allStates(states: Record<string, State>): [string, State][] {
  return Object.entries(states).flatMap(([name, s]) => [
    [name, s] as [string, State],
    ...(s.ItemProcessor ? allStates((s.ItemProcessor as { States: Record<string, State> }).States) : []),
  ]);
}

describe('the provisioning ASL file', () => {
  const definition = JSON.parse(aslText) as { States: Record<string, State> };

  it('has exactly the four placeholders the construct substitutes', () => {
    expect(placeholdersOf(aslText).sort()).toEqual([...PLACEHOLDERS].sort());
  });

  it('validates with asl-validator (JSONPath, ARNs checked)', () => {
    const rendered = PLACEHOLDERS.reduce(
      (text, p) => text.replaceAll(`\${${p}}`, `arn:aws:lambda:us-east-1:111122223333:function:${p}`),
      aslText,
    );
    for (const text of [aslText, rendered]) {
      const result = aslValidator(JSON.parse(text), { checkPaths: true, checkArn: true });
      expect(result.errors).toEqual([]);
    }
    expect(aslText).not.toContain('QueryLanguage');
  });

  it('gives every Task a Retry and catches the chunk inside the Distributed Map', () => {
    const states = allStates(definition.States);
    const tasks = states.filter(([, s]) => s.Type === 'Task');
    expect(tasks.map(([n]) => n).sort()).toEqual(
      ['FinishProvisioning', 'PlanProvisioning', 'ProvisionChunk', 'RecordProvisioningFailure'].sort(),
    );
    for (const [, t] of tasks) expect(t.Retry?.length).toBeGreaterThan(0);
    const map = definition.States.ProvisionChunks!;
    expect(map).toMatchObject({
      Type: 'Map',
      ItemsPath: '$.chunks',
      ItemProcessor: { ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'EXPRESS' } },
      Next: 'FinishProvisioning',
    });
    const chunk = (map.ItemProcessor as { States: Record<string, State> }).States.ProvisionChunk!;
    expect(chunk.Catch).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'ChunkFailed' }]);
  });

  it('runs in the local runtime: a chunk that fails is caught, the check after the Map sees every chunk', async () => {
    const calls: string[] = [];
    const fn = (name: string, body: (input: Record<string, unknown>) => unknown) => async (input: unknown) => {
      calls.push(name);
      return body(input as Record<string, unknown>);
    };
    const arn = (p: string) => `arn:aws:lambda:us-east-1:000000000000:function:${p}`;
    let finished: unknown;
    const runner = new StateMachineRunner({
      definition: PROVISIONING_DEFINITION_PATH,
      substitutions: Object.fromEntries(PLACEHOLDERS.map((p) => [p, arn(p)])),
      retryIntervalMs: 0,
      resources: {
        [arn('PlanProvisioningFunctionArn')]: fn('plan', (i) => ({
          taskId: i.taskId,
          chunks: [0, 1, 2],
          maxConcurrency: 2,
        })),
        [arn('ProvisionChunkFunctionArn')]: fn('chunk', (i) => {
          if (i.index === 1) throw Object.assign(new Error('boom'), { name: 'ChunkBrokeError' });
          return { index: i.index, succeeded: 10, failed: 0 };
        }),
        [arn('FinishProvisioningFunctionArn')]: fn('finish', (i) => {
          finished = i.chunkResults;
          return { taskId: i.taskId, succeeded: 20, failed: 10 };
        }),
        [arn('RecordProvisioningFailureFunctionArn')]: fn('failure', () => ({})),
      },
    });
    const output = await runner.start('t-1', { taskId: 't-1' }).result;
    expect(output).toMatchObject({ summary: { taskId: 't-1', succeeded: 20, failed: 10 } });
    expect(finished).toEqual([
      { index: 0, succeeded: 10, failed: 0 },
      { index: 1, failed: true, error: { Error: 'ChunkBrokeError', Cause: expect.any(String) } },
      { index: 2, succeeded: 10, failed: 0 },
    ]);
    expect(calls).not.toContain('failure');
  });
});

describe('DeviceProvisioning', () => {
  it('is a Standard state machine (Distributed Map of Express children) logging ALL without execution data', () => {
    const machine = logicalId(built.stack.provisioning.stateMachine);
    const props = built.template.toJSON().Resources[machine].Properties as Record<string, unknown>;
    expect(props).toMatchObject({
      StateMachineType: 'STANDARD',
      LoggingConfiguration: { Level: 'ALL', IncludeExecutionData: false },
      TracingConfiguration: { Enabled: true },
    });
    expect(Object.keys(props.DefinitionSubstitutions as object).sort()).toEqual([...PLACEHOLDERS].sort());
  });

  it('gives the API and chunk functions the registry calls of provisioning, no deletes', () => {
    for (const fn of [built.stack.provisioning.api, built.stack.provisioning.provisionChunk]) {
      const statements = statementsOfRole(built.template, logicalId(fn.role));
      const iot = statements.flatMap(actionsOf).filter((a) => a.startsWith('iot:'));
      expect(iot).toEqual(
        expect.arrayContaining([
          'iot:CreateThing',
          'iot:AddThingToThingGroup',
          'iot:RegisterCertificate',
          'iot:RegisterCertificateWithoutCA',
          'iot:CreatePolicy',
          'iot:AttachPolicy',
          'iot:AttachThingPrincipal',
          'iot:RegisterThing',
          'iot:DescribeCACertificate',
        ]),
      );
      expect(iot.filter((a) => /Delete|Detach/.test(a))).toEqual([]);
      const pca = statements.filter((s) => actionsOf(s).includes('acm-pca:IssueCertificate'));
      expect(pca.flatMap(resourcesOf)).toEqual([PCA_ARN]);
    }
  });

  it('passes the aliases as CDF settings and the state machine ARN to the API function', () => {
    built.template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('provisioning templates'),
      Environment: {
        Variables: Match.objectLike({
          PCA_FACTORY: PCA_ARN,
          PROVISIONING_STATE_MACHINE_ARN: { Ref: logicalId(built.stack.provisioning.stateMachine) },
        }),
      },
    });
  });

  it('paces the API and ProvisionChunk on the task table’s rate schedule items only, at the configured API rates', () => {
    const paced = buildCertflowApp({ bundle: false, config: { apiRates: { 'iot:CreateThing': 40 } } });
    const { provisioning, table } = paced.stack;
    const dynamoOf = (fn: { role: Parameters<typeof logicalId>[0] }) =>
      statementsOfRole(paced.template, logicalId(fn.role))
        .filter((s) => actionsOf(s).some((a) => a.startsWith('dynamodb:')))
        .map((s) => ({ a: actionsOf(s).sort(), r: resourcesOf(s), c: s.Condition }));
    const schedule = {
      a: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
      r: [{ 'Fn::GetAtt': [logicalId(table.table), 'Arn'] }],
      c: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['rate#*'] } },
    };
    for (const fn of [provisioning.api, provisioning.provisionChunk]) {
      const dynamo = dynamoOf(fn);
      expect(dynamo).toContainEqual(schedule);
      // nothing else of the task table (the CA table's GetItem is the other statement)
      expect(dynamo.filter((s) => JSON.stringify(s.r).includes(logicalId(table.table)))).toEqual([schedule]);
    }
    // the workflow's bookkeeping functions call no paced API
    for (const fn of [provisioning.plan, provisioning.finish, provisioning.recordFailure]) {
      expect(dynamoOf(fn)).toEqual([]);
    }
    // every provisioning function gets the schedule's table and the rates (ProvisioningEnv requires them)
    for (const fn of [provisioning.api, provisioning.plan, provisioning.provisionChunk, provisioning.finish]) {
      const vars = (
        paced.template.toJSON().Resources[logicalId(fn.function)] as {
          Properties: { Environment: { Variables: Record<string, unknown> } };
        }
      ).Properties.Environment.Variables;
      expect(vars).toMatchObject({
        RATE_LIMIT_TABLE_NAME: { Ref: logicalId(table.table) },
        API_RATES: JSON.stringify({ 'iot:CreateThing': 40 }),
      });
    }
  });

  it('lets the workflow functions touch bulkprovisioning/ objects only; the API also templates/ and certificates/', () => {
    const s3Resources = (fn: { role: Parameters<typeof logicalId>[0] }) =>
      JSON.stringify(
        statementsOfRole(built.template, logicalId(fn.role))
          .filter((s) => actionsOf(s).includes('s3:PutObject'))
          .flatMap(resourcesOf),
      );
    const plan = s3Resources(built.stack.provisioning.plan);
    expect(plan).toContain('/bulkprovisioning/*');
    expect(plan).not.toContain('/templates/*');
    const api = s3Resources(built.stack.provisioning.api);
    for (const prefix of ['/templates/*', '/bulkprovisioning/*', '/certificates/*']) expect(api).toContain(prefix);
  });
});

describe('DeviceProvisioning CA key grants, per CA key store', () => {
  const KEY_ARN = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
  const caFunctions = (app: CertflowApp) => [app.stack.provisioning.api, app.stack.provisioning.provisionChunk];
  const grants = (app: CertflowApp, fn: { role: Parameters<typeof logicalId>[0] }) => {
    const statements = statementsOfRole(app.template, logicalId(fn.role));
    const of = (prefix: string) => statements.filter((s) => actionsOf(s).some((a) => a.startsWith(prefix)));
    return {
      kms: of('kms:'),
      ssm: of('ssm:'),
      ssmNames: JSON.stringify(of('ssm:').flatMap(resourcesOf)),
      describeCa: of('iot:DescribeCACertificate'),
    };
  };
  const envOf = (app: CertflowApp, fn: { function: Parameters<typeof logicalId>[0] }) =>
    (
      app.template.toJSON().Resources[logicalId(fn.function)] as {
        Properties: { Environment: { Variables: Record<string, unknown> } };
      }
    ).Properties.Environment.Variables;

  it('ssm (default): the SecureStrings read-only, kms:Decrypt of the stack CA key through SSM only, no kms:Sign', () => {
    for (const fn of caFunctions(built)) {
      const g = grants(built, fn);
      expect(envOf(built, fn).CA_KEY_STORE).toBe('ssm');
      expect(g.ssm.flatMap(actionsOf)).toEqual(['ssm:GetParameter']);
      for (const name of ['cdf-ca-key-*', 'cdf-ca-cert-*', 'cdf-ca-chain-*']) expect(g.ssmNames).toContain(name);
      expect(g.ssmNames).not.toContain('cdf-ca-kms-key-');
      expect(g.kms).toHaveLength(1);
      expect(actionsOf(g.kms[0]!)).toEqual(['kms:Decrypt']);
      expect(g.kms[0]!.Resource).toEqual({ 'Fn::GetAtt': [logicalId(built.stack.caHierarchy.caKeysKey), 'Arn'] });
      expect(JSON.stringify(g.kms[0]!.Condition)).toContain('kms:ViaService');
    }
    // the workflow's other functions sign nothing
    for (const fn of [built.stack.provisioning.plan, built.stack.provisioning.finish]) {
      expect(grants(built, fn).kms).toEqual([]);
    }
  });

  describe('kms', () => {
    let kmsApp: CertflowApp;
    beforeAll(() => {
      kmsApp = buildCertflowApp({ bundle: false, config: { caKeyStore: 'kms', caKmsKeyArns: [KEY_ARN] } });
    });

    it('grants what bulk issuance’s chunk function gets: kms:Sign/GetPublicKey on the CA keys, the key-naming parameters', () => {
      const chunk = grants(kmsApp, kmsApp.stack.bulkIssuance.issueChunk);
      for (const fn of caFunctions(kmsApp)) {
        const g = grants(kmsApp, fn);
        expect(envOf(kmsApp, fn).CA_KEY_STORE).toBe('kms');
        expect(g.kms).toHaveLength(1);
        expect(actionsOf(g.kms[0]!).sort()).toEqual(['kms:GetPublicKey', 'kms:Sign']);
        expect(g.kms[0]!.Resource).toBe(KEY_ARN);
        expect(g.kms.map((s) => [actionsOf(s).sort(), s.Resource])).toEqual(
          chunk.kms.map((s) => [actionsOf(s).sort(), s.Resource]),
        );
        expect(g.ssm.flatMap(actionsOf)).toEqual(['ssm:GetParameter']);
        expect(JSON.parse(g.ssmNames)).toEqual(JSON.parse(chunk.ssmNames));
        expect(g.ssmNames).toContain('cdf-ca-kms-key-*');
        expect(g.ssmNames).toContain('cdf-ca-chain-*');
        expect(g.ssmNames).not.toContain('cdf-ca-key-*');
        expect(g.describeCa.flatMap(resourcesOf)).toEqual(chunk.describeCa.flatMap(resourcesOf));
      }
    });

    it('the env the functions get builds the KMS key store in the handler (caKeyStoreFor)', () => {
      for (const fn of caFunctions(kmsApp)) {
        const vars = Object.fromEntries(
          Object.entries(envOf(kmsApp, fn)).map(([k, v]) => [k, typeof v === 'string' ? v : 'x']),
        );
        const deps = awsProvisioningDeps(readEnv(ProvisioningEnv, vars), defaultClients(), vars);
        expect(deps.caKeys).toBeInstanceOf(KmsCaKeyStore);
      }
      const ssmVars = Object.fromEntries(
        Object.entries(envOf(built, built.stack.provisioning.api)).map(([k, v]) => [
          k,
          typeof v === 'string' ? v : 'x',
        ]),
      );
      const ssmDeps = awsProvisioningDeps(readEnv(ProvisioningEnv, ssmVars), defaultClients(), ssmVars);
      expect(ssmDeps.caKeys).toBeInstanceOf(SsmCaKeyStore);
    });

    it('is cdk-nag clean (AwsSolutions: no error, no warning)', () => {
      const findings = [
        ...kmsApp.annotations.findError('*', Match.stringLikeRegexp('AwsSolutions-.*')),
        ...kmsApp.annotations.findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*')),
      ];
      expect(findings.map((e) => `${e.id}: ${String(e.entry.data)}`)).toEqual([]);
    });

    it("refuses caKeyStore 'kms' without keys", () => {
      const { stack } = kmsApp;
      expect(
        () =>
          new DeviceProvisioning(stack, 'NoKeys', {
            bucket: stack.bucket,
            bus: stack.bus,
            inventory: stack.inventory,
            caHierarchy: stack.caHierarchy,
            rateLimitTable: stack.table,
            caKeyStore: 'kms',
          }),
      ).toThrow(/caKeyStore 'kms' needs caKmsKeyArns/);
    });
  });
});
