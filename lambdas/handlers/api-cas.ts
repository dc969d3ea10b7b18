/**
 * REST API of the CA hierarchy and the inventory (routes in routes.ts: CA_ROUTES). `GET /certificates/{id}` is
 * shared with bulk issuance (CDF's task download): the bulk handler hands 64-hex ids (certificate ids) here.
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import type { z } from 'zod';
import { fromZodError } from '../core/bulk/request';
import * as ca from '../core/ca/service';
import {
  CreateCaBodySchema,
  DeviceCertificateBodySchema,
  ListCertificatesQuerySchema,
  RevokeBodySchema,
  ServerCertificateBodySchema,
} from '../core/ca/requests';
import { NotFoundError, ValidationError } from '../core/errors';
import { header, json, jsonBody, negotiate } from './http';

export const CERTIFICATE_ID_RE = /^[0-9a-f]{64}$/;

function parse<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const result = schema.safeParse(value ?? {});
  if (!result.success) throw fromZodError(result.error);
  return result.data;
}

/** A 64-hex id from the path; `field` names it in errors when the path variable has another name. */
function caIdParam(event: APIGatewayProxyEvent, name: string, field = name): string {
  const id = event.pathParameters?.[name];
  if (!id || !CERTIFICATE_ID_RE.test(id)) {
    throw new ValidationError('INVALID_REQUEST', `${field} must be 64 lower-case hex characters`, {
      details: { field },
    });
  }
  return id;
}

/** Handles a CA route; `undefined` when the route is not one of CA_ROUTES. Throws typed errors. */
export const createCaRoutes =
  (deps: ca.CaDeps) =>
  async (event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult | undefined> => {
    const route = `${event.httpMethod} ${event.resource}`;
    switch (route) {
      case 'POST /cas/root':
        return json(201, await ca.createRoot(deps, parse(CreateCaBodySchema, jsonBody(event))), negotiate(event));
      case 'GET /cas':
        return json(200, { cas: await ca.listCas(deps) }, negotiate(event));
      case 'GET /cas/{caId}':
        return json(200, await ca.getCa(deps, caIdParam(event, 'caId')), negotiate(event));
      case 'POST /cas/{caId}/intermediates':
        return json(
          201,
          await ca.createIntermediate(deps, caIdParam(event, 'caId'), parse(CreateCaBodySchema, jsonBody(event))),
          negotiate(event),
        );
      case 'POST /cas/{caId}/revoke':
        return json(
          200,
          await ca.revokeCa(deps, caIdParam(event, 'caId'), parse(RevokeBodySchema, jsonBody(event))),
          negotiate(event),
        );
      case 'GET /cas/{caId}/crl': {
        const pem = /application\/x-pem-file|text\/plain/.test(header(event, 'accept') ?? '');
        const body = await ca.getCrl(deps, caIdParam(event, 'caId'), 'der');
        if (pem)
          return { statusCode: 200, headers: { 'content-type': 'application/x-pem-file' }, body: ca.crlPem(body) };
        return {
          statusCode: 200,
          headers: { 'content-type': 'application/pkix-crl' },
          body: body.toString('base64'),
          isBase64Encoded: true,
        };
      }
      case 'POST /certificates/server':
        return json(
          201,
          await ca.issueServer(deps, parse(ServerCertificateBodySchema, jsonBody(event))),
          negotiate(event),
        );
      case 'POST /certificates/device':
        return json(
          201,
          await ca.issueDevice(deps, parse(DeviceCertificateBodySchema, jsonBody(event))),
          negotiate(event),
        );
      case 'GET /certificates':
        return json(
          200,
          await ca.listCertificates(deps, parse(ListCertificatesQuerySchema, event.queryStringParameters ?? {})),
          negotiate(event),
        );
      case 'POST /certificates/{taskId}/revoke':
        return json(
          200,
          await ca.revokeCertificate(
            deps,
            caIdParam(event, 'taskId', 'certificateId'),
            parse(RevokeBodySchema, jsonBody(event)),
          ),
          negotiate(event),
        );
      case 'GET /certificates/{taskId}': {
        const id = event.pathParameters?.taskId ?? '';
        if (!CERTIFICATE_ID_RE.test(id)) return undefined;
        return json(200, await ca.getCertificate(deps, id), negotiate(event));
      }
      default:
        return undefined;
    }
  };

export const unknownRoute = (event: APIGatewayProxyEvent): NotFoundError =>
  new NotFoundError('ROUTE_NOT_FOUND', `no route ${event.httpMethod} ${event.path}`);
