/** The REST routes of each API handler: the CDK API and the local HTTP server are built from these lists. */
import type { Route } from './http';

export const BULK_ROUTES: Route[] = [
  { method: 'POST', resource: '/supplier/{supplierId}/certificates' },
  { method: 'GET', resource: '/certificates/{taskId}/task' },
  { method: 'GET', resource: '/certificates/{taskId}' },
];
