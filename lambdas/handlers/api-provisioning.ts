/**
 * REST API of device provisioning (CDF provisioning compatible; routes in routes.ts: PROVISIONING_ROUTES):
 *   GET  /templates                          → { templates: [{ templateId }] }
 *   PUT  /templates/{templateId}             → 201 (new) / 200, validated on upload
 *   GET  /templates/{templateId}             → the template
 *   POST /things                             → 201 { thingName, resourceArns, certificatePem, privateKey? … }
 *   POST /bulkprovisioningtasks              → 202 { taskId, status }
 *   GET  /bulkprovisioningtasks/{taskId}     → status, counts, per-item errors, result URLs
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { createBulkProvisioningTask, provisioningTaskView, type BulkProvisioningDeps } from '../core/provisioning/bulk';
import { checkTemplateId, getTemplate, listTemplates, provisionThing, putTemplate } from '../core/provisioning/service';
import { ValidationError } from '../core/errors';
import { unknownRoute } from './api-cas';
import { basePath, errorResult, json, jsonBody, negotiate, type ErrorLogger } from './http';
import { lambdaBundle, logger } from './bundle';
import { ProvisioningApiEnv } from './env';

export { PROVISIONING_ROUTES } from './routes';

const TASK_ID_RE = /^[A-Za-z0-9-]{1,64}$/;

/** Handles a provisioning route; `undefined` when the route is not one of PROVISIONING_ROUTES. */
export const createProvisioningRoutes =
  (deps: BulkProvisioningDeps) =>
  async (event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult | undefined> => {
    const route = `${event.httpMethod} ${event.resource}`;
    switch (route) {
      case 'GET /templates':
        return json(200, await listTemplates(deps), negotiate(event));
      case 'PUT /templates/{templateId}': {
        const type = negotiate(event);
        const templateId = checkTemplateId(event.pathParameters?.templateId);
        const body = jsonBody(event);
        if (body === undefined) {
          throw new ValidationError('INVALID_REQUEST', 'the body is the provisioning template (JSON)', {
            details: { field: '(body)' },
          });
        }
        const { created, template } = await putTemplate(deps, templateId, body);
        return json(created ? 201 : 200, template, type, { location: `${basePath(event)}/templates/${templateId}` });
      }
      case 'GET /templates/{templateId}':
        return json(200, await getTemplate(deps, checkTemplateId(event.pathParameters?.templateId)), negotiate(event));
      case 'POST /things': {
        const type = negotiate(event);
        const result = await provisionThing(deps, jsonBody(event));
        return json(201, result, type);
      }
      case 'POST /bulkprovisioningtasks': {
        const type = negotiate(event);
        const task = await createBulkProvisioningTask(deps, jsonBody(event));
        return json(202, task, type, { location: `${basePath(event)}/bulkprovisioningtasks/${task.taskId}` });
      }
      case 'GET /bulkprovisioningtasks/{taskId}': {
        const taskId = event.pathParameters?.taskId ?? '';
        if (!TASK_ID_RE.test(taskId)) {
          throw new ValidationError('INVALID_REQUEST', 'taskId: a task id', { details: { field: 'taskId' } });
        }
        return json(200, await provisioningTaskView(deps, taskId), negotiate(event));
      }
      default:
        return undefined;
    }
  };

/** The provisioning API function: its routes, typed errors as `{ code, message }` with their status. */
export const createHandler =
  (deps: BulkProvisioningDeps, logger?: ErrorLogger) =>
  async (event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> => {
    try {
      const result = await createProvisioningRoutes(deps)(event);
      if (result) return result;
      throw unknownRoute(event);
    } catch (error) {
      return errorResult(error, logger);
    }
  };

export const handler = lambdaBundle(ProvisioningApiEnv, async (env) => {
  const [{ awsProvisioningDeps }, { defaultClients }] = await Promise.all([
    import('../adapters/aws/provisioning-deps'),
    import('../adapters/aws/bulk-deps'),
  ]);
  return createHandler(awsProvisioningDeps(env, defaultClients()), logger);
});
