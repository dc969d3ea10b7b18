/** The REST routes of each API handler: the CDK API and the local HTTP server are built from these lists. */
import { z } from 'zod';
import { CreateBatchBodySchema } from '../core/bulk/request';
import {
  CreateCaBodySchema,
  DeviceCertificateBodySchema,
  RevokeBodySchema,
  ServerCertificateBodySchema,
} from '../core/ca/requests';
import { BulkProvisioningBodySchema } from '../core/provisioning/bulk';
import { ProvisionThingBodySchema } from '../core/provisioning/service';
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

/** The routes of the provisioning function (api-provisioning.ts), an API of its own on the same REST API. */
export const PROVISIONING_ROUTES: Route[] = [
  { method: 'GET', resource: '/templates' },
  { method: 'PUT', resource: '/templates/{templateId}' },
  { method: 'GET', resource: '/templates/{templateId}' },
  { method: 'POST', resource: '/things' },
  { method: 'POST', resource: '/bulkprovisioningtasks' },
  { method: 'GET', resource: '/bulkprovisioningtasks/{taskId}' },
];

/** A template as API Gateway checks it (the handler checks the rest and names the path of a fault). */
export const TemplateBodySchema = z
  .object({ Resources: z.record(z.string(), z.unknown()) })
  .catchall(z.unknown())
  .describe(
    'an AWS IoT provisioning template (Parameters, Mappings, Conditions, Resources) with an optional CDF section',
  );

/** The provisioning routes' request bodies (API Gateway validates them with the handler's schemas). */
export const PROVISIONING_BODY_SCHEMAS: Readonly<Record<string, z.ZodType>> = {
  'PUT /templates/{templateId}': TemplateBodySchema,
  'POST /things': ProvisionThingBodySchema,
  'POST /bulkprovisioningtasks': BulkProvisioningBodySchema,
};

/**
 * Every route table the server exposes (the local HTTP server and the CDK REST API mount each of them): the OpenAPI
 * document describes exactly these. A new table goes here, or the OpenAPI test (which collects every `Route[]`
 * exported by this file) fails.
 */
export const ROUTE_TABLES = {
  bulk: BULK_ROUTES,
  ca: CA_ROUTES,
  provisioning: PROVISIONING_ROUTES,
} as const satisfies Record<string, readonly Route[]>;

/** Every route the server exposes, of every table. */
export const SERVED_ROUTES: readonly Route[] = Object.values(ROUTE_TABLES).flat();

/** Every request body schema, by route. */
export const BODY_SCHEMAS: Readonly<Record<string, z.ZodType>> = { ...API_BODY_SCHEMAS, ...PROVISIONING_BODY_SCHEMAS };
