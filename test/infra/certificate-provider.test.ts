import { Match } from 'aws-cdk-lib/assertions';
import { parseDeployConfig } from '../../lib/config';
import type { CertificateProvider } from '../../lib/constructs/certificate-provider';
import {
  actionsOf,
  buildCertflowApp,
  type CertflowApp,
  logicalId,
  resourcesOf,
  resourceText,
  statementsOfRole,
} from './certflow-app';

const CA_ID = '9a3f1c0e5b7d2e4f6a8c0b1d3e5f7a9c1b3d5e7f9a1c3e5b7d9f1a3c5e7b9d1f';
const PCA_ARN = 'arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';
const KMS_KEY = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';

type Resource = { Type: string; Properties: Record<string, unknown>; DependsOn?: string[] };

/** The app with the provider enabled for `ca`; bundling skipped (bulk-issuance.test.ts bundles every function). */
const build = (ca: object) =>
  buildCertflowApp({ bundle: false, config: { certificateProvider: { enabled: true, ca, validityDays: 90 } } });

let certflowSsm: CertflowApp;
let certflowKms: CertflowApp;
let pca: CertflowApp;
let off: CertflowApp;
beforeAll(() => {
  certflowSsm = build({ type: 'certflow', caId: CA_ID });
  certflowKms = buildCertflowApp({
    bundle: false,
    config: {
      caKeyStore: 'kms',
      caKmsKeyArns: [KMS_KEY],
      certificateProvider: { enabled: true, ca: { type: 'certflow', caId: CA_ID }, name: 'fleet-signer' },
    },
  });
  pca = build({ type: 'acm-pca', arn: PCA_ARN });
  off = buildCertflowApp({ bundle: false });
});

const providerOf = (built: CertflowApp): CertificateProvider => built.stack.certificateProvider!;
const resourcesOfApp = (built: CertflowApp) => built.template.toJSON().Resources as Record<string, Resource>;
/** The role's statements other than logging and tracing, actions and resources sorted, resources as text. */
const grants = (built: CertflowApp) =>
  statementsOfRole(built.template, logicalId(providerOf(built).function.role))
    .filter((s) => !actionsOf(s).every((a) => /^(logs|xray):/.test(a)))
    .map((s) => ({
      actions: actionsOf(s).sort(),
      resources: resourcesOf(s).map(resourceText).sort(),
      ...(s.Condition ? { condition: s.Condition } : {}),
    }));
const ssmArn = (name: string) => `arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:parameter/${name}`;
const busArn = (built: CertflowApp) => `\${${logicalId(built.stack.bus.bus)}.Arn}`;
const taskTableArn = (built: CertflowApp) => `\${${logicalId(built.stack.table.table)}.Arn}`;
/** DynamoRateLimiter on the shared schedule: GetItem and UpdateItem of the task table's `rate#…` items only. */
const rateSchedule = (built: CertflowApp) => ({
  actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
  resources: [taskTableArn(built)],
  condition: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['rate#*'] } },
});
const caTableArn = (built: CertflowApp) => `\${${logicalId(built.stack.inventory.caTable.table)}.Arn}`;

describe('CertificateProvider', () => {
  it('is not deployed unless enabled (the default): an account has one provider, for its whole fleet', () => {
    expect(off.stack.certificateProvider).toBeUndefined();
    off.template.resourceCountIs('AWS::IoT::CertificateProvider', 0);
    expect(parseDeployConfig({}).certificateProvider).toEqual({ enabled: false, validityDays: 365, name: 'certflow' });
  });

  it('takes over CreateCertificateFromCsr with the signer function', () => {
    const provider = providerOf(certflowSsm);
    certflowSsm.template.resourceCountIs('AWS::IoT::CertificateProvider', 1);
    certflowSsm.template.hasResourceProperties('AWS::IoT::CertificateProvider', {
      CertificateProviderName: 'certflow',
      AccountDefaultForOperations: ['CreateCertificateFromCsr'],
      LambdaFunctionArn: { 'Fn::GetAtt': [logicalId(provider.function.function), 'Arn'] },
    });
    certflowKms.template.hasResourceProperties('AWS::IoT::CertificateProvider', {
      CertificateProviderName: 'fleet-signer',
    });
  });

  it.each([
    ['certflow CA', () => certflowSsm, 'certflow'],
    ['KMS CA', () => certflowKms, 'fleet-signer'],
    ['ACM PCA', () => pca, 'certflow'],
  ])(
    'lets only this provider of this account invoke the function (%s): SourceArn and SourceAccount',
    (_, app, name) => {
      const built = app();
      const provider = providerOf(built);
      const permissions = Object.entries(resourcesOfApp(built)).filter(
        ([, r]) => r.Type === 'AWS::Lambda::Permission' && r.Properties.Principal === 'iot.amazonaws.com',
      );
      expect(permissions).toHaveLength(1);
      const [permissionId, permission] = permissions[0]!;
      expect(permission.Properties).toEqual({
        Action: 'lambda:InvokeFunction',
        FunctionName: { 'Fn::GetAtt': [logicalId(provider.function.function), 'Arn'] },
        Principal: 'iot.amazonaws.com',
        SourceArn: expect.anything(),
        SourceAccount: { Ref: 'AWS::AccountId' },
      });
      expect(resourceText(permission.Properties.SourceArn)).toBe(
        `arn:\${AWS::Partition}:iot:\${AWS::Region}:\${AWS::AccountId}:certificateprovider/${name}`,
      );
      expect(resourceText(permission.Properties.SourceArn)).toBe(
        resourceText(built.stack.resolve(provider.providerArn)),
      );
      // the permission exists before AWS IoT can call the function
      const providerResource = Object.values(resourcesOfApp(built)).find(
        (r) => r.Type === 'AWS::IoT::CertificateProvider',
      )!;
      expect(providerResource.DependsOn).toContain(permissionId);
      // no other principal may invoke it
      const others = Object.values(resourcesOfApp(built)).filter(
        (r) =>
          r.Type === 'AWS::Lambda::Permission' &&
          JSON.stringify(r.Properties.FunctionName).includes(logicalId(provider.function.function)) &&
          r.Properties.Principal !== 'iot.amazonaws.com',
      );
      expect(others).toEqual([]);
    },
  );

  it('runs within AWS IoT\u2019s 5 seconds, with its environment from the config', () => {
    certflowSsm.template.hasResourceProperties('AWS::Lambda::Function', {
      FunctionName: Match.absent(),
      Timeout: 5,
      MemorySize: 1024,
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      Environment: {
        Variables: Match.objectEquals({
          EVENT_BUS_NAME: { Ref: logicalId(certflowSsm.stack.bus.bus) },
          SIGNING_CA: JSON.stringify({ type: 'certflow', caId: CA_ID }),
          CA_KEY_STORE: 'ssm',
          CA_TABLE_NAME: { Ref: logicalId(certflowSsm.stack.inventory.caTable.table) },
          VALIDITY_DAYS: '90',
          RATE_LIMIT_TABLE_NAME: { Ref: logicalId(certflowSsm.stack.table.table) },
          API_RATES: '{}',
          NODE_OPTIONS: '--enable-source-maps',
        }),
      },
    });
    expect(providerOf(pca).environment).toEqual({
      EVENT_BUS_NAME: expect.any(String),
      SIGNING_CA: JSON.stringify({ type: 'acm-pca', arn: PCA_ARN }),
      CA_KEY_STORE: 'ssm',
      VALIDITY_DAYS: '90',
      RATE_LIMIT_TABLE_NAME: expect.any(String),
      API_RATES: '{}',
    });
  });

  it('paces to the deployment\u2019s apiRates on the task table\u2019s shared schedule', () => {
    const built = buildCertflowApp({
      bundle: false,
      config: {
        apiRates: { 'acm-pca:IssueCertificate': 10 },
        certificateProvider: { enabled: true, ca: { type: 'acm-pca', arn: PCA_ARN } },
      },
    });
    const environment = providerOf(built).environment;
    expect(JSON.parse(environment.API_RATES!)).toEqual({ 'acm-pca:IssueCertificate': 10 });
    expect(built.stack.resolve(environment.RATE_LIMIT_TABLE_NAME)).toEqual({ Ref: logicalId(built.stack.table.table) });
    // the rotation and provisioning functions pace on the same items
    expect(built.stack.resolve(environment.RATE_LIMIT_TABLE_NAME)).toEqual(
      built.stack.resolve(built.stack.rotation.environment.RATE_LIMIT_TABLE_NAME),
    );
  });

  it('grants a certflow CA (SSM): its three parameters, its AWS IoT CA certificate, kms:Decrypt via SSM for its key only', () => {
    expect(grants(certflowSsm)).toEqual([
      { actions: ['events:PutEvents'], resources: [busArn(certflowSsm)] },
      rateSchedule(certflowSsm),
      {
        actions: ['ssm:GetParameter'],
        resources: [ssmArn(`cdf-ca-cert-${CA_ID}`), ssmArn(`cdf-ca-chain-${CA_ID}`), ssmArn(`cdf-ca-key-${CA_ID}`)],
      },
      {
        actions: ['iot:DescribeCACertificate'],
        resources: [`arn:\${AWS::Partition}:iot:\${AWS::Region}:\${AWS::AccountId}:cacert/${CA_ID}`],
      },
      {
        actions: ['kms:Decrypt'],
        resources: ['arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*'],
        condition: {
          StringEquals: {
            'kms:ViaService': { 'Fn::Join': ['', ['ssm.', { Ref: 'AWS::Region' }, '.', { Ref: 'AWS::URLSuffix' }]] },
            'kms:EncryptionContext:PARAMETER_ARN': expect.anything(),
          },
        },
      },
      { actions: ['dynamodb:GetItem'], resources: [caTableArn(certflowSsm)] },
    ]);
    const decrypt = grants(certflowSsm)[4]!.condition as { StringEquals: Record<string, unknown> };
    expect(resourceText(decrypt.StringEquals['kms:EncryptionContext:PARAMETER_ARN'])).toBe(
      ssmArn(`cdf-ca-key-${CA_ID}`),
    );
  });

  it('grants a certflow CA (KMS): its key id and chain parameters, its CA certificate, Sign and GetPublicKey on the CA keys', () => {
    expect(grants(certflowKms)).toEqual([
      { actions: ['events:PutEvents'], resources: [busArn(certflowKms)] },
      rateSchedule(certflowKms),
      {
        actions: ['ssm:GetParameter'],
        resources: [ssmArn(`cdf-ca-chain-${CA_ID}`), ssmArn(`cdf-ca-kms-key-${CA_ID}`)],
      },
      {
        actions: ['iot:DescribeCACertificate'],
        resources: [`arn:\${AWS::Partition}:iot:\${AWS::Region}:\${AWS::AccountId}:cacert/${CA_ID}`],
      },
      { actions: ['kms:GetPublicKey', 'kms:Sign'], resources: [KMS_KEY] },
      { actions: ['dynamodb:GetItem'], resources: [caTableArn(certflowKms)] },
    ]);
  });

  it('grants ACM PCA: Describe, Issue and GetCertificate on that CA only, nothing of SSM, KMS or IoT', () => {
    expect(grants(pca)).toEqual([
      { actions: ['events:PutEvents'], resources: [busArn(pca)] },
      rateSchedule(pca),
      {
        actions: ['acm-pca:DescribeCertificateAuthority', 'acm-pca:GetCertificate', 'acm-pca:IssueCertificate'],
        resources: [PCA_ARN],
      },
    ]);
  });

  it.each([
    ['certflow CA', () => certflowSsm],
    ['KMS CA', () => certflowKms],
    ['ACM PCA', () => pca],
  ])('passes cdk-nag AwsSolutions with no error and no warning (%s)', (_, app) => {
    const built = app();
    const findings = [
      ...built.annotations.findError('*', Match.stringLikeRegexp('AwsSolutions-.*')),
      ...built.annotations.findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*')),
    ];
    expect(findings.map((e) => `${e.id}: ${String(e.entry.data)}`)).toEqual([]);
  });
});

describe('certificateProvider deploy options', () => {
  it.each([
    ['error/enabled without a CA', { enabled: true }, /certificateProvider\.ca: an enabled certificate provider needs/],
    [
      'error/AWS IoT as the CA',
      { enabled: true, ca: { type: 'aws-iot' } },
      /certificateProvider\.ca: CSRs are signed by a certflow CA or an ACM Private CA, not AWS IoT/,
    ],
    [
      'error/bad PCA ARN',
      { enabled: true, ca: { type: 'acm-pca', arn: 'arn:aws:acm-pca:nope' } },
      /certificateProvider\.ca\.arn/,
    ],
    ['error/zero days', { validityDays: 0 }, /certificateProvider\.validityDays/],
    ['error/bad name', { name: 'has space' }, /certificateProvider\.name/],
    ['error/unknown option', { enable: true }, /certificateProvider/],
  ])('%s fails the synth', (_, certificateProvider, message) => {
    expect(() => parseDeployConfig({ certificateProvider })).toThrow(message);
  });

  it('ok/from the command line as JSON (-c certflow:certificateProvider=…)', () => {
    expect(
      parseDeployConfig({
        certificateProvider: JSON.stringify({ enabled: true, ca: { type: 'acm-pca', arn: PCA_ARN } }),
      }).certificateProvider,
    ).toEqual({ enabled: true, ca: { type: 'acm-pca', arn: PCA_ARN }, validityDays: 365, name: 'certflow' });
  });

  it('error/a KMS CA without caKmsKeyArns fails the synth', () => {
    expect(() =>
      parseDeployConfig({
        caKeyStore: 'kms',
        certificateProvider: { enabled: true, ca: { type: 'certflow', caId: CA_ID } },
      }),
    ).toThrow(/caKmsKeyArns/);
  });
});
