import { InvalidTemplateError } from '../../../lambdas/core/errors';
import { parseCdfSection } from '../../../lambdas/core/provisioning/cdf';
import { instantiate, parseTemplate, type ResolvedResource } from '../../../lambdas/core/provisioning/template';

/** AWS's own example template (fleet provisioning docs), with certflow's additions where noted. */
const base = () => ({
  Parameters: {
    ThingName: { Type: 'String' },
    SerialNumber: { Type: 'String' },
    Location: { Type: 'String', Default: 'WA' },
    CSR: { Type: 'String' },
  },
  Resources: {
    thing: {
      Type: 'AWS::IoT::Thing',
      Properties: {
        ThingName: { Ref: 'ThingName' },
        AttributePayload: { version: 'v1', serialNumber: { Ref: 'SerialNumber' } },
        ThingTypeName: 'lightBulb-versionA',
        ThingGroups: ['v1-lightbulbs', { Ref: 'Location' }],
      },
      OverrideSettings: { AttributePayload: 'MERGE', ThingTypeName: 'REPLACE', ThingGroups: 'DO_NOTHING' },
    },
    certificate: {
      Type: 'AWS::IoT::Certificate',
      Properties: { CertificateSigningRequest: { Ref: 'CSR' }, Status: 'ACTIVE' },
    },
    policy: {
      Type: 'AWS::IoT::Policy',
      Properties: {
        PolicyDocument:
          '{ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action":["iot:Publish"], "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/foo/bar"] }] }',
      },
    },
  },
});

const params = { ThingName: 'bulb-1', SerialNumber: '123', CSR: '-----BEGIN CERTIFICATE REQUEST-----' };

/** Resolves every resource in order, giving each a made-up physical id. */
function resolveAll(body: unknown, parameters: Record<string, unknown>): ResolvedResource[] {
  const instance = instantiate(parseTemplate(body), parameters);
  const ids: Record<string, string> = {};
  return instance.order.map((id) => {
    const r = instance.resolve(id, ids);
    ids[id] =
      r.type === 'AWS::IoT::Thing'
        ? r.thingName
        : r.type === 'AWS::IoT::Policy'
          ? (r.policyName ?? id)
          : 'a'.repeat(64);
    return r;
  });
}

function faultOf(fn: () => unknown): { code: string; path: unknown; message: string } {
  try {
    fn();
  } catch (e) {
    if (e instanceof InvalidTemplateError) return { code: e.code, path: e.details?.path, message: e.message };
    throw e;
  }
  throw new Error('expected an InvalidTemplateError');
}

type Resources = ReturnType<typeof base>['Resources'];
const withThing = (props: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  ...base(),
  ...extra,
  Resources: { ...base().Resources, thing: { Type: 'AWS::IoT::Thing', Properties: props } } as unknown as Resources,
});

describe('parseTemplate and instantiate', () => {
  describe('ok', () => {
    it('ok/aws-example: resolves AWS documentation template with defaults', () => {
      const [thing, cert, policy] = resolveAll(base(), params);
      expect(thing).toEqual({
        type: 'AWS::IoT::Thing',
        logicalId: 'thing',
        thingName: 'bulb-1',
        thingTypeName: 'lightBulb-versionA',
        attributes: { version: 'v1', serialNumber: '123' },
        thingGroups: ['v1-lightbulbs', 'WA'],
        overrideSettings: { AttributePayload: 'MERGE', ThingTypeName: 'REPLACE', ThingGroups: 'DO_NOTHING' },
      });
      expect(cert).toMatchObject({ source: { kind: 'csr', csr: params.CSR }, status: 'ACTIVE' });
      expect(policy).toMatchObject({
        type: 'AWS::IoT::Policy',
        policyDocument: expect.stringContaining('iot:Publish'),
      });
      expect(parseTemplate(base()).certflowOnly).toEqual([]);
    });

    const cases: [string, Record<string, unknown>, Record<string, unknown>, Record<string, unknown>, string][] = [
      ['ok/fn-join', { ThingName: { 'Fn::Join': ['-', ['bulb', { Ref: 'SerialNumber' }]] } }, {}, {}, 'bulb-123'],
      ['ok/fn-sub-string', { ThingName: { 'Fn::Sub': 'bulb-${SerialNumber}-${Location}' } }, {}, {}, 'bulb-123-WA'],
      [
        'ok/fn-sub-variables',
        { ThingName: { 'Fn::Sub': ['${Prefix}-${SerialNumber}', { Prefix: { Ref: 'Location' } }] } },
        {},
        {},
        'WA-123',
      ],
      ['ok/fn-sub-escape', { ThingName: 'x', AttributePayload: { a: { 'Fn::Sub': 'k${!Literal}' } } }, {}, {}, 'x'],
      [
        'ok/fn-split-select',
        { ThingName: { 'Fn::Select': [1, { 'Fn::Split': [':', 'a:bulb-7:c'] }] } },
        {},
        {},
        'bulb-7',
      ],
      ['ok/fn-select-string-index', { ThingName: { 'Fn::Select': ['0', ['first', 'second']] } }, {}, {}, 'first'],
      [
        'ok/fn-find-in-map',
        { ThingName: { 'Fn::FindInMap': ['Names', { Ref: 'Location' }, 'prefix'] } },
        { Mappings: { Names: { WA: { prefix: 'seattle' }, OR: { prefix: 'portland' } } } },
        {},
        'seattle',
      ],
      [
        'ok/fn-if-true',
        { ThingName: { 'Fn::If': ['InWA', 'wa-thing', 'other-thing'] } },
        { Conditions: { InWA: { 'Fn::Equals': [{ Ref: 'Location' }, 'WA'] } } },
        {},
        'wa-thing',
      ],
      [
        'ok/fn-if-false-with-and-or-not-condition',
        { ThingName: { 'Fn::If': ['Complex', 'yes', 'no'] } },
        {
          Conditions: {
            InWA: { 'Fn::Equals': [{ Ref: 'Location' }, 'WA'] },
            Serial9: { 'Fn::Equals': [{ Ref: 'SerialNumber' }, '9'] },
            Complex: {
              'Fn::And': [
                { Condition: 'InWA' },
                { 'Fn::Or': [{ Condition: 'Serial9' }, { 'Fn::Not': [{ Condition: 'InWA' }] }] },
              ],
            },
          },
        },
        {},
        'no',
      ],
      ['ok/parameter-given-overrides-default', { ThingName: { Ref: 'Location' } }, {}, { Location: 'OR' }, 'OR'],
    ];
    it.each(cases)('%s', (_name, props, extra, more, thingName) => {
      const [thing] = resolveAll(withThing(props, extra), { ...params, ...more });
      expect(thing).toMatchObject({ type: 'AWS::IoT::Thing', thingName });
    });

    it('ok/fn-sub-escape keeps ${Literal} text', () => {
      const [thing] = resolveAll(
        withThing({ ThingName: 'x', AttributePayload: { a: { 'Fn::Sub': 'k${!Literal}' } } }),
        params,
      );
      expect(thing).toMatchObject({ attributes: { a: 'k${Literal}' } });
    });

    it('ok/no-value: Fn::If with AWS::NoValue removes the property', () => {
      const [thing] = resolveAll(
        withThing(
          { ThingName: 'x', ThingTypeName: { 'Fn::If': ['Never', 'type', { Ref: 'AWS::NoValue' }] } },
          { Conditions: { Never: { 'Fn::Equals': ['a', 'b'] } } },
        ),
        params,
      );
      expect(thing).not.toHaveProperty('thingTypeName');
    });

    it('ok/resource-condition: a resource whose Condition is false is not provisioned', () => {
      const body = base() as Record<string, unknown> & { Resources: Record<string, Record<string, unknown>> };
      body.Conditions = { WithPolicy: { 'Fn::Equals': [{ Ref: 'Location' }, 'OR'] } };
      body.Resources.policy!.Condition = 'WithPolicy';
      expect(instantiate(parseTemplate(body), params).order).toEqual(['thing', 'certificate']);
      expect(instantiate(parseTemplate(body), { ...params, Location: 'OR' }).order).toEqual([
        'thing',
        'certificate',
        'policy',
      ]);
    });

    it('ok/dependency-order: a resource referring to another comes after it and gets its physical id', () => {
      const body = {
        Parameters: { CertificatePem: { Type: 'String' } },
        Resources: {
          policy: {
            Type: 'AWS::IoT::Policy',
            Properties: {
              PolicyName: { 'Fn::Sub': 'p-${thing}' },
              PolicyDocument: { Version: '2012-10-17', Statement: [] },
            },
          },
          thing: { Type: 'AWS::IoT::Thing', Properties: { ThingName: { 'Fn::Join': ['', ['t-', { Ref: 'cert' }]] } } },
          cert: { Type: 'AWS::IoT::Certificate', Properties: { CertificatePem: { Ref: 'CertificatePem' } } },
        },
      };
      const template = parseTemplate(body);
      expect(template.order).toEqual(['cert', 'thing', 'policy']);
      expect(template.certflowOnly).toHaveLength(2);
      const [, thing, policy] = resolveAll(body, { CertificatePem: 'PEM' });
      expect(thing).toMatchObject({ thingName: `t-${'a'.repeat(64)}` });
      expect(policy).toMatchObject({
        policyName: `p-t-${'a'.repeat(64)}`,
        policyDocument: '{"Version":"2012-10-17","Statement":[]}',
      });
    });

    it('ok/typed-parameters: Number and CommaDelimitedList', () => {
      const [thing] = resolveAll(
        withThing(
          { ThingName: 'x', ThingGroups: { Ref: 'Groups' }, AttributePayload: { n: { Ref: 'Count' } } },
          {
            Parameters: {
              ...base().Parameters,
              Count: { Type: 'Number', Default: 3 },
              Groups: { Type: 'CommaDelimitedList' },
            },
          },
        ),
        { ...params, Groups: 'a, b' },
      );
      expect(thing).toMatchObject({ thingGroups: ['a', 'b'], attributes: { n: '3' } });
    });
  });

  describe('error', () => {
    const cases: [string, () => unknown, string, string][] = [
      [
        'error/unknown-resource-type',
        () => parseTemplate({ Resources: { thing: { Type: 'AWS::IoT::Widget', Properties: {} } } }),
        'UNKNOWN_RESOURCE_TYPE',
        'Resources.thing.Type',
      ],
      [
        'error/missing-parameter',
        () => instantiate(parseTemplate(base()), { ThingName: 'x', CSR: 'y' }),
        'MISSING_PARAMETER',
        'Parameters.SerialNumber',
      ],
      [
        'error/reference-cycle',
        () =>
          parseTemplate({
            Resources: {
              thing: { Type: 'AWS::IoT::Thing', Properties: { ThingName: { Ref: 'policy' } } },
              policy: {
                Type: 'AWS::IoT::Policy',
                Properties: { PolicyName: { 'Fn::Join': ['-', [{ Ref: 'thing' }]] } },
              },
            },
          }),
        'REFERENCE_CYCLE',
        'Resources.policy.Properties.PolicyName.Fn::Join[1][0].Ref',
      ],
      [
        'error/self-reference',
        () =>
          parseTemplate({
            Resources: { thing: { Type: 'AWS::IoT::Thing', Properties: { ThingName: { Ref: 'thing' } } } },
          }),
        'REFERENCE_CYCLE',
        'Resources.thing.Properties.ThingName.Ref',
      ],
      [
        'error/condition-cycle',
        () =>
          parseTemplate({
            Conditions: {
              A: { 'Fn::Not': [{ Condition: 'B' }] },
              B: { 'Fn::And': [{ Condition: 'A' }, { Condition: 'A' }] },
            },
            Resources: { thing: { Type: 'AWS::IoT::Thing', Properties: { ThingName: 'x' } } },
          }),
        'REFERENCE_CYCLE',
        'Conditions.B.Fn::And[0].Condition',
      ],
      [
        'error/unknown-intrinsic',
        () => parseTemplate(withThing({ ThingName: { 'Fn::Base64': 'x' } })),
        'BAD_INTRINSIC',
        'Resources.thing.Properties.ThingName.Fn::Base64',
      ],
      [
        'error/bad-join-arity',
        () => parseTemplate(withThing({ ThingName: { 'Fn::Join': ['-'] } })),
        'BAD_INTRINSIC',
        'Resources.thing.Properties.ThingName.Fn::Join',
      ],
      [
        'error/intrinsic-with-extra-keys',
        () => parseTemplate(withThing({ ThingName: { Ref: 'ThingName', extra: 1 } })),
        'BAD_INTRINSIC',
        'Resources.thing.Properties.ThingName.Ref',
      ],
      [
        'error/unknown-reference',
        () => parseTemplate(withThing({ ThingName: { Ref: 'Nope' } })),
        'UNKNOWN_REFERENCE',
        'Resources.thing.Properties.ThingName.Ref',
      ],
      [
        'error/unknown-sub-variable',
        () => parseTemplate(withThing({ ThingName: { 'Fn::Sub': 'a-${Nope}' } })),
        'UNKNOWN_REFERENCE',
        'Resources.thing.Properties.ThingName.Fn::Sub',
      ],
      [
        'error/unknown-mapping',
        () => parseTemplate(withThing({ ThingName: { 'Fn::FindInMap': ['Nope', 'a', 'b'] } })),
        'UNKNOWN_MAPPING',
        'Resources.thing.Properties.ThingName.Fn::FindInMap[0]',
      ],
      [
        'error/mapping-key-not-found',
        () =>
          resolveAll(
            withThing(
              { ThingName: { 'Fn::FindInMap': ['M', { Ref: 'Location' }, 'k'] } },
              { Mappings: { M: { OR: { k: 'v' } } } },
            ),
            params,
          ),
        'MAPPING_KEY_NOT_FOUND',
        'Resources.thing.Properties.ThingName.Fn::FindInMap[1]',
      ],
      [
        'error/unknown-condition-in-if',
        () => parseTemplate(withThing({ ThingName: { 'Fn::If': ['Nope', 'a', 'b'] } })),
        'UNKNOWN_CONDITION',
        'Resources.thing.Properties.ThingName.Fn::If[0]',
      ],
      [
        'error/condition-function-outside-conditions',
        () => parseTemplate(withThing({ ThingName: { 'Fn::Equals': ['a', 'a'] } })),
        'BAD_INTRINSIC',
        'Resources.thing.Properties.ThingName.Fn::Equals',
      ],
      [
        'error/condition-refers-to-resource',
        () =>
          parseTemplate({
            ...base(),
            Conditions: { C: { 'Fn::Equals': [{ Ref: 'thing' }, 'x'] } },
          }),
        'BAD_INTRINSIC',
        'Conditions.C.Fn::Equals[0].Ref',
      ],
      [
        'error/select-out-of-range',
        () => resolveAll(withThing({ ThingName: { 'Fn::Select': [5, ['a']] } }), params),
        'BAD_INTRINSIC',
        'Resources.thing.Properties.ThingName.Fn::Select[0]',
      ],
      [
        'error/join-of-a-string',
        () => parseTemplate(withThing({ ThingName: { 'Fn::Join': ['-', 'abc'] } })),
        'BAD_INTRINSIC',
        'Resources.thing.Properties.ThingName.Fn::Join[1]',
      ],
      [
        'error/unknown-property',
        () => parseTemplate(withThing({ ThingName: 'x', Colour: 'red' })),
        'UNKNOWN_PROPERTY',
        'Resources.thing.Properties.Colour',
      ],
      [
        'error/missing-thing-name',
        () => parseTemplate(withThing({ ThingTypeName: 'x' })),
        'MISSING_PROPERTY',
        'Resources.thing.Properties.ThingName',
      ],
      [
        'error/bad-thing-name-value',
        () => resolveAll(withThing({ ThingName: 'has space' }), params),
        'INVALID_PROPERTY',
        'Resources.thing.Properties.ThingName',
      ],
      [
        'error/two-things',
        () =>
          parseTemplate({
            Resources: {
              a: { Type: 'AWS::IoT::Thing', Properties: { ThingName: 'a' } },
              b: { Type: 'AWS::IoT::Thing', Properties: { ThingName: 'b' } },
            },
          }),
        'UNSUPPORTED_TEMPLATE',
        'Resources.b',
      ],
      [
        'error/certificate-with-two-sources',
        () =>
          parseTemplate({
            Resources: {
              c: { Type: 'AWS::IoT::Certificate', Properties: { CertificateId: 'x', CertificatePem: 'y' } },
            },
          }),
        'INVALID_RESOURCE',
        'Resources.c.Properties',
      ],
      [
        'error/bad-parameter-type',
        () => parseTemplate({ ...base(), Parameters: { X: { Type: 'Blob' } } }),
        'INVALID_PARAMETER_TYPE',
        'Parameters.X.Type',
      ],
      [
        'error/parameter-not-allowed',
        () =>
          instantiate(
            parseTemplate({
              ...base(),
              Parameters: { ...base().Parameters, Location: { Type: 'String', AllowedValues: ['WA'] } },
            }),
            { ...params, Location: 'OR' },
          ),
        'INVALID_PARAMETER',
        'parameters.Location',
      ],
      [
        'error/number-parameter',
        () =>
          instantiate(parseTemplate({ ...base(), Parameters: { ...base().Parameters, N: { Type: 'Number' } } }), {
            ...params,
            N: 'many',
          }),
        'INVALID_PARAMETER',
        'parameters.N',
      ],
      ['error/unknown-section', () => parseTemplate({ ...base(), Outputs: {} }), 'UNKNOWN_SECTION', 'Outputs'],
      ['error/no-resources', () => parseTemplate({ Resources: {} }), 'INVALID_TEMPLATE', 'Resources'],
      [
        'error/bad-override',
        () =>
          parseTemplate({
            Resources: {
              t: {
                Type: 'AWS::IoT::Thing',
                Properties: { ThingName: 'x' },
                OverrideSettings: { ThingTypeName: 'KEEP' },
              },
            },
          }),
        'INVALID_RESOURCE',
        'Resources.t.OverrideSettings.ThingTypeName',
      ],
      [
        'error/bad-policy-document',
        () =>
          resolveAll(
            { Resources: { p: { Type: 'AWS::IoT::Policy', Properties: { PolicyDocument: 'not json' } } } },
            {},
          ),
        'INVALID_PROPERTY',
        'Resources.p.Properties.PolicyDocument',
      ],
      [
        'error/cdf-unknown-extension',
        () => parseCdfSection(parseTemplate({ ...base(), CDF: { makeCoffee: true } })),
        'INVALID_CDF_EXTENSION',
        'CDF',
      ],
      [
        'error/cdf-acmpca-without-mode',
        () =>
          parseCdfSection(
            parseTemplate({
              ...base(),
              Parameters: { ...base().Parameters, CertificateId: { Type: 'String' } },
              CDF: { useACMPCA: true },
            }),
          ),
        'INVALID_CDF_EXTENSION',
        'CDF.acmpca.mode',
      ],
      [
        'error/cdf-create-certificate-without-parameter',
        () => parseCdfSection(parseTemplate({ ...base(), CDF: { createDeviceCertificate: true } })),
        'INVALID_CDF_EXTENSION',
        'CDF.createDeviceCertificate',
      ],
      [
        'error/cdf-bad-policy-document',
        () =>
          parseCdfSection(
            parseTemplate({ ...base(), CDF: { attachAdditionalPolicies: [{ name: 'p', document: '{' }] } }),
          ),
        'INVALID_CDF_EXTENSION',
        'CDF.attachAdditionalPolicies[0].document',
      ],
    ];
    it.each(cases)('%s', (_name, fn, code, path) => {
      const fault = faultOf(fn);
      expect(fault).toMatchObject({ code, path });
      expect(fault.message.startsWith(`${path}: `)).toBe(true);
    });

    it('error/reference-cycle names the cycle', () => {
      const fault = faultOf(() =>
        parseTemplate({
          Resources: {
            a: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: { Ref: 'b' } } },
            b: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: { Ref: 'c' } } },
            c: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: { Ref: 'a' } } },
          },
        }),
      );
      expect(fault.message).toContain('a → b → c → a');
    });

    it('error/invalid-template answers 400 with code and path in the body', () => {
      let error: unknown;
      try {
        parseTemplate({ Resources: { t: { Type: 'Nope', Properties: {} } } });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InvalidTemplateError);
      expect((error as InvalidTemplateError).status).toBe(400);
      expect((error as InvalidTemplateError).toJSON()).toEqual({
        code: 'UNKNOWN_RESOURCE_TYPE',
        message: expect.stringContaining('Resources.t.Type: unknown resource type "Nope"'),
        details: { path: 'Resources.t.Type' },
      });
    });
  });
});
