/**
 * REST API of bulk issuance (CDF bulkcerts compatible):
 *   POST /supplier/{supplierId}/certificates   → 202 { taskId, status }
 *   GET  /certificates/{taskId}/task           → task status
 *   GET  /certificates/{taskId}                → 303 while running, the zip when done, presigned URLs on request
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { NotFoundError, ValidationError } from '../core/errors';
import { BatchDeps, createBatch, getDownload, getTask, taskView } from '../core/bulk/service';
import { lambdaBundle, logger } from './bundle';
import { ApiEnv } from './env';
import { createCaRoutes } from './api-cas';
import { basePath, errorResult, ErrorLogger, header, json, jsonBody, negotiate } from './http';

export { BULK_ROUTES } from './routes';

const param = (event: APIGatewayProxyEvent, name: string): string => {
  const value = event.pathParameters?.[name];
  if (!value) throw new ValidationError('INVALID_REQUEST', `${name} is required`, { details: { field: name } });
  return value;
};

/**
 * `routes`: further route handlers tried first (the CA hierarchy API), each answering `undefined` for routes that
 * are not its own; they share this handler's error mapping.
 */
export const createHandler =
  (
    deps: BatchDeps,
    logger?: ErrorLogger,
    routes: ((event: APIGatewayProxyEvent) => Promise<APIGatewayProxyResult | undefined>)[] = [],
  ) =>
  async (event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> => {
    let type = 'application/json';
    try {
      for (const handle of routes) {
        const result = await handle(event);
        if (result) return result;
      }
      const route = `${event.httpMethod} ${event.resource}`;
      switch (route) {
        case 'POST /supplier/{supplierId}/certificates': {
          type = negotiate(event);
          const supplierId = param(event, 'supplierId');
          const { task } = await createBatch(deps, supplierId, jsonBody(event), header(event, 'idempotency-key'));
          const location = `${basePath(event)}/certificates/${task.taskId}`;
          return json(202, { taskId: task.taskId, status: task.status }, type, { location, 'x-taskid': task.taskId });
        }
        case 'GET /certificates/{taskId}/task': {
          type = negotiate(event);
          return json(200, taskView(await getTask(deps, param(event, 'taskId'))), type);
        }
        case 'GET /certificates/{taskId}': {
          type = negotiate(event, ['application/zip', 'application/octet-stream']);
          const taskId = param(event, 'taskId');
          const query = event.queryStringParameters ?? {};
          const downloadType = query.downloadtype ?? query.downloadType;
          const result = await getDownload(deps, taskId, downloadType);
          switch (result.kind) {
            case 'in-progress': {
              const location = `${basePath(event)}/certificates/${taskId}/task`;
              const body = { ...taskView(result.task), message: 'the batch is not complete yet' };
              return json(303, body, type === 'application/zip' ? 'application/json' : type, { location });
            }
            case 'urls':
              return json(200, result.urls, type === 'application/zip' ? 'application/json' : type);
            case 'redirect':
              return { statusCode: 302, headers: { location: result.url }, body: '' };
            case 'zip':
              return {
                statusCode: 200,
                headers: {
                  'content-type': 'application/zip',
                  'content-disposition': `attachment; filename="${result.fileName}"`,
                },
                body: result.body.toString('base64'),
                isBase64Encoded: true,
              };
          }
        }
        // falls through: the switch above returns on every kind
        default:
          throw new NotFoundError('ROUTE_NOT_FOUND', `no route ${event.httpMethod} ${event.path}`);
      }
    } catch (error) {
      return errorResult(error, logger, type === 'application/zip' ? 'application/json' : type);
    }
  };

export const handler = lambdaBundle(ApiEnv, async (env) => {
  const [{ awsBatchDeps, defaultClients }, { awsCaDeps }] = await Promise.all([
    import('../adapters/aws/bulk-deps'),
    import('../adapters/aws/ca-deps'),
  ]);
  const clients = defaultClients();
  return createHandler(awsBatchDeps(env, clients), logger, [createCaRoutes(awsCaDeps(env, clients))]);
});
