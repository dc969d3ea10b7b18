import { CfnRegistry, CfnSchema } from 'aws-cdk-lib/aws-eventschemas';
import { Construct } from 'constructs';
import {
  EVENT_SCHEMAS,
  EVENT_SOURCE,
  eventJsonSchema,
  eventSchemaName,
  type DetailType,
} from '../../lambdas/core/events';
import { apiGatewaySchemaFromJson } from '../json-schema';

export interface CertflowEventSchemasProps {
  /** the registry's name, default `certflow` (the stack uses the event bus name) */
  readonly registryName?: string;
}

/**
 * An EventBridge schema registry with one schema per certflow event (`certflow@CertificateIssued` …): the whole
 * event as subscribers receive it, in JSON Schema draft 4, generated from the same zod schemas that validate every
 * event certflow sends (lambdas/core/events.ts) — the ones docs/events/ publishes in draft 2020-12. Code bindings
 * can be downloaded from the registry.
 */
export class CertflowEventSchemas extends Construct {
  readonly registry: CfnRegistry;
  readonly schemas: Readonly<Record<DetailType, CfnSchema>>;

  constructor(scope: Construct, id: string, props: CertflowEventSchemasProps = {}) {
    super(scope, id);
    this.registry = new CfnRegistry(this, 'Registry', {
      registryName: props.registryName ?? EVENT_SOURCE,
      description: `certflow events (source ${EVENT_SOURCE}), generated from the code's event contracts`,
    });
    const schemas: Partial<Record<DetailType, CfnSchema>> = {};
    for (const detailType of Object.keys(EVENT_SCHEMAS) as DetailType[]) {
      const content = eventJsonSchema(detailType, 'draft-04');
      // the registry takes draft 4 only: a keyword outside it fails the synth (the same strict mapping the API's
      // request models use)
      apiGatewaySchemaFromJson(content);
      schemas[detailType] = new CfnSchema(this, detailType.replace(/ /g, ''), {
        registryName: this.registry.attrRegistryName,
        schemaName: eventSchemaName(detailType),
        type: 'JSONSchemaDraft4',
        content: JSON.stringify(content),
        description: EVENT_SCHEMAS[detailType].description ?? detailType,
      });
    }
    this.schemas = schemas as Record<DetailType, CfnSchema>;
  }
}
