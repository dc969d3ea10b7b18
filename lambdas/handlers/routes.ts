/** The REST routes of each API handler: the CDK API and the local HTTP server are built from these lists. */
import type { z } from 'zod';
import { CreateBatchBodySchema } from '../core/bulk/request';
import {
  CreateCaBodySchema,
  DeviceCertificateBodySchema,
  RevokeBodySchema,
  ServerCertificateBodySchema,
} from '../core/ca/requests';
import type { Route } from './http';

export const BULK_ROUTES: Route[] = [
  { method: 'POST', resource: '/supplier/{supplierId}/certificates' },
  { method: 'GET', resource: '/certificates/{taskId}/task' },
  { method: 'GET', resource: '/certificates/{taskId}' },
];

export const CA_ROUTES: Route[] = [
  { method: 'POST', resource: '/cas/root' },
  { method: 'GET', resource: '/cas' },
  { method: 'GET', resource: '/cas/{caId}' },
  { method: 'POST', resource: '/cas/{caId}/intermediates' },
  { method: 'POST', resource: '/cas/{caId}/revoke' },
  { method: 'GET', resource: '/cas/{caId}/crl' },
  { method: 'POST', resource: '/certificates/server' },
  { method: 'POST', resource: '/certificates/device' },
  { method: 'GET', resource: '/certificates' },
  // API Gateway allows one variable name per path level: under /certificates it is CDF's {taskId}, which holds a
  // task id (bulk) or a certificate id (64 hex characters) depending on the route
  { method: 'POST', resource: '/certificates/{taskId}/revoke' },
];

/** `METHOD /resource`, the key of a route. */
export const routeKey = (route: Route): string => `${route.method.toUpperCase()} ${route.resource}`;

/** Every route of the REST API: bulk issuance and the CA hierarchy, served by one function. */
export const API_ROUTES: readonly Route[] = [...BULK_ROUTES, ...CA_ROUTES];

/**
 * The request bodies the handler parses, by route: API Gateway validates them with the same schemas and the OpenAPI
 * document describes them.
 */
export const API_BODY_SCHEMAS: Readonly<Record<string, z.ZodType>> = {
  'POST /supplier/{supplierId}/certificates': CreateBatchBodySchema,
  'POST /cas/root': CreateCaBodySchema,
  'POST /cas/{caId}/intermediates': CreateCaBodySchema,
  'POST /cas/{caId}/revoke': RevokeBodySchema,
  'POST /certificates/server': ServerCertificateBodySchema,
  'POST /certificates/device': DeviceCertificateBodySchema,
  'POST /certificates/{taskId}/revoke': RevokeBodySchema,
};
export const PROVISIONING_ROUTES: Route[] = [
  { method: 'GET', resource: '/templates' },
  { method: 'PUT', resource: '/templates/{templateId}' },
  { method: 'GET', resource: '/templates/{templateId}' },
  { method: 'POST', resource: '/things' },
  { method: 'POST', resource: '/bulkprovisioningtasks' },
  { method: 'GET', resource: '/bulkprovisioningtasks/{taskId}' },
];
