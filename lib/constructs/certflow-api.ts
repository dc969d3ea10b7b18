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
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import type { z } from 'zod';
import { API_BODY_SCHEMAS, API_ROUTES, routeKey } from '../../lambdas/handlers/routes';
import { ApiEnv, BulkEnv } from '../../lambdas/handlers/env';
import { CDF_MEDIA_TYPE, Route } from '../../lambdas/handlers/http';
import { apiGatewaySchema } from '../json-schema';
import { objectsFinding } from '../nag';
import { BATCHES_PREFIX, CERTIFICATES_PREFIX, CRLS_PREFIX, type BatchBucket } from './batch-bucket';
import type { CaHierarchy } from './ca-hierarchy';
import { CertflowFunction, FunctionEnvironment, handlerEntry } from './certflow-function';
import type { CertflowEventBus } from './event-bus';
import type { CertificateInventory } from './inventory';
import type { TaskTable } from './task-table';

export { API_BODY_SCHEMAS, API_ROUTES, routeKey } from '../../lambdas/handlers/routes';

/** The JSON media types the handler reads bodies in (the model applies to each). */
export const JSON_MEDIA_TYPES = ['application/json', CDF_MEDIA_TYPE];

/** The binary media types the handler answers with (base64 bodies API Gateway decodes): zips and DER CRLs. */
export const BINARY_MEDIA_TYPES = ['application/zip', 'application/pkix-crl'];

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/** Routes served by another function than the API's own. */
export interface ApiIntegration {
  readonly routes: readonly Route[];
  readonly bodySchemas: Readonly<Record<string, z.ZodType>>;
  readonly function: IFunction;
}

export interface CertflowApiProps {
  readonly table: TaskTable;
  readonly bucket: BatchBucket;
  readonly bus: CertflowEventBus;
  readonly stateMachine: IStateMachine;
  /** the revoke-issued workflow (CompromiseResponse), started for CA revocations larger than one slice */
  readonly revokeIssuedStateMachine: IStateMachine;
  /** the bulk functions' environment (BulkIssuance.environment); the API adds the state machine ARN and the CA's */
  readonly environment: FunctionEnvironment<typeof BulkEnv>;
  /** the inventory and CA tables */
  readonly inventory: CertificateInventory;
  /** the CA keys' KMS key and the rotation thing group */
  readonly caHierarchy: CaHierarchy;
  /** hours until a CRL's nextUpdate, default 24 */
  readonly crlValidityHours?: number;
  /** default API_ROUTES, the handlers' own route tables */
  readonly routes?: readonly Route[];
  /** body schemas by `METHOD /resource`, default API_BODY_SCHEMAS */
  readonly bodySchemas?: Readonly<Record<string, z.ZodType>>;
  /**
   * further routes served by functions of their own (e.g. provisioning), each with its body schemas; they share the
   * API, its validator and models
   */
  readonly integrations?: readonly ApiIntegration[];
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
 * The certflow REST API: API Gateway (IAM auth on every method) → one Lambda proxy integration running the same
 * handler as the local HTTP server, for bulk issuance and the CA hierarchy (they share `GET /certificates/{id}`).
 * Resources and methods come from the handlers' route tables; request bodies are validated from the handlers' zod
 * schemas.
 */
export class CertflowApi extends Construct {
  readonly api: RestApi;
  readonly handler: CertflowFunction<typeof ApiEnv>;
  readonly methods: Method[] = [];
  readonly requestValidator: RequestValidator;
  readonly accessLogs: LogGroup;
  readonly cloudWatchRole: Role;

  constructor(scope: Construct, id: string, props: CertflowApiProps) {
    super(scope, id);
    const routes = props.routes ?? API_ROUTES;
    const bodySchemas = props.bodySchemas ?? API_BODY_SCHEMAS;
    const logRetention = props.logRetention ?? RetentionDays.THREE_MONTHS;
    const { inventory, caHierarchy, bucket } = props;
    checkRoutes(routes, bodySchemas);
    const integrations = props.integrations ?? [];
    for (const extra of integrations) checkRoutes(extra.routes, extra.bodySchemas);
    const allRoutes = [...routes, ...integrations.flatMap((i) => i.routes)];
    const allKeys = allRoutes.map(routeKey);
    const twice = allKeys.filter((k, i) => allKeys.indexOf(k) !== i);
    if (twice.length > 0) throw new Error(`${this.node.path}: routes served twice: ${twice.join(', ')}`);
    // API Gateway refuses two variable names on one level at deploy time; fail the synth instead
    const conflicts = siblingPathParameterConflicts(allRoutes);
    if (conflicts.length > 0) throw new Error(`${this.node.path}: ${conflicts.join('; ')}`);

    this.handler = new CertflowFunction(this, 'Handler', {
      entry: handlerEntry('api-bulk-certificates'),
      description: 'certflow REST API: bulk issuance, CA hierarchy, inventory',
      envSchema: ApiEnv,
      environment: {
        ...props.environment,
        BULK_STATE_MACHINE_ARN: props.stateMachine.stateMachineArn,
        REVOKE_ISSUED_STATE_MACHINE_ARN: props.revokeIssuedStateMachine.stateMachineArn,
        INVENTORY_TABLE_NAME: inventory.inventoryTable.tableName,
        CA_TABLE_NAME: inventory.caTable.tableName,
        CA_KEY_KMS_KEY_ID: caHierarchy.caKeysKeyArn,
        ROTATION_THING_GROUP: caHierarchy.rotationThingGroupName,
        CRL_VALIDITY_HOURS: String(props.crlValidityHours ?? 24),
      },
      memorySize: 1024,
      // API Gateway's integration timeout is 29 s
      timeout: Duration.seconds(29),
      logRetention,
    });
    // createBatch: idempotency key (PutItem), task (PutItem), failed start (UpdateItem); reads (GetItem, and
    // BatchGetItem of the task's done shards)
    props.table.grant(
      this.handler,
      'dynamodb:GetItem',
      'dynamodb:BatchGetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
    );
    // DynamoInventory: get (GetItem), markRevoked (UpdateItem), listByIssuer / listExpiring (Query on the indexes);
    // the inventory workflow writes the issued certificates (PutItem), not the API
    inventory.inventoryTable.grant(this.handler, 'dynamodb:GetItem', 'dynamodb:UpdateItem');
    inventory.inventoryTable.grantIndexQuery(this.handler);
    // DynamoCaStore: create (PutItem), get (GetItem), list (Scan), nextCrlNumber and markRevoked (UpdateItem)
    inventory.caTable.grant(
      this.handler,
      'dynamodb:PutItem',
      'dynamodb:GetItem',
      'dynamodb:Scan',
      'dynamodb:UpdateItem',
    );
    // the batch request (PutObject), inline zips and presigned GETs (GetObject); issued certificates and CRLs
    bucket.grantObjects(
      this.handler,
      [BATCHES_PREFIX, CERTIFICATES_PREFIX, CRLS_PREFIX],
      's3:GetObject',
      's3:PutObject',
    );
    // a zip removed by the lifecycle rule (or a CRL not published yet) must read as 404, not 403
    bucket.grantList(this.handler);
    props.stateMachine.grantStartExecution(this.handler);
    props.revokeIssuedStateMachine.grantStartExecution(this.handler);
    // CA Created, Certificate Issued, Certificate Revoked
    props.bus.grantPutEvents(this.handler);
    // SsmCaKeyWriter and SsmCaKeyStore (CA parameters, CA key KMS key via SSM, DescribeCACertificate)
    caHierarchy.grantCaKeyStore(this.handler, 'readWrite');
    // IotRotationGroup: the things of a revoked CA join the rotation group
    caHierarchy.grantRotation(this.handler);
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
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'Issued certificates are keyed certificates/{certificateId}.pem and CRLs crls/{caId}.crl(.pem), with ' +
            'ids (SHA-256 of the certificate) made at request time: GetObject/PutObject under those prefixes only.',
          appliesTo: [objectsFinding(CERTIFICATES_PREFIX), objectsFinding(CRLS_PREFIX)],
        },
      ],
      true,
    );

    this.accessLogs = new LogGroup(this, 'AccessLogs', {
      retention: logRetention,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.api = new RestApi(this, 'Api', {
      restApiName: 'certflow',
      description: 'certflow: bulk certificate issuance (CDF bulkcerts compatible), CA hierarchy and inventory',
      endpointConfiguration: { types: [EndpointType.REGIONAL] },
      binaryMediaTypes: BINARY_MEDIA_TYPES,
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
    const groups = [
      { routes, bodySchemas, fn: this.handler.function as IFunction },
      ...integrations.map((i) => ({ routes: i.routes, bodySchemas: i.bodySchemas, fn: i.function })),
    ];
    // one model per schema (routes that take the same body share it)
    const models = new Map<z.ZodType, Model>();
    for (const group of groups) {
      const integration = new LambdaIntegration(group.fn, { proxy: true, allowTestInvoke: false });
      const bodySchemas = group.bodySchemas;
      for (const route of group.routes) {
        const key = routeKey(route);
        const bodySchema = bodySchemas[key];
        let requestModels: Record<string, Model> | undefined;
        if (bodySchema) {
          let model = models.get(bodySchema);
          if (!model) {
            const keys = Object.keys(bodySchemas).filter((k) => bodySchemas[k] === bodySchema);
            model = this.api.addModel(`BodyModel${models.size}`, {
              contentType: 'application/json',
              description: `request body of ${keys.join(', ')}`,
              schema: apiGatewaySchema(bodySchema),
            });
            models.set(bodySchema, model);
          }
          requestModels = Object.fromEntries(JSON_MEDIA_TYPES.map((type) => [type, model]));
        }
        const pathParameters = [...route.resource.matchAll(/\{([^}+]+)\+?\}/g)].map((m) => m[1]!);
        const method = this.api.root
          .resourceForPath(route.resource)
          .addMethod(route.method.toUpperCase(), integration, {
            authorizationType: AuthorizationType.IAM,
            requestValidator: this.requestValidator,
            requestParameters: Object.fromEntries(pathParameters.map((p) => [`method.request.path.${p}`, true])),
            ...(requestModels ? { requestModels } : {}),
          });
        this.methods.push(method);
      }
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
  if (problems.length > 0) throw new Error(`API routes: ${problems.join('; ')}`);
}

/**
 * API Gateway allows one path parameter among the children of a resource: `/a/{x}` and `/a/{y}/b` cannot both
 * exist (CreateResource fails: "A sibling ({x}) of this resource already has a variable path part -- only one is
 * allowed"). The routes that would need two, one message per resource.
 */
export function siblingPathParameterConflicts(routes: readonly Route[]): string[] {
  const variables = new Map<string, Map<string, string[]>>();
  for (const route of routes) {
    const parts = route.resource.split('/').slice(1);
    for (const [i, part] of parts.entries()) {
      if (!part.startsWith('{')) continue;
      const parent = `/${parts.slice(0, i).join('/')}`;
      const byName = variables.get(parent) ?? new Map<string, string[]>();
      variables.set(parent, byName);
      const users = byName.get(part) ?? [];
      if (!users.includes(routeKey(route))) users.push(routeKey(route));
      byName.set(part, users);
    }
  }
  const conflicts: string[] = [];
  for (const [parent, byName] of variables) {
    if (byName.size < 2) continue;
    const list = [...byName].map(([name, users]) => `${name} (${users.join(', ')})`).join(' and ');
    conflicts.push(
      `${parent} has two path parameters as children, ${list}: API Gateway refuses to deploy that; ` +
        'the routes must use one name for them',
    );
  }
  return conflicts;
}
