import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { EVENT_SCHEMAS, eventEnvelopeSchema, eventSchemaFile, type DetailType } from '../../lambdas/core/events';
import type { Route } from '../../lambdas/handlers/http';
import { API_OPERATIONS, openApiDocument } from '../../lambdas/handlers/openapi';
import * as routeTables from '../../lambdas/handlers/routes';
import { generatedDocs } from '../../local/docs';
import { exampleEvent } from '../helpers/events';

const DOCS = join(__dirname, '../../docs');
type Json = Record<string, unknown>;
interface MediaType {
  schema: Json;
  example?: unknown;
}
interface Operation {
  requestBody?: { content: Record<string, MediaType> };
  responses: Record<string, { content?: Record<string, MediaType> }>;
}
const doc = JSON.parse(readFileSync(join(DOCS, 'openapi.json'), 'utf8')) as {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
};

/** every Route[] exported by routes.ts: the route tables, whatever their names */
const allRoutes: Route[] = Object.values(routeTables)
  .filter((v): v is Route[] => Array.isArray(v) && v.every((r) => typeof r?.resource === 'string'))
  .flat();

/** (where, media type) for every documented example */
function examples(): [string, MediaType][] {
  const found: [string, MediaType][] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      for (const [type, media] of Object.entries(op.requestBody?.content ?? {})) {
        if (media.example !== undefined) found.push([`${method.toUpperCase()} ${path} request ${type}`, media]);
      }
      for (const [status, response] of Object.entries(op.responses)) {
        for (const [type, media] of Object.entries(response.content ?? {})) {
          if (media.example !== undefined) found.push([`${method.toUpperCase()} ${path} ${status} ${type}`, media]);
        }
      }
    }
  }
  return found;
}

describe('the OpenAPI document', () => {
  it('docs/openapi.json and docs/events/*.schema.json are the generated ones (run npm run docs)', () => {
    const generated = generatedDocs();
    for (const [path, text] of Object.entries(generated)) expect(readFileSync(join(DOCS, path), 'utf8')).toBe(text);
    expect(readdirSync(join(DOCS, 'events')).map((f) => `events/${f}`)).toEqual(
      Object.keys(generated)
        .filter((p) => p.startsWith('events/'))
        .sort(),
    );
  });

  it('is OpenAPI 3.1 and has every route of every route table, and nothing else', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(allRoutes.length).toBeGreaterThanOrEqual(routeTables.API_ROUTES.length);
    const documented = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(documented.sort()).toEqual([...new Set(allRoutes.map(routeTables.routeKey))].sort());
    // the generator's list is ROUTE_TABLES: every exported table is one of them, and the provisioning routes are in
    expect(routeTables.SERVED_ROUTES.map(routeTables.routeKey).sort()).toEqual(documented.sort());
    expect(documented).toEqual(expect.arrayContaining(routeTables.PROVISIONING_ROUTES.map(routeTables.routeKey)));
    for (const route of routeTables.PROVISIONING_ROUTES) {
      const op = doc.paths[route.resource]![route.method.toLowerCase()] as unknown as { tags: string[] };
      expect(op.tags).toEqual(['provisioning']);
    }
  });

  it('names each operation once and declares exactly the path parameters of its path', () => {
    const ids = Object.values(doc.paths).flatMap((methods) =>
      Object.values(methods).map((op) => (op as unknown as { operationId: string }).operationId),
    );
    expect(new Set(ids).size).toBe(ids.length);
    for (const [path, methods] of Object.entries(doc.paths)) {
      const inPath = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
      for (const op of Object.values(methods) as unknown as { parameters?: { in: string; name: string }[] }[]) {
        const declared = (op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name);
        expect(declared.sort()).toEqual(inPath);
      }
    }
  });

  it('documents every request body with the schema the handler parses with', () => {
    expect(Object.keys(routeTables.BODY_SCHEMAS)).toEqual(
      expect.arrayContaining(['PUT /templates/{templateId}', 'POST /things', 'POST /bulkprovisioningtasks']),
    );
    for (const [key, schema] of Object.entries(routeTables.BODY_SCHEMAS)) {
      const [method, path] = key.split(' ') as [string, string];
      const media = doc.paths[path]![method.toLowerCase()]!.requestBody!.content['application/json']!;
      const expected = z.toJSONSchema(schema, { io: 'input' }) as Json;
      delete expected.$schema;
      expect(media.schema).toEqual(JSON.parse(JSON.stringify(expected)) as unknown);
    }
  });

  it('has examples, and every one validates against its schema in the document', () => {
    const found = examples();
    // every request body and every JSON success response has one
    expect(found.length).toBeGreaterThanOrEqual(Object.keys(routeTables.BODY_SCHEMAS).length * 2);
    for (const [where, media] of found) {
      const result = z.fromJSONSchema(media.schema as never).safeParse(media.example);
      if (!result.success) throw new Error(`${where}: ${result.error.message}`);
    }
  });

  it('the validation of examples can fail: a broken example is refused', () => {
    const media = doc.paths['/supplier/{supplierId}/certificates']!.post!.requestBody!.content['application/json']!;
    const schema = z.fromJSONSchema(media.schema as never);
    expect(schema.safeParse({ ...(media.example as Json), quantity: 0 }).success).toBe(false);
    expect(schema.safeParse({ ...(media.example as Json), privateKey: 'x' }).success).toBe(false);
    const task = doc.paths['/certificates/{taskId}/task']!.get!.responses['200']!.content!['application/json']!;
    expect(z.fromJSONSchema(task.schema as never).safeParse({ taskId: 'x' }).success).toBe(false);
  });

  it('refuses to generate for a route without a description, or a description without a route', () => {
    const extra: Route = { method: 'DELETE', resource: '/cas/{caId}' };
    expect(() => openApiDocument([...routeTables.SERVED_ROUTES, extra])).toThrow(
      /DELETE \/cas\/\{caId\}: no OperationDoc/,
    );
    expect(() => openApiDocument(routeTables.SERVED_ROUTES.slice(1))).toThrow(/documented but no route/);
    // a route table left out of the generation leaves its operations without a route
    expect(() => openApiDocument(routeTables.API_ROUTES)).toThrow(/POST \/things: documented but no route/);
    const { 'POST /cas/root': root, ...rest } = API_OPERATIONS;
    expect(() =>
      openApiDocument(routeTables.SERVED_ROUTES, { ...rest, 'POST /cas/root': { ...root!, bodyExample: undefined } }),
    ).toThrow(/POST \/cas\/root: a body schema without an example/);
  });
});

describe('the event JSON Schemas', () => {
  it.each(Object.keys(EVENT_SCHEMAS))('docs/events/ has %s, and its example event validates against it', (type) => {
    const detailType = type as DetailType;
    const schema = JSON.parse(readFileSync(join(DOCS, 'events', eventSchemaFile(detailType)), 'utf8')) as Json;
    const event = exampleEvent(detailType);
    expect(eventEnvelopeSchema(detailType).safeParse(event).success).toBe(true);
    const fromFile = z.fromJSONSchema(schema as never);
    expect(fromFile.safeParse(event).success).toBe(true);
    expect(fromFile.safeParse({ ...event, 'detail-type': 'Something Else' }).success).toBe(false);
    expect(fromFile.safeParse({ ...event, detail: { ...event.detail, privateKey: 'x' } }).success).toBe(false);
  });
});
