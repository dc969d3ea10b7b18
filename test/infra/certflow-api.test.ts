import { Match } from 'aws-cdk-lib/assertions';
import { z } from 'zod';
import {
  API_BODY_SCHEMAS,
  API_ROUTES,
  JSON_MEDIA_TYPES,
  routeKey,
  siblingPathParameterConflicts,
} from '../../lib/constructs/certflow-api';
import type { CertflowTable } from '../../lib/constructs/certflow-table';
import { CreateBatchBodySchema } from '../../lambdas/core/bulk/request';
import {
  CreateCaBodySchema,
  DeviceCertificateBodySchema,
  RevokeBodySchema,
  ServerCertificateBodySchema,
} from '../../lambdas/core/ca/requests';
import { ApiEnv } from '../../lambdas/handlers/env';
import { BULK_ROUTES, CA_ROUTES, PROVISIONING_ROUTES } from '../../lambdas/handlers/routes';
import { PROVISIONING_BODY_SCHEMAS } from '../../lib/constructs/device-provisioning';
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

type Resource = { Properties: Record<string, unknown> };

let built: CertflowApp;
let resources: Record<string, Resource & { Type: string }>;
beforeAll(() => {
  // the API's resources do not depend on the function bundles (bulk-issuance.test.ts bundles)
  built = buildCertflowApp({ bundle: false });
  resources = built.template.toJSON().Resources as typeof resources;
});

/** The full path of an AWS::ApiGateway::Resource, from its PathPart and its parents'. */
function resourcePath(id: string): string {
  const root = { 'Fn::GetAtt': [logicalId(built.stack.api.api), 'RootResourceId'] };
  const parts: string[] = [];
  let current: unknown = { Ref: id };
  while (JSON.stringify(current) !== JSON.stringify(root)) {
    const ref = (current as { Ref: string }).Ref;
    const resource = resources[ref]!;
    parts.unshift(resource.Properties.PathPart as string);
    current = resource.Properties.ParentId;
  }
  return `/${parts.join('/')}`;
}

const methods = () =>
  Object.values(resources)
    .filter((r) => r.Type === 'AWS::ApiGateway::Method')
    .map((m) => ({
      key: `${m.Properties.HttpMethod as string} ${resourcePath((m.Properties.ResourceId as { Ref: string }).Ref)}`,
      props: m.Properties,
    }));

const apiStatements = (): Statement[] => statementsOfRole(built.template, logicalId(built.stack.api.handler.role));
const withAction = (statements: Statement[], prefix: string) =>
  statements.filter((s) => actionsOf(s).some((a) => a.startsWith(prefix)));

const CA_BODIES: [string, z.ZodType][] = [
  ['POST /cas/root', CreateCaBodySchema],
  ['POST /cas/{caId}/intermediates', CreateCaBodySchema],
  ['POST /cas/{caId}/revoke', RevokeBodySchema],
  ['POST /certificates/server', ServerCertificateBodySchema],
  ['POST /certificates/device', DeviceCertificateBodySchema],
  ['POST /certificates/{taskId}/revoke', RevokeBodySchema],
];

describe('CertflowApi methods', () => {
  it('has a method for every route of BULK_ROUTES, CA_ROUTES and PROVISIONING_ROUTES, and no other', () => {
    expect(API_ROUTES).toEqual([...BULK_ROUTES, ...CA_ROUTES]);
    expect(
      methods()
        .map((m) => m.key)
        .sort(),
    ).toEqual([...BULK_ROUTES, ...CA_ROUTES, ...PROVISIONING_ROUTES].map(routeKey).sort());
  });

  it('requires IAM authorization on every method', () => {
    expect(methods()).toHaveLength(BULK_ROUTES.length + CA_ROUTES.length + PROVISIONING_ROUTES.length);
    for (const { key, props } of methods())
      expect({ key, auth: props.AuthorizationType }).toEqual({ key, auth: 'AWS_IAM' });
  });

  it('proxies every method to the API function, the provisioning routes to the provisioning function', () => {
    const provisioning = new Set(PROVISIONING_ROUTES.map(routeKey));
    for (const { key, props } of methods()) {
      const owner = provisioning.has(key) ? built.stack.provisioning.api.function : built.stack.api.handler.function;
      expect(props.Integration).toMatchObject({ Type: 'AWS_PROXY', IntegrationHttpMethod: 'POST' });
      expect(JSON.stringify(props.Integration)).toContain(JSON.stringify({ 'Fn::GetAtt': [logicalId(owner), 'Arn'] }));
    }
  });

  it('validates body and parameters of every method, and requires the path parameters', () => {
    built.template.resourceCountIs('AWS::ApiGateway::RequestValidator', 1);
    built.template.hasResourceProperties('AWS::ApiGateway::RequestValidator', {
      ValidateRequestBody: true,
      ValidateRequestParameters: true,
    });
    const validator = logicalId(built.stack.api.requestValidator);
    for (const { key, props } of methods()) {
      expect(props.RequestValidatorId).toEqual({ Ref: validator });
      const params = [...key.matchAll(/\{(\w+)\}/g)].map((m) => `method.request.path.${m[1]}`);
      expect(Object.keys(props.RequestParameters as object).sort()).toEqual(params.sort());
    }
  });

  it('lets API Gateway call the function from the methods of this API only', () => {
    const permissions = Object.values(resources).filter((r) => r.Type === 'AWS::Lambda::Permission');
    expect(permissions).toHaveLength(API_ROUTES.length + PROVISIONING_ROUTES.length);
    for (const p of permissions) {
      expect(p.Properties.Principal).toBe('apigateway.amazonaws.com');
      expect(JSON.stringify(p.Properties.SourceArn)).toContain(logicalId(built.stack.api.api));
    }
  });
});

describe('CertflowApi request models', () => {
  const models = () =>
    Object.entries(resources)
      .filter(([, r]) => r.Type === 'AWS::ApiGateway::Model')
      .map(([id, r]) => ({ id, schema: r.Properties.Schema }));
  const modelOf = (schema: z.ZodType) => {
    const expected = z.toJSONSchema(schema, { target: 'draft-04', io: 'input' });
    const found = models().filter((m) => JSON.stringify(m.schema) === JSON.stringify(expected));
    expect(found).toHaveLength(1);
    return found[0]!.id;
  };

  it('has one model per body schema: CreateBatch, CreateCa, Revoke, ServerCertificate, DeviceCertificate, and the three of provisioning', () => {
    expect(models()).toHaveLength(5 + Object.keys(PROVISIONING_BODY_SCHEMAS).length);
    expect(Object.keys(API_BODY_SCHEMAS).sort()).toEqual(
      ['POST /supplier/{supplierId}/certificates', ...CA_BODIES.map(([key]) => key)].sort(),
    );
  });

  it.each([['POST /supplier/{supplierId}/certificates', CreateBatchBodySchema] as [string, z.ZodType], ...CA_BODIES])(
    'ok/%s: validates the body with the JSON Schema of its zod schema, for each JSON media type',
    (key, schema) => {
      const method = methods().find((m) => m.key === key)!;
      expect(method).toBeDefined();
      const model = modelOf(schema);
      expect(method.props.RequestModels).toEqual(
        Object.fromEntries(JSON_MEDIA_TYPES.map((type) => [type, { Ref: model }])),
      );
    },
  );

  it('has no model on methods without a body', () => {
    const bodies = new Set([...Object.keys(API_BODY_SCHEMAS), ...Object.keys(PROVISIONING_BODY_SCHEMAS)]);
    const others = methods().filter((m) => !bodies.has(m.key));
    expect(others.map((m) => m.key.split(' ')[0])).not.toContain('POST');
    for (const m of others) expect(m.props.RequestModels).toBeUndefined();
  });
});

describe('CertflowApi stage', () => {
  it('serves zips and DER CRLs as binary', () => {
    built.template.hasResourceProperties('AWS::ApiGateway::RestApi', {
      BinaryMediaTypes: ['application/zip', 'application/pkix-crl'],
    });
  });

  it('deploys a traced, throttled prod stage with access logs and no data trace', () => {
    built.template.hasResourceProperties('AWS::ApiGateway::Stage', {
      StageName: 'prod',
      TracingEnabled: true,
      AccessLogSetting: { DestinationArn: Match.anyValue(), Format: Match.anyValue() },
      MethodSettings: [
        Match.objectLike({
          DataTraceEnabled: false,
          LoggingLevel: 'ERROR',
          ThrottlingRateLimit: 50,
          ThrottlingBurstLimit: 100,
        }),
      ],
    });
  });
});

describe('CertflowApi function environment', () => {
  const variables = () =>
    (resources[logicalId(built.stack.api.handler.function)]!.Properties.Environment as { Variables: object })
      .Variables as Record<string, unknown>;

  it('satisfies ApiEnv (deploy-time values as tokens), with no variable ApiEnv does not declare', () => {
    const { NODE_OPTIONS, ...env } = variables();
    expect(NODE_OPTIONS).toBe('--enable-source-maps');
    const asStrings = Object.fromEntries(
      Object.entries(env).map(([k, v]) => [k, typeof v === 'string' ? v : `token:${JSON.stringify(v)}`]),
    );
    const result = ApiEnv.safeParse(asStrings);
    expect(result.error?.issues ?? []).toEqual([]);
    expect(Object.keys(env).filter((k) => !(k in ApiEnv.shape))).toEqual([]);
  });

  it('names the stack tables, state machines, CA key, rotation group and CRL validity', () => {
    const { stack } = built;
    expect(variables()).toMatchObject({
      BULK_STATE_MACHINE_ARN: { Ref: logicalId(stack.bulkIssuance.stateMachine) },
      REVOKE_ISSUED_STATE_MACHINE_ARN: { Ref: logicalId(stack.compromiseResponse.stateMachine) },
      TASK_TABLE_NAME: { Ref: logicalId(stack.table.table) },
      INVENTORY_TABLE_NAME: { Ref: logicalId(stack.inventory.inventoryTable.table) },
      CA_TABLE_NAME: { Ref: logicalId(stack.inventory.caTable.table) },
      CA_KEY_KMS_KEY_ID: { 'Fn::GetAtt': [logicalId(stack.caHierarchy.caKeysKey), 'Arn'] },
      ROTATION_THING_GROUP: 'cdfRotateCertificates',
      CRL_VALIDITY_HOURS: '24',
      BUCKET_NAME: { Ref: logicalId(stack.bucket.bucket) },
      EVENT_BUS_NAME: { Ref: logicalId(stack.bus.bus) },
    });
  });
});

describe('CertflowApi function permissions', () => {
  it('starts executions of the bulk and revoke-issued state machines only', () => {
    const states = withAction(apiStatements(), 'states:');
    expect([...new Set(states.flatMap(actionsOf))]).toEqual(['states:StartExecution']);
    expect(states.flatMap(resourcesOf).map(resourceText).sort()).toEqual(
      [built.stack.bulkIssuance.stateMachine, built.stack.compromiseResponse.stateMachine]
        .map((machine) => `\${${logicalId(machine)}}`)
        .sort(),
    );
  });

  it('has no service-wide action', () => {
    expect(
      apiStatements()
        .flatMap(actionsOf)
        .filter((a) => a.includes('*')),
    ).toEqual([]);
  });

  it('uses each table with the item actions its stores call, and Query on the inventory indexes only', () => {
    const { stack } = built;
    const table = (t: CertflowTable) => `\${${logicalId(t.table)}.Arn}`;
    const grants = withAction(apiStatements(), 'dynamodb:').map((s) => ({
      actions: actionsOf(s).sort(),
      resources: resourcesOf(s).map(resourceText).sort(),
    }));
    const inventory = logicalId(stack.inventory.inventoryTable.table);
    const index = (name: string) =>
      `arn:\${AWS::Partition}:dynamodb:\${AWS::Region}:\${AWS::AccountId}:table/\${${inventory}}/index/${name}`;
    expect(grants).toEqual(
      expect.arrayContaining([
        {
          actions: ['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
          resources: [table(stack.table)],
        },
        { actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem'], resources: [table(stack.inventory.inventoryTable)] },
        { actions: ['dynamodb:Query'], resources: [index('byExpiry'), index('byIssuer')] },
        {
          actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Scan', 'dynamodb:UpdateItem'],
          resources: [table(stack.inventory.caTable)],
        },
      ]),
    );
    expect(grants).toHaveLength(4);
  });

  it('reads and writes objects under batches/, certificates/ and crls/ only, and lists (404 for absent keys)', () => {
    const s3 = withAction(apiStatements(), 's3:');
    expect(s3.flatMap(actionsOf).sort()).toEqual(['s3:GetObject', 's3:ListBucket', 's3:PutObject']);
    const objects = s3.find((s) => actionsOf(s).includes('s3:GetObject'))!;
    const bucket = logicalId(built.stack.bucket.bucket);
    expect(resourcesOf(objects).map(resourceText).sort()).toEqual(
      [`\${${bucket}.Arn}/batches/*`, `\${${bucket}.Arn}/certificates/*`, `\${${bucket}.Arn}/crls/*`].sort(),
    );
  });

  it('puts and gets SSM parameters only under the CA names cdf-ca-key-*, cdf-ca-cert-*, cdf-ca-chain-*', () => {
    const ssm = withAction(apiStatements(), 'ssm:');
    expect(ssm).toHaveLength(1);
    expect(actionsOf(ssm[0]!).sort()).toEqual(['ssm:GetParameter', 'ssm:PutParameter']);
    const parameter = (name: string) =>
      `arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:parameter/${name}`;
    expect(resourcesOf(ssm[0]!).map(resourceText).sort()).toEqual(
      ['cdf-ca-key-*', 'cdf-ca-cert-*', 'cdf-ca-chain-*'].map(parameter).sort(),
    );
  });

  it('encrypts and decrypts with the CA key KMS key only, and only through SSM in this region', () => {
    const kms = withAction(apiStatements(), 'kms:');
    expect(kms).toHaveLength(1);
    expect(actionsOf(kms[0]!).sort()).toEqual(['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey']);
    expect(kms[0]!.Resource).toEqual({ 'Fn::GetAtt': [logicalId(built.stack.caHierarchy.caKeysKey), 'Arn'] });
    expect(kms[0]!.Condition).toEqual({
      StringEquals: {
        'kms:ViaService': { 'Fn::Join': ['', ['ssm.', { Ref: 'AWS::Region' }, '.', { Ref: 'AWS::URLSuffix' }]] },
      },
    });
  });

  it('describes CA certificates, and adds things to the rotation group only', () => {
    const iot = withAction(apiStatements(), 'iot:').map((s) => ({
      actions: actionsOf(s).sort(),
      resources: resourcesOf(s).map(resourceText).sort(),
    }));
    const arn = (resource: string) => `arn:\${AWS::Partition}:iot:\${AWS::Region}:\${AWS::AccountId}:${resource}`;
    expect(iot).toEqual(
      expect.arrayContaining([
        { actions: ['iot:DescribeCACertificate'], resources: [arn('cacert/*')] },
        {
          actions: ['iot:AddThingToThingGroup'],
          resources: [arn('thing/*'), arn('thinggroup/cdfRotateCertificates')].sort(),
        },
        { actions: ['iot:DescribeThingGroup'], resources: [arn('thinggroup/cdfRotateCertificates')] },
      ]),
    );
    expect(iot).toHaveLength(3);
  });

  it('puts events on the certflow bus only', () => {
    const events = withAction(apiStatements(), 'events:');
    expect(events).toEqual([
      expect.objectContaining({
        Action: 'events:PutEvents',
        Resource: { 'Fn::GetAtt': [logicalId(built.stack.bus.bus), 'Arn'] },
      }),
    ]);
  });
});

describe('siblingPathParameterConflicts', () => {
  it('finds none in the API routes (one variable name per level: {taskId} under /certificates)', () => {
    expect(siblingPathParameterConflicts(API_ROUTES)).toEqual([]);
    expect(built.annotations.findWarning('*', Match.anyValue())).toEqual([]);
  });

  const route = (resource: string, method = 'GET') => ({ method, resource });

  it('ok/one name: sibling routes that share a path parameter', () => {
    expect(
      siblingPathParameterConflicts([route('/certificates/{id}'), route('/certificates/{id}/revoke', 'POST')]),
    ).toEqual([]);
  });

  it('ok/static sibling: a literal path part next to a parameter', () => {
    expect(siblingPathParameterConflicts([route('/certificates/{id}'), route('/certificates/server', 'POST')])).toEqual(
      [],
    );
  });

  it('error/two names: names the parent and both parameters with their routes', () => {
    const [conflict, ...rest] = siblingPathParameterConflicts([
      route('/certificates/{taskId}'),
      route('/certificates/{certificateId}/revoke', 'POST'),
    ]);
    expect(rest).toEqual([]);
    expect(conflict).toContain('/certificates has two path parameters');
    expect(conflict).toContain('{taskId} (GET /certificates/{taskId})');
    expect(conflict).toContain('{certificateId} (POST /certificates/{certificateId}/revoke)');
  });
});
