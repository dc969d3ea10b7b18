/**
 * The local runtime's HTTP front door: Node's http server on 127.0.0.1 turning requests into the API Gateway
 * REST proxy events the API handlers take on AWS, and their results back into responses.
 */
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { matchRoute, Route } from '../lambdas/handlers/http';

export type ApiHandler = (event: APIGatewayProxyEvent) => Promise<APIGatewayProxyResult>;

export interface Mount {
  routes: Route[];
  handler: ApiHandler;
}

/** Extra plain handlers (console, OpenAPI …) tried before the API routes; return true when handled. */
export type RawHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean> | boolean;

const MAX_BODY = 10 * 1024 * 1024;

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw Object.assign(new Error('body too large'), { status: 413 });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export function toProxyEvent(
  req: IncomingMessage,
  body: Buffer,
  url: URL,
  route: Route,
  pathParameters: Record<string, string>,
): APIGatewayProxyEvent {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers))
    if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = v;
  const text = body.toString('utf8');
  const binary = body.length > 0 && !Buffer.from(text, 'utf8').equals(body);
  return {
    httpMethod: req.method ?? 'GET',
    path: url.pathname,
    resource: route.resource,
    pathParameters,
    queryStringParameters: Object.keys(query).length ? query : null,
    multiValueQueryStringParameters: null,
    headers,
    multiValueHeaders: {},
    body: body.length === 0 ? null : binary ? body.toString('base64') : text,
    isBase64Encoded: binary,
    stageVariables: null,
    requestContext: {
      path: url.pathname,
      stage: 'local',
      httpMethod: req.method ?? 'GET',
      requestId: `local-${Date.now()}`,
      resourcePath: route.resource,
    } as APIGatewayProxyEvent['requestContext'],
  };
}

function send(res: ServerResponse, result: APIGatewayProxyResult): void {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(result.headers ?? {})) headers[k] = String(v);
  const body = result.isBase64Encoded ? Buffer.from(result.body, 'base64') : Buffer.from(result.body ?? '', 'utf8');
  headers['content-length'] = String(body.length);
  res.writeHead(result.statusCode, headers);
  res.end(body);
}

export async function startHttpServer(opts: {
  host?: string;
  port?: number;
  mounts: Mount[];
  raw?: RawHandler[];
}): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    void (async () => {
      try {
        const url = new URL(req.url ?? '/', 'http://127.0.0.1');
        for (const raw of opts.raw ?? []) if (await raw(req, res)) return;
        for (const mount of opts.mounts) {
          const match = matchRoute(mount.routes, req.method ?? 'GET', url.pathname);
          if (!match) continue;
          const body = await readBody(req);
          send(res, await mount.handler(toProxyEvent(req, body, url, match.route, match.pathParameters)));
          return;
        }
        send(res, {
          statusCode: 404,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ code: 'ROUTE_NOT_FOUND', message: `no route ${req.method} ${url.pathname}` }),
        });
      } catch (e) {
        const status = (e as { status?: number }).status ?? 500;
        send(res, {
          statusCode: status,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            code: status === 413 ? 'BODY_TOO_LARGE' : 'INTERNAL_ERROR',
            message: (e as Error).message,
          }),
        });
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    server,
    url: `http://${address}:${port}`,
    // requests still in flight get a moment to finish, then their connections are cut (close never hangs on a client)
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 1000).unref();
      }),
  };
}
