/**
 * HTTP plumbing shared by the API handlers in both runtimes: API Gateway REST proxy events in, proxy results
 * out; typed errors become `{ code, message }` with their status; CDF's media type is negotiated.
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { isCertflowError, UnsupportedMediaTypeError, ValidationError } from '../core/errors';

export const CDF_MEDIA_TYPE = 'application/vnd.aws-cdf-v1.0+json';
const JSON_TYPES = [CDF_MEDIA_TYPE, 'application/json'];

export interface ErrorLogger {
  error(message: string, ...extra: { error: unknown }[]): void;
}

/** The media type to answer with, or a 415 (as CDF does) when the client accepts none we produce. */
export function negotiate(event: APIGatewayProxyEvent, alsoAccept: string[] = []): string {
  const accept = header(event, 'accept');
  if (!accept) return 'application/json';
  const wanted = accept.split(',').map((p) => p.split(';')[0]!.trim().toLowerCase());
  for (const type of wanted) {
    if (JSON_TYPES.includes(type) || alsoAccept.includes(type)) return type;
    if (type === '*/*' || type === 'application/*') return 'application/json';
  }
  throw new UnsupportedMediaTypeError(
    'UNSUPPORTED_MEDIA_TYPE',
    `Accept: certflow answers ${[...JSON_TYPES, ...alsoAccept].join(' or ')}`,
  );
}

export function header(event: APIGatewayProxyEvent, name: string): string | undefined {
  const headers = event.headers ?? {};
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
  return key === undefined ? undefined : (headers[key] ?? undefined);
}

/** The JSON body; 400 INVALID_JSON when it does not parse, 415 when it is declared as something else. */
export function jsonBody(event: APIGatewayProxyEvent): unknown {
  if (event.body === null || event.body === undefined || event.body === '') return undefined;
  const contentType = header(event, 'content-type')?.split(';')[0]?.trim().toLowerCase();
  if (contentType && !JSON_TYPES.includes(contentType)) {
    throw new UnsupportedMediaTypeError('UNSUPPORTED_MEDIA_TYPE', `Content-Type: send ${JSON_TYPES.join(' or ')}`);
  }
  const text = event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  try {
    return JSON.parse(text);
  } catch {
    throw new ValidationError('INVALID_JSON', 'the request body is not valid JSON');
  }
}

export function json(
  statusCode: number,
  body: unknown,
  contentType = 'application/json',
  headers: Record<string, string> = {},
): APIGatewayProxyResult {
  return { statusCode, headers: { 'content-type': contentType, ...headers }, body: JSON.stringify(body) };
}

export function errorResult(
  error: unknown,
  logger?: ErrorLogger,
  contentType = 'application/json',
): APIGatewayProxyResult {
  if (isCertflowError(error)) return json(error.status, error.toJSON(), contentType);
  logger?.error('unhandled error', { error });
  return json(500, { code: 'INTERNAL_ERROR', message: 'certflow could not complete the request' }, contentType);
}

/** The path prefix in front of the resource (the API Gateway stage, e.g. "/prod"), for Location headers. */
export function basePath(event: APIGatewayProxyEvent): string {
  const full = event.requestContext?.path;
  if (full && event.path && full.endsWith(event.path)) return full.slice(0, full.length - event.path.length);
  return '';
}

export interface Route {
  method: string;
  /** API Gateway resource path, e.g. /certificates/{taskId} */
  resource: string;
}

/** Matches a concrete path to one of the routes; used by the local HTTP server to build proxy events. */
export function matchRoute(
  routes: Route[],
  method: string,
  path: string,
): { route: Route; pathParameters: Record<string, string> } | undefined {
  const parts = path.split('/').filter(Boolean);
  for (const route of routes) {
    if (route.method !== method) continue;
    const pattern = route.resource.split('/').filter(Boolean);
    if (pattern.length !== parts.length) continue;
    const params: Record<string, string> = {};
    const ok = pattern.every((p, i) => {
      if (p.startsWith('{') && p.endsWith('}')) {
        try {
          params[p.slice(1, -1)] = decodeURIComponent(parts[i]!);
        } catch {
          return false;
        }
        return true;
      }
      return p === parts[i];
    });
    if (ok) return { route, pathParameters: params };
  }
  return undefined;
}
