import { Match } from 'aws-cdk-lib/assertions';
import { z } from 'zod';
import { BULK_BODY_SCHEMAS, JSON_MEDIA_TYPES, routeKey } from '../../lib/constructs/bulk-api';
import { CreateBatchBodySchema } from '../../lambdas/core/bulk/request';
import { BULK_ROUTES } from '../../lambdas/handlers/routes';
import { actionsOf, buildCertflowApp, CertflowApp, logicalId, resourcesOf, statementsOfRole } from './certflow-app';

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
  const root = { 'Fn::GetAtt': [logicalId(built.stack.bulkApi.api), 'RootResourceId'] };
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

describe('BulkApi', () => {
  it('has a method for every BULK_ROUTES entry, and no other', () => {
    expect(
      methods()
        .map((m) => m.key)
        .sort(),
    ).toEqual(BULK_ROUTES.map(routeKey).sort());
  });

  it('requires IAM authorization on every method', () => {
    expect(methods().length).toBeGreaterThan(0);
    for (const { props } of methods()) expect(props.AuthorizationType).toBe('AWS_IAM');
  });

  it('proxies every method to the API function', () => {
    const fn = logicalId(built.stack.bulkApi.handler.function);
    for (const { props } of methods()) {
      expect(props.Integration).toMatchObject({ Type: 'AWS_PROXY', IntegrationHttpMethod: 'POST' });
      expect(JSON.stringify(props.Integration)).toContain(JSON.stringify({ 'Fn::GetAtt': [fn, 'Arn'] }));
    }
  });

  it('validates body and parameters of every method, and requires the path parameters', () => {
    built.template.resourceCountIs('AWS::ApiGateway::RequestValidator', 1);
    built.template.hasResourceProperties('AWS::ApiGateway::RequestValidator', {
      ValidateRequestBody: true,
      ValidateRequestParameters: true,
    });
    const validator = logicalId(built.stack.bulkApi.requestValidator);
    for (const { key, props } of methods()) {
      expect(props.RequestValidatorId).toEqual({ Ref: validator });
      const params = [...key.matchAll(/\{(\w+)\}/g)].map((m) => `method.request.path.${m[1]}`);
      expect(Object.keys(props.RequestParameters as object).sort()).toEqual(params.sort());
    }
  });

  it('validates the POST body with the JSON Schema of CreateBatchBodySchema, for each JSON media type', () => {
    built.template.resourceCountIs('AWS::ApiGateway::Model', 1);
    const [model] = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::ApiGateway::Model');
    expect(model![1].Properties.Schema).toEqual(z.toJSONSchema(CreateBatchBodySchema, { target: 'draft-04' }));
    const post = methods().find((m) => m.key === 'POST /supplier/{supplierId}/certificates')!;
    expect(post.props.RequestModels).toEqual(
      Object.fromEntries(JSON_MEDIA_TYPES.map((type) => [type, { Ref: model![0] }])),
    );
    expect(Object.keys(BULK_BODY_SCHEMAS)).toEqual([post.key]);
    for (const m of methods().filter((x) => x.key !== post.key)) expect(m.props.RequestModels).toBeUndefined();
  });

  it('serves zips as binary', () => {
    built.template.hasResourceProperties('AWS::ApiGateway::RestApi', { BinaryMediaTypes: ['application/zip'] });
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

  it('lets the API function start executions of the bulk state machine only', () => {
    const statements = statementsOfRole(built.template, logicalId(built.stack.bulkApi.handler.role));
    const states = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('states:')));
    expect(states).toHaveLength(1);
    expect(actionsOf(states[0]!)).toEqual(['states:StartExecution']);
    expect(resourcesOf(states[0]!)).toEqual([{ Ref: logicalId(built.stack.bulkIssuance.stateMachine) }]);
  });

  it('gives the API function the state machine ARN and the bulk environment', () => {
    const fn = resources[logicalId(built.stack.bulkApi.handler.function)]!;
    expect(fn.Properties.Environment).toEqual({
      Variables: expect.objectContaining({
        BULK_STATE_MACHINE_ARN: { Ref: logicalId(built.stack.bulkIssuance.stateMachine) },
        TASK_TABLE_NAME: { Ref: logicalId(built.stack.table.table) },
      }),
    });
  });

  it('lets API Gateway call the function from the methods of this API only', () => {
    const permissions = Object.values(resources).filter((r) => r.Type === 'AWS::Lambda::Permission');
    expect(permissions).toHaveLength(BULK_ROUTES.length);
    for (const p of permissions) {
      expect(p.Properties.Principal).toBe('apigateway.amazonaws.com');
      expect(JSON.stringify(p.Properties.SourceArn)).toContain(logicalId(built.stack.bulkApi.api));
    }
  });

  it('lets the API function write batch requests and read zips under batches/, and list (404 for expired zips)', () => {
    const statements = statementsOfRole(built.template, logicalId(built.stack.bulkApi.handler.role));
    const s3 = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('s3:')));
    expect(s3.flatMap(actionsOf).sort()).toEqual(['s3:GetObject', 's3:ListBucket', 's3:PutObject']);
    const objects = s3.find((s) => actionsOf(s).includes('s3:GetObject'))!;
    expect(JSON.stringify(objects.Resource)).toContain('/batches/*');
  });
});
