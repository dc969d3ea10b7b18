import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { loadDeployConfig, parseDeployConfig } from '../../lib/config';
import { BatchBucket } from '../../lib/constructs/batch-bucket';
import { BulkIssuance } from '../../lib/constructs/bulk-issuance';
import { CertflowEventBus } from '../../lib/constructs/event-bus';
import { TaskTable } from '../../lib/constructs/task-table';
import { apiGatewaySchemaFromJson } from '../../lib/json-schema';
import { actionsOf, buildCertflowApp, CertflowApp, logicalId, statementsOfRole } from './certflow-app';

const KEY_ARN = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';

describe('parseDeployConfig', () => {
  it('fills the defaults', () => {
    expect(parseDeployConfig({})).toEqual({
      suppliers: {},
      chunkSize: 1000,
      maxConcurrency: 100,
      maxQuantity: 1_000_000,
      apiRates: {},
      pcaCertificatesPerCa: 1_000_000,
      lifecycleDays: 30,
      caKeyStore: 'ssm',
      caKmsKeyArns: [],
      eventBusName: 'certflow',
      eventArchiveDays: 90,
      provisioningCaAliases: {},
      provisioningChunkSize: 100,
      provisioningPcaAliases: {},
      rotationThingGroupName: 'cdfRotateCertificates',
      createRotationThingGroup: true,
      crlValidityHours: 24,
      expirySweepHours: 24,
      expiryWindowDays: 30,
      rotationTopicPrefix: 'cdf/certificates',
      rotationValidityDays: 1095,
      rotatedCertificatePolicyName: 'certflow-rotation-device',
      deletePreviousCertificate: false,
      rotationRequireRegisteredThing: true,
      rotationRegisterWithCa: true,
      certificateProvider: { enabled: false, validityDays: 365, name: 'certflow' },
    });
  });

  it('ok/rotation: takes the rotation options, as command-line strings too', () => {
    expect(
      parseDeployConfig({
        rotationTopicPrefix: 'acme/rotation',
        rotationCa: JSON.stringify({ type: 'certflow', caId: 'ab'.repeat(32) }),
        rotationValidityDays: '365',
        rotatedCertificatePolicyName: 'acme-device',
        deletePreviousCertificate: 'true',
        rotationRequireRegisteredThing: 'false',
      }),
    ).toMatchObject({
      rotationTopicPrefix: 'acme/rotation',
      rotationCa: { type: 'certflow', caId: 'ab'.repeat(32) },
      rotationValidityDays: 365,
      rotatedCertificatePolicyName: 'acme-device',
      deletePreviousCertificate: true,
      rotationRequireRegisteredThing: false,
    });
  });

  it('ok/strings: takes command-line strings (numbers, JSON objects and arrays)', () => {
    const config = parseDeployConfig({
      chunkSize: '250',
      suppliers: '{"acme":{"type":"certflow","caId":"acme-ca"}}',
      caKeyStore: 'kms',
      caKmsKeyArns: `["${KEY_ARN}"]`,
      createRotationThingGroup: 'false',
      crlValidityHours: '6',
      expirySweepHours: '12',
      expiryWindowDays: '45',
      apiRates: '{"iot:RegisterCertificate":100,"acm-pca:IssueCertificate":50}',
    });
    expect(config).toMatchObject({
      apiRates: { 'iot:RegisterCertificate': 100, 'acm-pca:IssueCertificate': 50 },
      chunkSize: 250,
      suppliers: { acme: { type: 'certflow', caId: 'acme-ca' } },
      caKmsKeyArns: [KEY_ARN],
      createRotationThingGroup: false,
      crlValidityHours: 6,
      expirySweepHours: 12,
      expiryWindowDays: 45,
    });
  });

  it.each([
    ['error/kms without keys', { caKeyStore: 'kms' }, /caKmsKeyArns/],
    ['error/chunk size', { chunkSize: 0 }, /chunkSize/],
    ['error/concurrency above the Distributed Map limit', { maxConcurrency: 20_000 }, /maxConcurrency/],
    ['error/supplier CA', { suppliers: { acme: { type: 'certflow', caId: 'a b' } } }, /suppliers/],
    ['error/unknown key', { chunksize: 10 }, /chunksize/],
    ['error/unknown paced API', { apiRates: { 'iot:Publish': 10 } }, /apiRates/],
    ['error/rate not positive', { apiRates: { 'kms:Sign': 0 } }, /apiRates\.kms:Sign/],
    ['error/thing group name', { rotationThingGroupName: 'rotate now' }, /rotationThingGroupName/],
    ['error/CRL validity', { crlValidityHours: 0 }, /crlValidityHours/],
    ['error/create flag', { createRotationThingGroup: 'maybe' }, /createRotationThingGroup/],
    ['error/sweep interval', { expirySweepHours: 0 }, /expirySweepHours/],
    ['error/sweep interval above a week', { expirySweepHours: 169 }, /expirySweepHours/],
    ['error/sweep interval not whole', { expirySweepHours: 1.5 }, /expirySweepHours/],
    ['error/expiry window', { expiryWindowDays: 0 }, /expiryWindowDays/],
    ['error/expiry window above ten years', { expiryWindowDays: 3651 }, /expiryWindowDays/],
    ['error/rotation prefix with a wildcard', { rotationTopicPrefix: 'cdf/+' }, /rotationTopicPrefix/],
    ['error/rotation prefix with a trailing slash', { rotationTopicPrefix: 'cdf/' }, /rotationTopicPrefix/],
    ['error/rotation validity', { rotationValidityDays: 0 }, /rotationValidityDays/],
    ['error/rotation policy name', { rotatedCertificatePolicyName: 'a policy' }, /rotatedCertificatePolicyName/],
    [
      'error/rotation CA and PCA both',
      {
        rotationCa: {
          type: 'certflow',
          caId: 'ab'.repeat(32),
          arn: 'arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/11111111-2222-3333-4444-555555555555',
        },
      },
      /rotationCa/,
    ],
    [
      'error/rotation CA of AWS IoT',
      { rotationCa: { type: 'aws-iot' } },
      /rotationCa: CSRs are signed by a certflow CA/,
    ],
    ['error/rotation PCA ARN', { rotationCa: { type: 'acm-pca', arn: 'arn:aws:acm-pca:nope' } }, /rotationCa/],
  ])('%s', (_, input, message) => {
    expect(() => parseDeployConfig(input)).toThrow(message);
  });
});

describe('loadDeployConfig', () => {
  it('reads the certflow context object, then certflow:<key> overrides', () => {
    const app = new App({ context: { certflow: { chunkSize: 500, lifecycleDays: 7 }, 'certflow:chunkSize': '200' } });
    expect(loadDeployConfig(app.node)).toMatchObject({ chunkSize: 200, lifecycleDays: 7 });
  });
});

describe('apiGatewaySchemaFromJson', () => {
  it('refuses a keyword it has no mapping for, rather than dropping it', () => {
    expect(() => apiGatewaySchemaFromJson({ type: 'object', if: { type: 'object' } })).toThrow(/"if"/);
  });
});

describe('CertflowStack with KMS CA keys and custom settings', () => {
  let built: CertflowApp;
  beforeAll(() => {
    built = buildCertflowApp({
      bundle: false,
      config: {
        caKeyStore: 'kms',
        caKmsKeyArns: [KEY_ARN],
        chunkSize: 250,
        maxConcurrency: 40,
        lifecycleDays: 7,
        rotationThingGroupName: 'fleetRotation',
        createRotationThingGroup: false,
        crlValidityHours: 12,
        expirySweepHours: 6,
        expiryWindowDays: 14,
        apiRates: { 'kms:Sign': 1000, 'iot:RegisterCertificate': 50 },
        pcaCertificatesPerCa: 2_000_000,
      },
    });
  });

  it('uses an existing rotation thing group by name, without owning it', () => {
    built.template.resourceCountIs('AWS::IoT::ThingGroup', 0);
    built.template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ ROTATION_THING_GROUP: 'fleetRotation', CRL_VALIDITY_HOURS: '12' }) },
    });
    const statements = statementsOfRole(built.template, logicalId(built.stack.api.handler.role));
    const add = statements.find((s) => actionsOf(s).includes('iot:AddThingToThingGroup'))!;
    expect(JSON.stringify(add.Resource)).toContain(':thinggroup/fleetRotation');
  });

  it('grants kms:Sign and kms:GetPublicKey on the configured keys only, and no SecureString decryption', () => {
    const statements = statementsOfRole(built.template, logicalId(built.stack.bulkIssuance.issueChunk.role));
    const kms = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('kms:')));
    expect(kms).toHaveLength(1);
    expect(actionsOf(kms[0]!).sort()).toEqual(['kms:GetPublicKey', 'kms:Sign']);
    expect(kms[0]!.Resource).toBe(KEY_ARN);
    const ssm = statements.find((s) => actionsOf(s).includes('ssm:GetParameter'))!;
    expect(JSON.stringify(ssm.Resource)).toContain(':parameter/cdf-ca-kms-key-*');
    expect(JSON.stringify(ssm.Resource)).not.toContain(':parameter/cdf-ca-key-*');
  });

  it('passes the settings to the functions and the bucket', () => {
    built.template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ CA_KEY_STORE: 'kms', CHUNK_SIZE: '250', MAX_CONCURRENCY: '40' }) },
    });
    // the quotas to pace to, the chunk budget (2/3 of IssueChunk's 60 s) and the ACM PCA capacity
    built.template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          API_RATES: JSON.stringify({ 'iot:RegisterCertificate': 50, 'kms:Sign': 1000 }),
          CHUNK_BUDGET_SECONDS: '40',
          PCA_CERTIFICATES_PER_CA: '2000000',
        }),
      },
    });
    built.template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: {
        Rules: Match.arrayWith([Match.objectLike({ ExpirationInDays: 7, Prefix: 'batches/' })]),
      },
    });
  });

  it('schedules the expiry sweep every expirySweepHours with the expiryWindowDays window', () => {
    const { expirySweep } = built.stack;
    const resources = built.template.toJSON().Resources as Record<string, { Properties: Record<string, unknown> }>;
    const rule = resources[logicalId(expirySweep.rule)]!.Properties;
    expect(rule.ScheduleExpression).toBe('rate(6 hours)');
    const [target] = rule.Targets as { Arn: unknown; Input: string }[];
    expect(target!.Arn).toEqual({ Ref: logicalId(expirySweep.stateMachine) });
    expect(JSON.parse(target!.Input)).toEqual({ windowDays: 14 });
    const env = resources[logicalId(expirySweep.sweep.function)]!.Properties.Environment as {
      Variables: Record<string, unknown>;
    };
    expect(env.Variables.EXPIRY_WINDOW_DAYS).toBe('14');
  });

  it('stays clean under cdk-nag', () => {
    const findings = [
      ...built.annotations.findError('*', Match.stringLikeRegexp('AwsSolutions-.*')),
      ...built.annotations.findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*')),
    ];
    expect(findings.map((f) => f.id)).toEqual([]);
  });
});

describe('BulkIssuance with suppliers signed outside certflow', () => {
  it('grants ACM PCA calls on the configured CA only, and CreateKeysAndCertificate for AwsIotDefault', () => {
    const stack = new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Test');
    const pca = 'arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/11111111-2222-3333-4444-555555555555';
    new BulkIssuance(stack, 'Bulk', {
      table: new TaskTable(stack, 'Tasks'),
      bucket: new BatchBucket(stack, 'Batches'),
      bus: new CertflowEventBus(stack, 'Events'),
      suppliers: { legacy: { type: 'aws-iot' }, factory: { type: 'acm-pca', arn: pca } },
    });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: ['acm-pca:IssueCertificate', 'acm-pca:GetCertificate', 'acm-pca:DescribeCertificateAuthority'],
            Resource: pca,
          }),
          Match.objectLike({ Action: 'iot:CreateKeysAndCertificate', Resource: '*' }),
        ]),
      },
    });
  });
});
