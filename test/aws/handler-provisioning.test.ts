/**
 * The provisioning API Lambda on AWS deps (awsProvisioningDeps) built from real SDK clients whose `send` is mocked:
 * the exact AWS IoT, ACM PCA, S3, EventBridge and Step Functions calls behind each response, in order. The S3 bucket
 * is in memory behind the mock. certflow CAs come from an in-memory CA store and key store (their SSM/KMS
 * adapters are tested on their own), so the IoT call order is all that is asserted here.
 */
import 'aws-sdk-client-mock-jest';
import { Readable } from 'node:stream';
import {
  ACMPCAClient,
  DescribeCertificateAuthorityCommand,
  GetCertificateCommand,
  IssueCertificateCommand,
} from '@aws-sdk/client-acm-pca';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import {
  AddThingToThingGroupCommand,
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreatePolicyCommand,
  CreateThingCommand,
  DescribeCACertificateCommand,
  GetPolicyCommand,
  IoTClient,
  RegisterCertificateCommand,
  RegisterThingCommand,
} from '@aws-sdk/client-iot';
import { KMSClient } from '@aws-sdk/client-kms';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { SSMClient } from '@aws-sdk/client-ssm';
import { sdkStreamMixin } from '@smithy/util-stream';
import type { APIGatewayProxyEvent } from 'aws-lambda';
import type { AwsClients } from '../../lambdas/adapters/aws/bulk-deps';
import { awsProvisioningDeps } from '../../lambdas/adapters/aws/provisioning-deps';
import {
  createIntermediateCa,
  createRootCa,
  issueFromCsr,
  issueLeaf,
  parseCertificate,
  parseCsr,
  type CreatedCa,
} from '../../lambdas/core/pki';
import type { CaRecord, LoadedCa } from '../../lambdas/core/ports';
import { createHandler } from '../../lambdas/handlers/api-provisioning';
import { ProvisioningApiEnv, readEnv } from '../../lambdas/handlers/env';
import { cmd, mockSdk } from './sdk-mock';

const BUCKET = 'certflow-objects';
const STATE_MACHINE = 'arn:aws:states:us-east-1:111122223333:stateMachine:certflow-provisioning';
const PCA_ARN = 'arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/11111111-2222-3333-4444-555555555555';
const IOT_CA_ID = 'c'.repeat(64);
const ARN = 'arn:aws:iot:us-east-1:111122223333:';

const s3Mock = mockSdk(S3Client);
const iotMock = mockSdk(IoTClient);
const pcaMock = mockSdk(ACMPCAClient);
const ebMock = mockSdk(EventBridgeClient);
const sfnMock = mockSdk(SFNClient);
// the rate schedule (DynamoRateLimiter in the task table): every slot is free
const ddbMock = mockSdk(DynamoDBDocumentClient);

const now = new Date();
let root: CreatedCa;
let issuing: CreatedCa;
const bucket = new Map<string, Buffer>();

beforeAll(async () => {
  root = await createRootCa({ subject: { commonName: 'Test Root' }, validity: { days: 3650 }, now, pathLength: 1 });
  issuing = await createIntermediateCa(root.issuer, {
    subject: { commonName: 'Test Issuing' },
    validity: { days: 1000 },
    now,
  });
});

const env = readEnv(ProvisioningApiEnv, {
  BUCKET_NAME: BUCKET,
  EVENT_BUS_NAME: 'certflow-bus',
  CA_TABLE_NAME: 'certflow-cas',
  PROVISIONING_STATE_MACHINE_ARN: STATE_MACHINE,
  RATE_LIMIT_TABLE_NAME: 'certflow-tasks',
});

function handlerWith(rawEnv: Record<string, string> = {}) {
  const clients: AwsClients = {
    dynamodb: new DynamoDBClient({ region: 'us-east-1' }),
    s3: new S3Client({ region: 'us-east-1' }),
    eventBridge: new EventBridgeClient({ region: 'us-east-1' }),
    sfn: new SFNClient({ region: 'us-east-1' }),
    ssm: new SSMClient({ region: 'us-east-1' }),
    iot: new IoTClient({ region: 'us-east-1' }),
    kms: new KMSClient({ region: 'us-east-1' }),
    pca: new ACMPCAClient({ region: 'us-east-1' }),
  };
  const deps = awsProvisioningDeps(env, clients, rawEnv);
  const loaded: LoadedCa = {
    caId: issuing.certificate.id,
    issuer: issuing.issuer,
    chain: [issuing.certificate, root.certificate],
  };
  deps.caKeys = { load: async (caId) => (caId === loaded.caId ? loaded : Promise.reject(new Error(`no CA ${caId}`))) };
  deps.cas = {
    get: async (caId) => (caId === loaded.caId ? ({ caId, status: 'active' } as CaRecord) : undefined),
  } as NonNullable<typeof deps.cas>;
  deps.newId = () => 'task-1';
  return createHandler(deps);
}

function event(method: string, resource: string, body?: unknown, pathParameters: Record<string, string> = {}) {
  let path = resource;
  for (const [k, v] of Object.entries(pathParameters)) path = path.replace(`{${k}}`, v);
  return {
    httpMethod: method,
    resource,
    path,
    pathParameters,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? null : JSON.stringify(body),
    isBase64Encoded: false,
    queryStringParameters: null,
    requestContext: { path: `/prod${path}` },
  } as unknown as APIGatewayProxyEvent;
}

beforeEach(() => {
  for (const m of [s3Mock, iotMock, pcaMock, ebMock, sfnMock, ddbMock]) m.reset();
  bucket.clear();
  s3Mock.on(cmd(PutObjectCommand)).callsFake(async (input: { Key: string; Body: string | Uint8Array }) => {
    bucket.set(input.Key, Buffer.from(input.Body));
    return {};
  });
  s3Mock.on(cmd(GetObjectCommand)).callsFake(async (input: { Key: string }) => {
    const body = bucket.get(input.Key);
    if (!body) throw new NoSuchKey({ message: 'no such key', $metadata: { httpStatusCode: 404 } });
    return { Body: sdkStreamMixin(Readable.from([body])) };
  });
  s3Mock.on(cmd(HeadObjectCommand)).callsFake(async (input: { Key: string }) => {
    const body = bucket.get(input.Key);
    if (!body) throw Object.assign(new Error('NotFound'), { name: 'NotFound', $metadata: { httpStatusCode: 404 } });
    return { ContentLength: body.length };
  });
  s3Mock.on(cmd(ListObjectsV2Command)).callsFake(async (input: { Prefix: string }) => ({
    Contents: [...bucket.keys()].filter((k) => k.startsWith(input.Prefix)).map((Key) => ({ Key })),
  }));
  ebMock.on(cmd(PutEventsCommand)).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'e' }] });
});

/** The rate schedule items the paced calls took a slot of, in order (DynamoRateLimiter's conditional UpdateItem). */
const slots = () => ddbMock.commandCalls(cmd(UpdateCommand)).map((c) => (c.args[0].input.Key as { pk: string }).pk);

/** AWS IoT calls in order, as `Command {key input}` labels. */
const iotCalls = () =>
  iotMock.calls().map((c) => {
    const command = c.args[0] as { constructor: { name: string }; input: Record<string, unknown> };
    return [command.constructor.name.replace(/Command$/, ''), command.input] as const;
  });

const awsTemplate = {
  Parameters: { SerialNumber: { Type: 'String' }, CSR: { Type: 'String' }, Line: { Type: 'String', Default: 'A' } },
  Resources: {
    thing: {
      Type: 'AWS::IoT::Thing',
      Properties: {
        ThingName: { 'Fn::Sub': 'bulb-${SerialNumber}' },
        ThingGroups: [{ 'Fn::Join': ['-', ['line', { Ref: 'Line' }]] }],
      },
    },
    certificate: { Type: 'AWS::IoT::Certificate', Properties: { CertificateSigningRequest: { Ref: 'CSR' } } },
    PolicyLogicalName: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: 'bulb-policy' } },
  },
};

describe('PUT/GET /templates', () => {
  it('stores a valid template at templates/{id}.json and lists it', async () => {
    const handler = handlerWith();
    const put = await handler(event('PUT', '/templates/{templateId}', awsTemplate, { templateId: 'bulbs' }));
    expect(put.statusCode).toBe(201);
    expect(put.headers?.location).toBe('/prod/templates/bulbs');
    expect(s3Mock).toHaveReceivedCommandWith(cmd(PutObjectCommand), {
      Bucket: BUCKET,
      Key: 'templates/bulbs.json',
      ContentType: 'application/json',
    });
    const list = await handler(event('GET', '/templates'));
    expect(JSON.parse(list.body)).toEqual({ templates: [{ templateId: 'bulbs' }] });
    expect(s3Mock).toHaveReceivedCommandWith(cmd(ListObjectsV2Command), { Bucket: BUCKET, Prefix: 'templates/' });
  });

  it('refuses a bad template (400 with the path) without writing it', async () => {
    const res = await handlerWith()(
      event(
        'PUT',
        '/templates/{templateId}',
        { Resources: { t: { Type: 'AWS::S3::Bucket', Properties: {} } } },
        { templateId: 'x' },
      ),
    );
    expect(res.statusCode).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({
      code: 'UNKNOWN_RESOURCE_TYPE',
      details: { path: 'Resources.t.Type' },
    });
    expect(s3Mock).not.toHaveReceivedCommand(cmd(PutObjectCommand));
  });
});

describe('POST /things on AWS', () => {
  it('hands a plain AWS IoT template to RegisterThing (one IoT call) and announces the certificate AWS IoT signed', async () => {
    bucket.set('templates/bulbs.json', Buffer.from(JSON.stringify(awsTemplate)));
    const { certificate: signed } = await issueLeaf(issuing.issuer, {
      profile: 'device',
      subject: { commonName: 'bulb-7' },
      validity: { days: 30 },
      now,
    });
    iotMock.on(cmd(RegisterThingCommand)).resolves({
      certificatePem: signed.pem,
      resourceArns: {
        thing: `${ARN}thing/bulb-7`,
        certificate: `${ARN}cert/${signed.id}`,
        PolicyLogicalName: `${ARN}policy/bulb-policy`,
      },
    });
    const res = await handlerWith()(
      event('POST', '/things', { provisioningTemplateId: 'bulbs', parameters: { SerialNumber: '7', CSR: 'PEM-CSR' } }),
    );
    expect(res.statusCode).toBe(201);
    expect(JSON.parse(res.body)).toEqual({
      thingName: 'bulb-7',
      resourceArns: {
        thing: `${ARN}thing/bulb-7`,
        certificate: `${ARN}cert/${signed.id}`,
        PolicyLogicalName: `${ARN}policy/bulb-policy`,
      },
      certificateId: signed.id,
      certificatePem: signed.pem,
    });
    expect(iotCalls()).toEqual([
      [
        'RegisterThing',
        { templateBody: JSON.stringify(awsTemplate), parameters: { SerialNumber: '7', CSR: 'PEM-CSR', Line: 'A' } },
      ],
    ]);
    expect(slots()).toEqual(['rate#iot:RegisterThing']);
    expect(s3Mock).toHaveReceivedCommandWith(cmd(PutObjectCommand), { Key: `certificates/${signed.id}.pem` });
    const entry = ebMock.commandCalls(cmd(PutEventsCommand))[0]!.args[0].input.Entries![0]!;
    expect(entry.DetailType).toBe('Certificate Issued');
    expect(JSON.parse(entry.Detail!)).toMatchObject({
      issuerId: 'aws-iot',
      origin: 'provisioning',
      thingName: 'bulb-7',
    });
  });

  it('createDeviceCertificate: certflow signs, RegisterThing registers it with the CA, then the CDF post-steps', async () => {
    const template = {
      Parameters: {
        ThingName: { Type: 'String' },
        CertificatePem: { Type: 'String' },
        CaCertificatePem: { Type: 'String' },
      },
      Resources: {
        thing: { Type: 'AWS::IoT::Thing', Properties: { ThingName: { Ref: 'ThingName' } } },
        certificate: {
          Type: 'AWS::IoT::Certificate',
          Properties: { CertificatePem: { Ref: 'CertificatePem' }, CACertificatePem: { Ref: 'CaCertificatePem' } },
        },
      },
      CDF: {
        createDeviceCertificate: true,
        attachAdditionalPolicies: [
          { name: 'telemetry', document: { Version: '2012-10-17', Statement: [] } },
          { name: 'base' },
        ],
        thingGroups: ['provisioned'],
      },
    };
    bucket.set('templates/cdf.json', Buffer.from(JSON.stringify(template)));
    iotMock.on(cmd(RegisterThingCommand)).callsFake(async (input: { parameters: Record<string, string> }) => {
      const id = parseCertificate(input.parameters.CertificatePem!).id;
      return { resourceArns: { thing: `${ARN}thing/dev-1`, certificate: `${ARN}cert/${id}` } };
    });
    iotMock.on(cmd(CreatePolicyCommand)).resolves({ policyArn: `${ARN}policy/telemetry_x` });
    iotMock
      .on(cmd(GetPolicyCommand))
      .resolves({ policyName: 'base', policyArn: `${ARN}policy/base`, policyDocument: '{}' });
    iotMock.on(cmd(AttachPolicyCommand)).resolves({});
    iotMock.on(cmd(AddThingToThingGroupCommand)).resolves({});
    const res = await handlerWith()(
      event('POST', '/things', {
        provisioningTemplateId: 'cdf',
        parameters: { ThingName: 'dev-1' },
        cdfProvisioningParameters: { caId: issuing.certificate.id, certInfo: { organization: 'Acme', daysExpiry: 30 } },
      }),
    );
    expect(res.statusCode).toBe(201);
    const body = JSON.parse(res.body) as Record<string, string>;
    const cert = parseCertificate(body.certificatePem!);
    expect(cert.commonName).toBe('dev-1');
    expect(cert.issuer).toBe(issuing.certificate.subject);
    expect(body.privateKey).toContain('BEGIN PRIVATE KEY');
    const certArn = `${ARN}cert/${cert.id}`;
    const { CDF: _cdf, ...awsPart } = template;
    void _cdf;
    expect(iotCalls()).toEqual([
      [
        'RegisterThing',
        {
          templateBody: JSON.stringify(awsPart),
          parameters: { ThingName: 'dev-1', CertificatePem: cert.pem, CaCertificatePem: issuing.certificate.pem },
        },
      ],
      [
        'CreatePolicy',
        {
          policyName: expect.stringMatching(/^telemetry_[0-9a-f]{8}$/),
          policyDocument: '{"Version":"2012-10-17","Statement":[]}',
        },
      ],
      ['AttachPolicy', { policyName: expect.stringMatching(/^telemetry_/), target: certArn }],
      ['GetPolicy', { policyName: 'base' }],
      ['AttachPolicy', { policyName: 'base', target: certArn }],
      ['AddThingToThingGroup', { thingName: 'dev-1', thingGroupName: 'provisioned' }],
    ]);
    const detail = ebMock.commandCalls(cmd(PutEventsCommand))[0]!.args[0].input.Entries![0]!.Detail!;
    expect(JSON.parse(detail)).toMatchObject({ issuerId: issuing.certificate.id, origin: 'provisioning' });
    expect(detail).not.toContain('PRIVATE KEY');
  });

  it('a certflow-only template (a resource refers to another) runs on the registry port: exact IoT call order', async () => {
    const template = {
      Parameters: { CertificatePem: { Type: 'String' }, CaCertificatePem: { Type: 'String' } },
      Resources: {
        certificate: {
          Type: 'AWS::IoT::Certificate',
          Properties: { CertificatePem: { Ref: 'CertificatePem' }, CACertificatePem: { Ref: 'CaCertificatePem' } },
        },
        thing: {
          Type: 'AWS::IoT::Thing',
          Properties: {
            ThingName: {
              'Fn::Join': ['-', ['dev', { 'Fn::Select': [0, { 'Fn::Split': ['x', { Ref: 'certificate' }] }] }]],
            },
            ThingGroups: ['g1'],
          },
        },
        policy: { Type: 'AWS::IoT::Policy', Properties: { PolicyDocument: { Version: '2012-10-17', Statement: [] } } },
      },
      CDF: { createDeviceCertificate: true },
    };
    bucket.set('templates/own.json', Buffer.from(JSON.stringify(template)));
    iotMock.on(cmd(RegisterCertificateCommand)).callsFake(async (input: { certificatePem: string }) => {
      const id = parseCertificate(input.certificatePem).id;
      return { certificateId: id, certificateArn: `${ARN}cert/${id}` };
    });
    iotMock
      .on(cmd(CreatePolicyCommand))
      .callsFake(async (input: { policyName: string }) => ({ policyArn: `${ARN}policy/${input.policyName}` }));
    iotMock
      .on(cmd(CreateThingCommand))
      .callsFake(async (input: { thingName: string }) => ({ thingArn: `${ARN}thing/${input.thingName}` }));
    iotMock.on(cmd(AddThingToThingGroupCommand)).resolves({});
    iotMock.on(cmd(AttachThingPrincipalCommand)).resolves({});
    iotMock.on(cmd(AttachPolicyCommand)).resolves({});
    const res = await handlerWith()(
      event('POST', '/things', {
        provisioningTemplateId: 'own',
        cdfProvisioningParameters: { caId: issuing.certificate.id, certInfo: { commonName: 'device-by-id' } },
      }),
    );
    expect(res.statusCode).toBe(201);
    const body = JSON.parse(res.body) as { thingName: string; certificateId: string; certificatePem: string };
    const id = body.certificateId;
    const thingName = `dev-${id.split('x')[0]}`;
    expect(body.thingName).toBe(thingName);
    const certArn = `${ARN}cert/${id}`;
    expect(iotCalls()).toEqual([
      [
        'RegisterCertificate',
        { certificatePem: body.certificatePem, caCertificatePem: issuing.certificate.pem, status: 'ACTIVE' },
      ],
      ['CreateThing', { thingName, attributePayload: { attributes: {} } }],
      ['AddThingToThingGroup', { thingName, thingGroupName: 'g1' }],
      [
        'CreatePolicy',
        {
          policyName: expect.stringMatching(/^policy-[0-9a-f]{16}$/),
          policyDocument: '{"Version":"2012-10-17","Statement":[]}',
        },
      ],
      ['AttachThingPrincipal', { thingName, principal: certArn }],
      ['AttachPolicy', { policyName: expect.stringMatching(/^policy-/), target: certArn }],
    ]);
    // each quota-bound call took its slot of the deployment-wide schedule first (RATE_LIMIT_TABLE_NAME)
    expect(slots()).toEqual([
      'rate#iot:RegisterCertificate',
      'rate#iot:CreateThing',
      'rate#iot:AttachThingPrincipal',
      'rate#iot:AttachPolicy',
    ]);
    expect(new Set(ddbMock.commandCalls(cmd(UpdateCommand)).map((c) => c.args[0].input.TableName))).toEqual(
      new Set(['certflow-tasks']),
    );
  });

  it('acmpca REGISTER_WITH_CA by alias: ACM PCA signs certflow’s CSR, the certificate is registered with the AWS IoT CA', async () => {
    const template = {
      Parameters: { ThingName: { Type: 'String' }, CertificateId: { Type: 'String' } },
      Resources: {
        thing: { Type: 'AWS::IoT::Thing', Properties: { ThingName: { Ref: 'ThingName' } } },
        certificate: { Type: 'AWS::IoT::Certificate', Properties: { CertificateId: { Ref: 'CertificateId' } } },
      },
      CDF: { useACMPCA: true, acmpca: { mode: 'REGISTER_WITH_CA' } },
    };
    bucket.set('templates/pca.json', Buffer.from(JSON.stringify(template)));
    let signedPem = '';
    pcaMock.on(cmd(DescribeCertificateAuthorityCommand)).resolves({
      CertificateAuthority: {
        CertificateAuthorityConfiguration: {
          KeyAlgorithm: 'EC_prime256v1',
          SigningAlgorithm: 'SHA256WITHECDSA',
          Subject: {},
        },
      },
    });
    pcaMock.on(cmd(IssueCertificateCommand)).callsFake(async (input: { Csr: Uint8Array }) => {
      const csr = parseCsr(Buffer.from(input.Csr).toString('utf8'));
      signedPem = (await issueFromCsr(issuing.issuer, csr, { profile: 'device', validity: { days: 30 }, now })).pem;
      return { CertificateArn: `${PCA_ARN}/certificate/abc` };
    });
    pcaMock
      .on(cmd(GetCertificateCommand))
      .callsFake(async () => ({ Certificate: signedPem, CertificateChain: issuing.certificate.pem }));
    iotMock
      .on(cmd(DescribeCACertificateCommand))
      .resolves({ certificateDescription: { certificatePem: issuing.certificate.pem } });
    iotMock.on(cmd(RegisterCertificateCommand)).callsFake(async (input: { certificatePem: string }) => {
      const id = parseCertificate(input.certificatePem).id;
      return { certificateId: id, certificateArn: `${ARN}cert/${id}` };
    });
    iotMock.on(cmd(RegisterThingCommand)).callsFake(async (input: { parameters: Record<string, string> }) => ({
      resourceArns: { thing: `${ARN}thing/pca-1`, certificate: `${ARN}cert/${input.parameters.CertificateId}` },
    }));
    const res = await handlerWith({ PCA_FACTORY: PCA_ARN, CA_FACTORY: IOT_CA_ID })(
      event('POST', '/things', {
        provisioningTemplateId: 'pca',
        parameters: { ThingName: 'pca-1' },
        cdfProvisioningParameters: { acmpcaCaAlias: 'factory', awsiotCaAlias: 'factory', certInfo: { daysExpiry: 30 } },
      }),
    );
    expect(res.statusCode).toBe(201);
    const body = JSON.parse(res.body) as Record<string, string>;
    const id = parseCertificate(signedPem).id;
    expect(body.certificatePem).toBe(`${signedPem}${issuing.certificate.pem}`);
    expect(body.privateKey).toContain('BEGIN PRIVATE KEY');
    expect(pcaMock).toHaveReceivedCommandWith(cmd(IssueCertificateCommand), {
      CertificateAuthorityArn: PCA_ARN,
      SigningAlgorithm: 'SHA256WITHECDSA',
      Validity: { Type: 'DAYS', Value: 30 },
    });
    expect(iotCalls()).toEqual([
      ['DescribeCACertificate', { certificateId: IOT_CA_ID }],
      [
        'RegisterCertificate',
        { certificatePem: signedPem, caCertificatePem: issuing.certificate.pem, status: 'ACTIVE' },
      ],
      ['RegisterThing', { templateBody: expect.any(String), parameters: { ThingName: 'pca-1', CertificateId: id } }],
    ]);
    expect(JSON.parse(ebMock.commandCalls(cmd(PutEventsCommand))[0]!.args[0].input.Entries![0]!.Detail!)).toMatchObject(
      {
        issuerId: PCA_ARN,
        origin: 'provisioning',
      },
    );
  });

  it('answers 400 UNKNOWN_CA_ALIAS for an alias that is not configured, before ACM PCA is called', async () => {
    bucket.set(
      'templates/pca.json',
      Buffer.from(
        JSON.stringify({
          Parameters: { ThingName: { Type: 'String' }, CertificateId: { Type: 'String' } },
          Resources: {
            thing: { Type: 'AWS::IoT::Thing', Properties: { ThingName: { Ref: 'ThingName' } } },
            certificate: { Type: 'AWS::IoT::Certificate', Properties: { CertificateId: { Ref: 'CertificateId' } } },
          },
          CDF: { acmpca: { mode: 'REGISTER_WITHOUT_CA' } },
        }),
      ),
    );
    const res = await handlerWith()(
      event('POST', '/things', {
        provisioningTemplateId: 'pca',
        parameters: { ThingName: 'x' },
        cdfProvisioningParameters: { acmpcaCaAlias: 'nowhere', certInfo: {} },
      }),
    );
    expect(res.statusCode).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ code: 'UNKNOWN_CA_ALIAS' });
    expect(pcaMock.calls()).toHaveLength(0);
    expect(iotMock.calls()).toHaveLength(0);
  });

  it('a template AWS IoT refuses (InvalidRequestException) is a 400', async () => {
    bucket.set('templates/bulbs.json', Buffer.from(JSON.stringify(awsTemplate)));
    iotMock
      .on(cmd(RegisterThingCommand))
      .rejects(Object.assign(new Error('Invalid CSR'), { name: 'InvalidRequestException', $metadata: {} }));
    const res = await handlerWith()(
      event('POST', '/things', { provisioningTemplateId: 'bulbs', parameters: { SerialNumber: '7', CSR: 'x' } }),
    );
    expect(res.statusCode).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ code: 'TEMPLATE_REJECTED' });
  });
});

describe('POST /bulkprovisioningtasks on AWS', () => {
  it('stores the chunks and the task, then starts the workflow named by the task id', async () => {
    bucket.set('templates/bulbs.json', Buffer.from(JSON.stringify(awsTemplate)));
    const parameters = Array.from({ length: 250 }, (_, i) => ({ SerialNumber: String(i), CSR: 'x' }));
    const res = await handlerWith()(
      event('POST', '/bulkprovisioningtasks', { provisioningTemplateId: 'bulbs', parameters }),
    );
    expect(res.statusCode).toBe(202);
    expect(JSON.parse(res.body)).toEqual({ taskId: 'task-1', status: 'pending', total: 250, chunksTotal: 3 });
    const keys = s3Mock.commandCalls(cmd(PutObjectCommand)).map((c) => c.args[0].input.Key);
    expect(keys).toEqual([
      'bulkprovisioning/task-1/request.json',
      'bulkprovisioning/task-1/items/000000.json',
      'bulkprovisioning/task-1/items/000001.json',
      'bulkprovisioning/task-1/items/000002.json',
      'bulkprovisioning/task-1/task.json',
    ]);
    expect(JSON.parse(bucket.get('bulkprovisioning/task-1/items/000002.json')!.toString())).toHaveLength(50);
    expect(sfnMock).toHaveReceivedCommandWith(cmd(StartExecutionCommand), {
      stateMachineArn: STATE_MACHINE,
      name: 'task-1',
      input: JSON.stringify({ taskId: 'task-1' }),
    });
    const view = await handlerWith()(event('GET', '/bulkprovisioningtasks/{taskId}', undefined, { taskId: 'task-1' }));
    expect(JSON.parse(view.body)).toMatchObject({
      status: 'pending',
      total: 250,
      chunksDone: 0,
      succeeded: 0,
      failed: 0,
    });
  });
});
