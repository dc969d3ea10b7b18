/**
 * zod schema → API Gateway model schema (JSON Schema draft 4), so that request validation in API Gateway comes
 * from the same schema the handler parses with. Every keyword is mapped explicitly: one the mapping does not know
 * fails the synth instead of being dropped silently.
 */
import { JsonSchema, JsonSchemaType, JsonSchemaVersion } from 'aws-cdk-lib/aws-apigateway';
import { z } from 'zod';

type Json = Record<string, unknown>;

const TYPES = new Set<string>(Object.values(JsonSchemaType));

/** keywords whose value is copied as is */
const PLAIN = [
  'title',
  'description',
  'enum',
  'default',
  'format',
  'multipleOf',
  'maximum',
  'exclusiveMaximum',
  'minimum',
  'exclusiveMinimum',
  'maxLength',
  'minLength',
  'pattern',
  'maxItems',
  'minItems',
  'uniqueItems',
  'maxProperties',
  'minProperties',
  'required',
] as const;

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function convert(node: unknown, at: string): JsonSchema {
  if (!isObject(node)) throw new Error(`JSON schema at ${at}: expected an object`);
  const out: Record<string, unknown> = {};
  const sub = (value: unknown, where: string): JsonSchema | boolean =>
    typeof value === 'boolean' ? value : convert(value, where);
  const subMap = (value: unknown, where: string): Record<string, JsonSchema> => {
    if (!isObject(value)) throw new Error(`JSON schema at ${where}: expected an object`);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, convert(v, `${where}.${k}`)]));
  };
  for (const [key, value] of Object.entries(node)) {
    const where = `${at}.${key}`;
    if ((PLAIN as readonly string[]).includes(key)) {
      out[key] = value;
      continue;
    }
    switch (key) {
      case '$schema':
        if (value !== 'http://json-schema.org/draft-04/schema#')
          throw new Error(`${where}: not draft 4: ${String(value)}`);
        out.schema = JsonSchemaVersion.DRAFT4;
        break;
      case 'id':
        out.id = value;
        break;
      case '$ref':
        out.ref = value;
        break;
      case 'type': {
        const types = Array.isArray(value) ? value : [value];
        for (const t of types) if (typeof t !== 'string' || !TYPES.has(t)) throw new Error(`${where}: ${String(t)}`);
        out.type = value as JsonSchemaType | JsonSchemaType[];
        break;
      }
      case 'items':
        out.items = Array.isArray(value) ? value.map((v, i) => convert(v, `${where}[${i}]`)) : convert(value, where);
        break;
      case 'additionalItems':
      case 'additionalProperties':
        out[key] = sub(value, where);
        break;
      case 'properties':
      case 'patternProperties':
      case 'definitions':
        out[key] = subMap(value, where);
        break;
      case 'allOf':
      case 'anyOf':
      case 'oneOf':
        if (!Array.isArray(value)) throw new Error(`${where}: expected an array`);
        out[key] = value.map((v, i) => convert(v, `${where}[${i}]`));
        break;
      case 'not':
        out.not = convert(value, where);
        break;
      default:
        throw new Error(`JSON schema at ${where}: keyword "${key}" has no API Gateway (draft 4) mapping`);
    }
  }
  return out as JsonSchema;
}

/** A draft-4 JSON Schema document as the API Gateway model construct takes it; unknown keywords throw. */
export function apiGatewaySchemaFromJson(json: unknown): JsonSchema {
  return convert(json, '$');
}

/** The API Gateway model schema of a zod schema (draft 4, as API Gateway validates; the input side of the schema). */
export function apiGatewaySchema(schema: z.ZodType): JsonSchema {
  return apiGatewaySchemaFromJson(z.toJSONSchema(schema, { target: 'draft-04', io: 'input' }));
}
