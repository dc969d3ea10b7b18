import { Match } from 'aws-cdk-lib/assertions';
import { actionsOf, buildCertflowApp, CertflowApp, resourcesOf, Statement } from './certflow-app';

type Suppression = { id: string; reason: string; is_reason_encoded?: boolean; applies_to?: unknown[] };

let built: CertflowApp;
beforeAll(() => {
  // no rule of the AwsSolutions pack reads the function bundles: skip bundling (bulk-issuance.test.ts bundles)
  built = buildCertflowApp({ bundle: false });
});

const suppressions = (): { resource: string; rule: Suppression }[] =>
  Object.entries(
    built.template.toJSON().Resources as Record<
      string,
      { Metadata?: { cdk_nag?: { rules_to_suppress: Suppression[] } } }
    >,
  ).flatMap(([resource, r]) => (r.Metadata?.cdk_nag?.rules_to_suppress ?? []).map((rule) => ({ resource, rule })));

describe('cdk-nag AwsSolutions', () => {
  it('reports no error', () => {
    const errors = built.annotations.findError('*', Match.stringLikeRegexp('AwsSolutions-.*'));
    expect(errors.map((e) => `${e.id}: ${String(e.entry.data)}`)).toEqual([]);
  });

  it('reports no warning', () => {
    const warnings = built.annotations.findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*'));
    expect(warnings.map((e) => `${e.id}: ${String(e.entry.data)}`)).toEqual([]);
  });

  it('has every suppression carry a reason', () => {
    const all = suppressions();
    expect(all.length).toBeGreaterThan(0);
    for (const { resource, rule } of all) {
      const reason = rule.is_reason_encoded ? Buffer.from(rule.reason, 'base64').toString() : rule.reason;
      expect({ resource, id: rule.id, reason: reason.trim().length >= 40 }).toEqual({
        resource,
        id: rule.id,
        reason: true,
      });
    }
  });

  it('suppresses only the rules it has a reason for', () => {
    const ids = new Set(suppressions().map((s) => s.rule.id));
    expect([...ids].sort()).toEqual([
      'AwsSolutions-APIG3',
      'AwsSolutions-COG4',
      'AwsSolutions-IAM4',
      'AwsSolutions-IAM5',
      'AwsSolutions-L1',
      'AwsSolutions-SF1',
      'AwsSolutions-SQS3',
    ]);
  });

  it('suppresses IAM5 only with appliesTo, never for a whole resource', () => {
    for (const { rule } of suppressions().filter((s) => s.rule.id === 'AwsSolutions-IAM5')) {
      expect(rule.applies_to?.length).toBeGreaterThan(0);
    }
  });

  it('grants Resource "*" only to actions without resource-level permissions (X-Ray, log delivery, RegisterThing)', () => {
    // iot:RegisterThing has no resource type in the IAM service authorization reference (provisioning)
    const allowed =
      /^(iot:RegisterThing|xray:(PutTraceSegments|PutTelemetryRecords|GetSamplingRules|GetSamplingTargets)|logs:(CreateLogDelivery|GetLogDelivery|UpdateLogDelivery|DeleteLogDelivery|ListLogDeliveries|PutResourcePolicy|DescribeResourcePolicies|DescribeLogGroups))$/;
    const policies = built.template.findResources('AWS::IAM::Policy') as Record<
      string,
      { Properties: { PolicyDocument: { Statement: Statement[] } } }
    >;
    const starActions = Object.values(policies)
      .flatMap((p) => p.Properties.PolicyDocument.Statement)
      .filter((s) => resourcesOf(s).includes('*'))
      .flatMap(actionsOf);
    expect(starActions.length).toBeGreaterThan(0);
    expect(starActions.filter((a) => !allowed.test(a))).toEqual([]);
  });
});
