import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { z } from 'zod';
import { EVENT_SCHEMAS, eventJsonSchema, eventSchemaName, type DetailType } from '../../lambdas/core/events';
import { CertflowEventSchemas } from '../../lib/constructs/event-schemas';
import { exampleEvent } from '../helpers/events';
import { buildCertflowApp, CertflowApp } from './certflow-app';

type Resource = { Type: string; Properties: Record<string, unknown> };

let built: CertflowApp;
let resources: Record<string, Resource>;
beforeAll(() => {
  built = buildCertflowApp({ bundle: false });
  resources = built.template.toJSON().Resources as typeof resources;
});
const ofType = (type: string) => Object.values(resources).filter((r) => r.Type === type);

describe('CertflowEventSchemas', () => {
  it('makes one registry, named like the event bus', () => {
    const registries = ofType('AWS::EventSchemas::Registry');
    expect(registries).toHaveLength(1);
    expect(registries[0]!.Properties.RegistryName).toBe('certflow');
    built.template.hasOutput('EventSchemaRegistryName', {
      Value: { 'Fn::GetAtt': [built.stack.getLogicalId(built.stack.eventSchemas.registry), 'RegistryName'] },
    });
  });

  it('registers every event of the contract once, as JSON Schema draft 4 generated from its zod schema', () => {
    const schemas = ofType('AWS::EventSchemas::Schema');
    const registry = built.stack.getLogicalId(built.stack.eventSchemas.registry);
    expect(schemas.map((s) => s.Properties.SchemaName).sort()).toEqual(
      (Object.keys(EVENT_SCHEMAS) as DetailType[]).map(eventSchemaName).sort(),
    );
    for (const detailType of Object.keys(EVENT_SCHEMAS) as DetailType[]) {
      const schema = schemas.find((s) => s.Properties.SchemaName === eventSchemaName(detailType))!;
      expect(schema.Properties).toMatchObject({
        RegistryName: { 'Fn::GetAtt': [registry, 'RegistryName'] },
        Type: 'JSONSchemaDraft4',
        Description: EVENT_SCHEMAS[detailType].description,
      });
      const content = JSON.parse(schema.Properties.Content as string) as Record<string, unknown>;
      expect(content).toEqual(eventJsonSchema(detailType, 'draft-04'));
      expect(content.$schema).toBe('http://json-schema.org/draft-04/schema#');
    }
  });

  it.each(Object.keys(EVENT_SCHEMAS))('the registered %s schema accepts its example event and refuses others', (t) => {
    const detailType = t as DetailType;
    const schema = ofType('AWS::EventSchemas::Schema').find(
      (s) => s.Properties.SchemaName === eventSchemaName(detailType),
    )!;
    const validator = z.fromJSONSchema(JSON.parse(schema.Properties.Content as string) as never);
    const event = exampleEvent(detailType);
    expect(validator.safeParse(event).success).toBe(true);
    expect(validator.safeParse({ ...event, source: 'other' }).success).toBe(false);
    expect(validator.safeParse({ ...event, detail: { ...event.detail, privateKeyPem: 'x' } }).success).toBe(false);
  });

  it('follows eventBusName, or takes its own registry name', () => {
    // the stack names the registry after the configured bus (a second synth of the stack is not worth its time)
    expect(built.stack.eventSchemas.registry.registryName).toBe(built.stack.config.eventBusName);
    const stack = new Stack(new App(), 'Alone');
    new CertflowEventSchemas(stack, 'Schemas', { registryName: 'my-registry' });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::EventSchemas::Registry', { RegistryName: 'my-registry' });
    template.resourceCountIs('AWS::EventSchemas::Schema', Object.keys(EVENT_SCHEMAS).length);
  });
});
