/**
 * The documents generated from the code (`npm run docs` writes them under docs/, tests check the files are in step,
 * the local runtime serves the OpenAPI document at /openapi.json).
 */
import { EVENT_SCHEMAS, eventJsonSchema, eventSchemaFile, type DetailType } from '../lambdas/core/events';
import { openApiDocument } from '../lambdas/handlers/openapi';

const text = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;

/** path under docs/ → content */
export function generatedDocs(): Record<string, string> {
  const files: Record<string, string> = { 'openapi.json': text(openApiDocument()) };
  for (const detailType of Object.keys(EVENT_SCHEMAS) as DetailType[]) {
    files[`events/${eventSchemaFile(detailType)}`] = text(eventJsonSchema(detailType));
  }
  return files;
}
