import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import {
  AccessLogFormat,
  AuthorizationType,
  CfnAccount,
  EndpointType,
  LambdaIntegration,
  LogGroupLogDestination,
  Method,
  MethodLoggingLevel,
  Model,
  RequestValidator,
  ResponseType,
  RestApi,
} from 'aws-cdk-lib/aws-apigateway';
import { ManagedPolicy, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import type { z } from 'zod';
import { CreateBatchBodySchema } from '../../lambdas/core/bulk/request';
import { BULK_ROUTES } from '../../lambdas/handlers/routes';
import { BulkApiEnv, BulkEnv } from '../../lambdas/handlers/env';
import { CDF_MEDIA_TYPE, Route } from '../../lambdas/handlers/http';
import { apiGatewaySchema } from '../json-schema';
import { objectsFinding } from '../nag';
import { BATCHES_PREFIX, type BatchBucket } from './batch-bucket';
import { CertflowFunction, FunctionEnvironment, handlerEntry } from './certflow-function';
import type { TaskTable } from './task-table';

/** `METHOD /resource`, the key of a route. */
export const routeKey = (route: Route): string => `${route.method.toUpperCase()} ${route.resource}`;

/** The request bodies the handler parses, by route: API Gateway validates them with the same schemas. */
export const BULK_BODY_SCHEMAS: Readonly<Record<string, z.ZodType>> = {
  'POST /supplier/{supplierId}/certificates': CreateBatchBodySchema,
};

/** The JSON media types the handler reads bodies in (the model applies to each). */
export const JSON_MEDIA_TYPES = ['application/json', CDF_MEDIA_TYPE];

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

export interface BulkApiProps {
  readonly table: TaskTable;
  readonly bucket: BatchBucket;
  readonly stateMachine: IStateMachine;
  /** the bulk functions' environment (BulkIssuance.environment); the API adds the state machine ARN */
  readonly environment: FunctionEnvironment<typeof BulkEnv>;
  /** default BULK_ROUTES, the handler's own route table */
  readonly routes?: readonly Route[];
  /** body schemas by `METHOD /resource`, default BULK_BODY_SCHEMAS */
  readonly bodySchemas?: Readonly<Record<string, z.ZodType>>;
  /** default 'prod' */
  readonly stageName?: string;
  /** steady-state requests per second of the stage, default 50 */
  readonly throttlingRateLimit?: number;
  /** burst of the stage, default 100 */
  readonly throttlingBurstLimit?: number;
  /** retention of the function's and the access logs' log groups, default three months */
  readonly logRetention?: RetentionDays;
}

/**
 * The bulk-issuance REST API: API Gateway (IAM auth on every method) → one Lambda proxy integration running the
 * same handler as the local HTTP server. Resources and methods come from the handler's route table; request
 * bodies are validated from the handler's zod schemas.
 */
export class BulkApi extends Construct {
  readonly api: RestApi;
  readonly handler: CertflowFunction<typeof BulkApiEnv>;
  readonly methods: Method[] = [];
  readonly requestValidator: RequestValidator;
  readonly accessLogs: LogGroup;
  readonly cloudWatchRole: Role;

  constructor(scope: Construct, id: string, props: BulkApiProps) {
    super(scope, id);
    const routes = props.routes ?? BULK_ROUTES;
    const bodySchemas = props.bodySchemas ?? BULK_BODY_SCHEMAS;
    const logRetention = props.logRetention ?? RetentionDays.THREE_MONTHS;
    checkRoutes(routes, bodySchemas);

    this.handler = new CertflowFunction(this, 'Handler', {
      entry: handlerEntry('api-bulk-certificates'),
      description: 'certflow bulk issuance REST API',
      envSchema: BulkApiEnv,
      environment: { ...props.environment, BULK_STATE_MACHINE_ARN: props.stateMachine.stateMachineArn },
      memorySize: 1024,
      // API Gateway's integration timeout is 29 s
      timeout: Duration.seconds(29),
      logRetention,
    });
    // createBatch: idempotency key (PutItem), task (PutItem), failed start (UpdateItem); reads (GetItem)
    props.table.grant(this.handler, 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem');
    // the batch request (PutObject), inline zips and presigned GETs (GetObject)
    props.bucket.grantBatchObjects(this.handler, 's3:GetObject', 's3:PutObject');
    // a zip removed by the lifecycle rule must read as 404 (OBJECT_NOT_FOUND), not 403
    props.bucket.grantList(this.handler);
    props.stateMachine.grantStartExecution(this.handler);
    NagSuppressions.addResourceSuppressions(
      this.handler.role,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'Batch objects are keyed batches/{taskId}/... with task ids made at request time: the API writes the ' +
            'batch request and reads (or presigns) zips under the batches/ prefix only.',
          appliesTo: [objectsFinding(BATCHES_PREFIX)],
        },
      ],
      true,
    );

    this.accessLogs = new LogGroup(this, 'AccessLogs', {
      retention: logRetention,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.api = new RestApi(this, 'Api', {
      restApiName: 'certflow-bulk',
      description: 'certflow bulk certificate issuance (CDF bulkcerts compatible)',
      endpointConfiguration: { types: [EndpointType.REGIONAL] },
      binaryMediaTypes: ['application/zip'],
      defaultMethodOptions: { authorizationType: AuthorizationType.IAM },
      // the CloudWatch Logs role of API Gateway is set below, explicitly
      cloudWatchRole: false,
      deployOptions: {
        stageName: props.stageName ?? 'prod',
        tracingEnabled: true,
        accessLogDestination: new LogGroupLogDestination(this.accessLogs),
        accessLogFormat: AccessLogFormat.jsonWithStandardFields(),
        loggingLevel: MethodLoggingLevel.ERROR,
        // request and response bodies (certificate zips, private keys) never go to the execution logs
        dataTraceEnabled: false,
        metricsEnabled: true,
        throttlingRateLimit: props.throttlingRateLimit ?? 50,
        throttlingBurstLimit: props.throttlingBurstLimit ?? 100,
      },
    });

    // API Gateway writes execution logs (level ERROR) and access logs with this account-level role
    this.cloudWatchRole = new Role(this, 'CloudWatchRole', {
      assumedBy: new ServicePrincipal('apigateway.amazonaws.com'),
      managedPolicies: [ManagedPolicy.fromAwsManagedPolicyName('service-role/AmazonAPIGatewayPushToCloudWatchLogs')],
    });
    this.cloudWatchRole.applyRemovalPolicy(RemovalPolicy.RETAIN);
    const account = new CfnAccount(this, 'Account', { cloudWatchRoleArn: this.cloudWatchRole.roleArn });
    account.applyRemovalPolicy(RemovalPolicy.RETAIN);
    this.api.deploymentStage.node.addDependency(account);

    // errors raised by API Gateway itself get the handler's { code, message } shape
    const errorBody = '{"code":"$context.error.responseType","message":$context.error.messageString}';
    for (const [rid, type] of [
      ['Default4xx', ResponseType.DEFAULT_4XX],
      ['Default5xx', ResponseType.DEFAULT_5XX],
    ] as const) {
      this.api.addGatewayResponse(rid, { type, templates: { 'application/json': errorBody } });
    }

    this.requestValidator = this.api.addRequestValidator('Validator', {
      requestValidatorName: 'body-and-parameters',
      validateRequestBody: true,
      validateRequestParameters: true,
    });
    const integration = new LambdaIntegration(this.handler.function, { proxy: true, allowTestInvoke: false });
    const models = new Map<string, Model>();
    for (const route of routes) {
      const key = routeKey(route);
      const bodySchema = bodySchemas[key];
      let requestModels: Record<string, Model> | undefined;
      if (bodySchema) {
        let model = models.get(key);
        if (!model) {
          model = this.api.addModel(`BodyModel${models.size}`, {
            contentType: 'application/json',
            description: `request body of ${key}`,
            schema: apiGatewaySchema(bodySchema),
          });
          models.set(key, model);
        }
        requestModels = Object.fromEntries(JSON_MEDIA_TYPES.map((type) => [type, model]));
      }
      const pathParameters = [...route.resource.matchAll(/\{([^}+]+)\+?\}/g)].map((m) => m[1]!);
      const method = this.api.root.resourceForPath(route.resource).addMethod(route.method.toUpperCase(), integration, {
        authorizationType: AuthorizationType.IAM,
        requestValidator: this.requestValidator,
        requestParameters: Object.fromEntries(pathParameters.map((p) => [`method.request.path.${p}`, true])),
        ...(requestModels ? { requestModels } : {}),
      });
      this.methods.push(method);
    }

    for (const method of this.methods) {
      NagSuppressions.addResourceSuppressions(method, [
        {
          id: 'AwsSolutions-COG4',
          reason:
            'No Cognito: every method uses IAM (SigV4) authorization; callers are fleet back ends and operators ' +
            'holding IAM credentials, authorized by their IAM policies on execute-api.',
        },
      ]);
    }
    NagSuppressions.addResourceSuppressions(this.cloudWatchRole, [
      {
        id: 'AwsSolutions-IAM4',
        reason:
          'The account-level role that lets API Gateway write execution and access logs to CloudWatch Logs: ' +
          'AmazonAPIGatewayPushToCloudWatchLogs is the policy AWS documents for it.',
        appliesTo: ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs'],
      },
    ]);
    NagSuppressions.addResourceSuppressions(this.api.deploymentStage, [
      {
        id: 'AwsSolutions-APIG3',
        reason:
          'No WAF web ACL by default: every method requires SigV4 (IAM) and the stage is throttled. An ACL is ' +
          'attached per deployment where the operator runs one (an account-wide cost and policy choice).',
      },
    ]);
  }

  /** The stage URL. */
  get url(): string {
    return this.api.url;
  }
}

/** Every route is a METHOD on an API Gateway resource path; every body schema names a route, every body method has one. */
function checkRoutes(routes: readonly Route[], bodySchemas: Readonly<Record<string, z.ZodType>>): void {
  const keys = routes.map(routeKey);
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const [i, route] of routes.entries()) {
    const key = keys[i]!;
    if (seen.has(key)) problems.push(`${key}: declared twice`);
    seen.add(key);
    if (!/^\/([A-Za-z0-9._-]+|\{[A-Za-z0-9_]+\+?\})(\/([A-Za-z0-9._-]+|\{[A-Za-z0-9_]+\+?\}))*$/.test(route.resource)) {
      problems.push(`${key}: not an API Gateway resource path`);
    }
    if (BODY_METHODS.has(route.method.toUpperCase()) && !bodySchemas[key]) problems.push(`${key}: no body schema`);
  }
  for (const key of Object.keys(bodySchemas)) if (!seen.has(key)) problems.push(`body schema ${key}: no such route`);
  if (problems.length > 0) throw new Error(`bulk API routes: ${problems.join('; ')}`);
}
