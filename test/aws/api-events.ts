/** API Gateway (REST, proxy integration) events as the REST API Lambda receives them. */
import type { APIGatewayProxyEvent } from 'aws-lambda';

export interface ApiEventOptions {
  pathParameters?: Record<string, string>;
  headers?: Record<string, string>;
  /** sent as JSON text; absent: no body (null) */
  body?: unknown;
  query?: Record<string, string>;
  /** the stage prefix of requestContext.path (e.g. `/prod`); absent: none */
  stage?: string;
}

export function apiEvent(
  method: string,
  resource: string,
  path: string,
  options: ApiEventOptions = {},
): APIGatewayProxyEvent {
  return {
    httpMethod: method,
    resource,
    path,
    pathParameters: options.pathParameters ?? null,
    queryStringParameters: options.query ?? null,
    headers: options.headers ?? {},
    body: options.body === undefined ? null : JSON.stringify(options.body),
    isBase64Encoded: false,
    requestContext: { path: `${options.stage ?? ''}${path}` },
  } as unknown as APIGatewayProxyEvent;
}
