/**
 * The certificate provider Lambda (iot-certificate-provider) on AWS deps built by awsCertificateProviderDeps from real
 * SDK clients whose `send` is mocked. The certflow CA is a real CA whose key the SSM (or KMS) mock serves, and ACM PCA
 * signs with a real CA inside its mock, so every answer is a real certificate checked against the CSR.
 */
import 'aws-sdk-client-mock-jest';
import { createHash, createPublicKey, type KeyObject, sign as cryptoSign, X509Certificate } from 'node:crypto';
import {
  ACMPCAClient,
  DescribeCertificateAuthorityCommand,
  GetCertificateCommand,
  IssueCertificateCommand,
  RequestInProgressException,
} from '@aws-sdk/client-acm-pca';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { DescribeCACertificateCommand, IoTClient } from '@aws-sdk/client-iot';
import { GetPublicKeyCommand, KMSClient, SignCommand, type SignCommandInput } from '@aws-sdk/client-kms';
import { GetParameterCommand, ParameterNotFound, SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { CertificateNotReadyError } from '../../lambdas/adapters/aws/acm-pca-authority';
import { clientAuthTemplateArn } from '../../lambdas/adapters/aws/acm-pca-csr-signer';
import {
  awsCertificateProviderDeps,
  PROVIDER_PACING,
  PROVIDER_PCA_WAIT,
  providerClients,
  type ProviderClients,
} from '../../lambdas/adapters/aws/provider-deps';
import { ConflictError, CsrRejectedError, ValidationError } from '../../lambdas/core/errors';
import { CertificateIssuedDetail } from '../../lambdas/core/events';
import {
  createIntermediateCa,
  createRootCa,
  type CreatedCa,
  issueFromCsr,
  type KeyType,
  parseCertificate,
  parseCsr,
  privateKeyToPem,
  spkiDer,
  toPem,
} from '../../lambdas/core/pki';
import { RateLimitBacklogError } from '../../lambdas/core/pacing';
import { IssuedCertificateMismatchError } from '../../lambdas/core/provider/certificate-provider';
import { logger } from '../../lambdas/handlers/bundle';
import { CertificateProviderEnv, readEnv } from '../../lambdas/handlers/env';
import { createHandler, handler } from '../../lambdas/handlers/iot-certificate-provider';
import type { Context } from 'aws-lambda';
import { makeCsr } from '../helpers/csr';
import { callSequence, cmd, mockSdk } from './sdk-mock';

const BUS = 'certflow-bus';
const CA_TABLE = 'certflow-cas';
const RATE_TABLE = 'certflow-tasks';
const PCA_ARN = 'arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';
const KMS_KEY = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const PRINCIPAL = '6f0e8c4a2b1d3e5f7a9c0b2d4e6f8a1c3e5b7d9f0a2c4e6b8d0f1a3c5e7b9d2f';

const ssmMock = mockSdk(SSMClient);
const iotMock = mockSdk(IoTClient);
const kmsMock = mockSdk(KMSClient);
const pcaMock = mockSdk(ACMPCAClient);
const ebMock = mockSdk(EventBridgeClient);
const docMock = mockSdk(DynamoDBDocumentClient);
const MOCKS = { SSM: ssmMock, IoT: iotMock, KMS: kmsMock, ACMPCA: pcaMock, EventBridge: ebMock, DynamoDB: docMock };

const config = { region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } };
const clients = (): ProviderClients => ({
  ssm: new SSMClient(config),
  iot: new IoTClient(config),
  kms: new KMSClient(config),
  pca: new ACMPCAClient(config),
  eventBridge: new EventBridgeClient(config),
  dynamodb: new DynamoDBClient(config),
});

const sequence = (): string[] => callSequence(MOCKS);
/**
 * The exact UpdateItem DynamoRateLimiter sends for a slot of `api` on an idle schedule: the schedule restarts now
 * and the next slot is one interval (1000 / rate ms) later; `now` read back from the call, checked to be the call's.
 */
function expectSlotTaken(call: { args: [{ input: object }] }, api: string, intervalMs: number, window: number[]) {
  const input = call.args[0].input as { ExpressionAttributeValues: Record<string, number> };
  const now = input.ExpressionAttributeValues[':now']!;
  expect(now).toBeGreaterThanOrEqual(window[0]!);
  expect(now).toBeLessThanOrEqual(window[1]!);
  expect(input).toEqual({
    TableName: RATE_TABLE,
    Key: { pk: `rate#${api}` },
    UpdateExpression: 'SET nextFree = :next',
    ConditionExpression: 'attribute_not_exists(nextFree) OR nextFree < :now',
    ExpressionAttributeValues: { ':next': now + intervalMs, ':now': now },
  });
}
const throttling = () => Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
/** The schedule items the rate limiter's UpdateItems took, in order. */
const slots = (): string[] =>
  docMock.commandCalls(cmd(UpdateCommand)).map((c) => String((c.args[0].input.Key as { pk: unknown }).pk));

let root: CreatedCa;
let issuing: CreatedCa;
let rsaIssuing: CreatedCa;
beforeAll(async () => {
  const now = new Date();
  root = await createRootCa({ subject: { commonName: 'Provider Test Root' }, validity: { days: 3650 }, now });
  issuing = await createIntermediateCa(root.issuer, {
    subject: { commonName: 'Fleet Provisioning CA', organization: 'Acme' },
    validity: { days: 1825 },
    now,
  });
  rsaIssuing = await createIntermediateCa(root.issuer, {
    subject: { commonName: 'Fleet Provisioning CA (RSA)' },
    keyType: 'rsa-2048',
    validity: { days: 1825 },
    now,
  });
});

const sleeps: number[] = [];
beforeEach(() => {
  for (const mock of Object.values(MOCKS)) mock.reset();
  sleeps.length = 0;
  ebMock.on(cmd(PutEventsCommand)).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'event-1' }] });
  // the shared rate schedule is idle: every slot starts now
  docMock.on(cmd(UpdateCommand)).resolves({});
});

const env = (vars: Record<string, string>) =>
  readEnv(CertificateProviderEnv, {
    EVENT_BUS_NAME: BUS,
    VALIDITY_DAYS: '365',
    RATE_LIMIT_TABLE_NAME: RATE_TABLE,
    ...vars,
  });
const certflowEnv = (caId: string, store: 'ssm' | 'kms' = 'ssm') =>
  env({ SIGNING_CA: JSON.stringify({ type: 'certflow', caId }), CA_KEY_STORE: store });
const pcaEnv = (validityDays = 90) =>
  env({ SIGNING_CA: JSON.stringify({ type: 'acm-pca', arn: PCA_ARN }), VALIDITY_DAYS: String(validityDays) });

/** One Lambda container: deps built once, as the Lambda handler does at cold start. */
const container = (e: CertificateProviderEnv) =>
  createHandler(
    awsCertificateProviderDeps(e, clients(), {
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    }),
  );

const request = (csrPem: string, clientId = 'factory-line-3-0001') => ({
  certificateSigningRequest: csrPem,
  principalId: PRINCIPAL,
  clientId,
});

/** SSM as SsmCaKeyStore finds a certflow-created CA: key (SecureString), certificate, chain above it. */
function givenSsmCa(ca: CreatedCa): string {
  const caId = ca.certificate.id;
  const parameters = new Map<string, string>([
    [`cdf-ca-key-${caId}`, privateKeyToPem(ca.privateKey)],
    [`cdf-ca-cert-${caId}`, ca.certificate.pem],
    [`cdf-ca-chain-${caId}`, root.certificate.pem],
  ]);
  ssmMock.on(cmd(GetParameterCommand)).callsFake(async (input: { Name?: string }) => {
    const value = parameters.get(input.Name!);
    if (value === undefined) throw new ParameterNotFound({ message: 'not found', $metadata: {} });
    return { Parameter: { Name: input.Name, Value: value } };
  });
  return caId;
}

function issuedEvents() {
  return ebMock.commandCalls(cmd(PutEventsCommand)).flatMap((c) =>
    (c.args[0].input.Entries ?? []).map((entry) => ({
      entry,
      detail: CertificateIssuedDetail.parse(JSON.parse(entry.Detail!)),
    })),
  );
}

/** The answer is one certificate whose subject and key are the CSR's, signed by `issuerKey`, for clientAuth. */
function expectCertificateFor(csrPem: string, certificatePem: string, issuerKey: KeyObject, days: number) {
  const csr = parseCsr(csrPem);
  const cert = parseCertificate(certificatePem);
  expect(certificatePem.match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
  expect(cert.subjectDer.equals(csr.subjectDer)).toBe(true);
  expect(cert.spki.equals(csr.spki)).toBe(true);
  expect(cert.isCa).toBe(false);
  const x509 = new X509Certificate(certificatePem);
  expect(x509.verify(issuerKey)).toBe(true);
  expect(x509.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
  const lifetime = cert.notAfter.getTime() - cert.notBefore.getTime();
  expect(Math.round(lifetime / 86_400_000)).toBe(days);
  return cert;
}

describe('certificate provider, certflow CA with its key in SSM', () => {
  it('loads the CA once per container (three GetParameter), signs each CSR and sends Certificate Issued', async () => {
    const caId = givenSsmCa(issuing);
    docMock.on(cmd(GetCommand)).resolves({ Item: { caId, kind: 'intermediate', status: 'active' } });
    const handle = container(env({ SIGNING_CA: JSON.stringify({ type: 'certflow', caId }), CA_TABLE_NAME: CA_TABLE }));
    const first = await makeCsr({ name: 'CN=factory-line-3-0001, O=Acme, C=DE' });
    const second = await makeCsr({
      name: 'CN=factory-line-3-0002',
      alg: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048 },
    });

    const a = await handle(request(first.pem));
    const b = await handle(request(second.pem, 'factory-line-3-0002'));

    expect(Object.keys(a)).toEqual(['certificatePem']);
    const certA = expectCertificateFor(first.pem, a.certificatePem, createPublicKey(issuing.privateKey), 365);
    const certB = expectCertificateFor(second.pem, b.certificatePem, createPublicKey(issuing.privateKey), 365);
    expect(certA.issuer).toBe(issuing.certificate.subject);
    expect(sequence()).toEqual([
      'SSM.GetParameter',
      'SSM.GetParameter',
      'SSM.GetParameter',
      'DynamoDB.Get',
      'EventBridge.PutEvents',
      'DynamoDB.Get',
      'EventBridge.PutEvents',
    ]);
    for (const call of docMock.commandCalls(cmd(GetCommand))) {
      expect(call.args[0].input).toEqual({ TableName: CA_TABLE, Key: { caId }, ConsistentRead: true });
    }
    expect(ssmMock.commandCalls(cmd(GetParameterCommand)).map((c) => c.args[0].input)).toEqual(
      expect.arrayContaining([
        { Name: `cdf-ca-key-${caId}`, WithDecryption: true },
        { Name: `cdf-ca-cert-${caId}` },
        { Name: `cdf-ca-chain-${caId}` },
      ]),
    );
    expect(iotMock).not.toHaveReceivedAnyCommand();

    const events = issuedEvents();
    expect(events.map((e) => ({ ...e.entry, Detail: undefined }))).toEqual([
      { Source: 'certflow', DetailType: 'Certificate Issued', EventBusName: BUS, Detail: undefined },
      { Source: 'certflow', DetailType: 'Certificate Issued', EventBusName: BUS, Detail: undefined },
    ]);
    expect(events[0]!.detail).toEqual({
      issuerId: caId,
      kind: 'device',
      origin: 'certificate-provider',
      certificates: [
        {
          certificateId: certA.id,
          serialNumber: certA.serialNumber,
          commonName: 'factory-line-3-0001',
          notBefore: certA.notBefore.toISOString(),
          notAfter: certA.notAfter.toISOString(),
        },
      ],
    });
    expect(events[1]!.detail.certificates[0]!.certificateId).toBe(certB.id);
    for (const { entry } of events) expect(entry.Detail).not.toMatch(/BEGIN|PRIVATE/);
  });

  it('logs the serial number and id of what it issued, never the CSR or the PEM', async () => {
    const caId = givenSsmCa(issuing);
    const info = jest.spyOn(logger, 'info').mockImplementation(() => undefined);
    const warn = jest.spyOn(logger, 'warn').mockImplementation(() => undefined);
    try {
      const handle = container(certflowEnv(caId));
      const csr = await makeCsr({ name: 'CN=logged-0001' });
      const { certificatePem } = await handle(request(csr.pem));
      const tampered = Buffer.from(csr.der);
      tampered[tampered.indexOf(Buffer.from('logged-0001'))] = 'L'.charCodeAt(0);
      await expect(handle(request(toPem('CERTIFICATE REQUEST', tampered)))).rejects.toThrow(CsrRejectedError);

      const cert = parseCertificate(certificatePem);
      expect(info).toHaveBeenCalledWith(
        'certificate issued',
        expect.objectContaining({
          certificateId: cert.id,
          serialNumber: cert.serialNumber,
          issuerId: caId,
          principalId: PRINCIPAL,
          clientId: 'factory-line-3-0001',
        }),
      );
      expect(warn).toHaveBeenCalledWith(
        'certificate request refused',
        expect.objectContaining({ code: 'CSR_SIGNATURE_INVALID' }),
      );
      const logged = JSON.stringify([...info.mock.calls, ...warn.mock.calls]);
      const body = (pem: string) =>
        pem
          .split('\n')
          .filter((l) => l && !l.startsWith('-----'))
          .join('');
      for (const text of [
        body(csr.pem),
        body(certificatePem),
        toPem('CERTIFICATE REQUEST', tampered).split('\n')[2]!,
        'BEGIN',
      ]) {
        expect(logged).not.toContain(text);
      }
    } finally {
      info.mockRestore();
      warn.mockRestore();
    }
  });

  it('stops signing as soon as the CA is revoked in the CA table (409 ISSUER_REVOKED), and emits nothing', async () => {
    const caId = givenSsmCa(issuing);
    docMock.on(cmd(GetCommand)).resolves({ Item: { caId, kind: 'intermediate', status: 'revoked' } });
    const handle = container(env({ SIGNING_CA: JSON.stringify({ type: 'certflow', caId }), CA_TABLE_NAME: CA_TABLE }));
    const warn = jest.spyOn(logger, 'warn').mockImplementation(() => undefined);
    try {
      await expect(handle(request((await makeCsr({ name: 'CN=too-late' })).pem))).rejects.toMatchObject({
        constructor: ConflictError,
        code: 'ISSUER_REVOKED',
        status: 409,
      });
    } finally {
      warn.mockRestore();
    }
    expect(ebMock).not.toHaveReceivedAnyCommand();
  });

  it('signs with a CA the CA table does not know (one CDF made) and without a CA table', async () => {
    const caId = givenSsmCa(issuing);
    docMock.on(cmd(GetCommand)).resolves({});
    const csr = await makeCsr({ name: 'CN=cdf-ca-device' });
    const withTable = container(
      env({ SIGNING_CA: JSON.stringify({ type: 'certflow', caId }), CA_TABLE_NAME: CA_TABLE }),
    );
    await withTable(request(csr.pem));
    expect(docMock).toHaveReceivedCommandTimes(cmd(GetCommand), 1);
    docMock.resetHistory();
    await container(certflowEnv(caId))(request(csr.pem));
    expect(docMock).not.toHaveReceivedAnyCommand();
    expect(ebMock).toHaveReceivedCommandTimes(cmd(PutEventsCommand), 2);
  });

  it('refuses to sign a certificate that would outlive its CA (VALIDITY_EXCEEDS_ISSUER), and emits nothing', async () => {
    const caId = givenSsmCa(issuing);
    const handle = container(env({ SIGNING_CA: JSON.stringify({ type: 'certflow', caId }), VALIDITY_DAYS: '2000' }));
    const warn = jest.spyOn(logger, 'warn').mockImplementation(() => undefined);
    try {
      await expect(handle(request((await makeCsr({ name: 'CN=long-lived' })).pem))).rejects.toMatchObject({
        constructor: ValidationError,
        code: 'VALIDITY_EXCEEDS_ISSUER',
      });
    } finally {
      warn.mockRestore();
    }
    expect(ebMock).not.toHaveReceivedAnyCommand();
  });

  it('signs with the configured validity', async () => {
    const caId = givenSsmCa(issuing);
    const handle = container(env({ SIGNING_CA: JSON.stringify({ type: 'certflow', caId }), VALIDITY_DAYS: '30' }));
    const csr = await makeCsr({ name: 'CN=short-lived' });
    expectCertificateFor(
      csr.pem,
      (await handle(request(csr.pem))).certificatePem,
      createPublicKey(issuing.privateKey),
      30,
    );
  });
});

describe('certificate provider, bad requests', () => {
  const cases: [string, () => Promise<unknown>, new (...a: never[]) => Error, string][] = [
    [
      'error/tampered CSR',
      async () => {
        const csr = await makeCsr({ name: 'CN=thing-42' });
        const der = Buffer.from(csr.der);
        der[der.indexOf(Buffer.from('thing-42'))] = 'T'.charCodeAt(0);
        return request(toPem('CERTIFICATE REQUEST', der));
      },
      CsrRejectedError,
      'CSR_SIGNATURE_INVALID',
    ],
    [
      'error/RSA-1024 CSR',
      async () =>
        request((await makeCsr({ name: 'CN=weak', alg: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 1024 } })).pem),
      CsrRejectedError,
      'WEAK_KEY',
    ],
    [
      'error/CSR asking for a CA',
      async () => request((await makeCsr({ name: 'CN=sneaky', ca: true })).pem),
      CsrRejectedError,
      'CSR_REQUESTS_CA',
    ],
    [
      'error/not a CSR',
      async () => request('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n'),
      ValidationError,
      'INVALID_CSR',
    ],
    ['error/no CSR', async () => ({ principalId: PRINCIPAL, clientId: 'x' }), ValidationError, 'INVALID_REQUEST'],
    [
      'error/no clientId',
      async () => ({ certificateSigningRequest: 'x', principalId: PRINCIPAL }),
      ValidationError,
      'INVALID_REQUEST',
    ],
    ['error/not an object', async () => 'hello', ValidationError, 'INVALID_REQUEST'],
  ];

  it.each(cases)('%s is refused with its code before anything is loaded or signed', async (_, make, type, code) => {
    const caId = givenSsmCa(issuing);
    const handle = container(certflowEnv(caId));
    const warn = jest.spyOn(logger, 'warn').mockImplementation(() => undefined);
    try {
      const error = await handle(await make()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(type);
      expect(error).toMatchObject({ code, status: 400 });
    } finally {
      warn.mockRestore();
    }
    expect(sequence()).toEqual([]);
  });
});

/** A certflow CA whose key is in KMS (key id and chain in SSM, certificate in AWS IoT); the first `throttledSigns`
 * kms:Sign calls answer ThrottlingException. */
function givenKmsCa(options: { throttledSigns?: number } = {}): string {
  const caId = issuing.certificate.id;
  let throttled = options.throttledSigns ?? 0;
  ssmMock.on(cmd(GetParameterCommand), { Name: `cdf-ca-kms-key-${caId}` }).resolves({ Parameter: { Value: KMS_KEY } });
  ssmMock
    .on(cmd(GetParameterCommand), { Name: `cdf-ca-chain-${caId}` })
    .resolves({ Parameter: { Value: root.certificate.pem } });
  iotMock
    .on(cmd(DescribeCACertificateCommand))
    .resolves({ certificateDescription: { certificateId: caId, certificatePem: issuing.certificate.pem } });
  kmsMock.on(cmd(GetPublicKeyCommand)).resolves({
    KeyId: KMS_KEY,
    PublicKey: spkiDer(createPublicKey(issuing.privateKey)),
    KeySpec: 'ECC_NIST_P256',
    KeyUsage: 'SIGN_VERIFY',
    SigningAlgorithms: ['ECDSA_SHA_256'],
  });
  kmsMock.on(cmd(SignCommand)).callsFake((input: SignCommandInput) => {
    if (throttled-- > 0) throw throttling();
    return {
      KeyId: KMS_KEY,
      Signature: cryptoSign('sha256', Buffer.from(input.Message!), issuing.privateKey),
      SigningAlgorithm: input.SigningAlgorithm,
    };
  });
  return caId;
}

describe('certificate provider, certflow CA with its key in KMS', () => {
  it('reads the key id, the CA certificate and the public key once, then one kms:Sign per certificate', async () => {
    const caId = givenKmsCa();
    const handle = container(certflowEnv(caId, 'kms'));
    const csrs = [await makeCsr({ name: 'CN=kms-0001' }), await makeCsr({ name: 'CN=kms-0002' })];

    for (const csr of csrs) {
      const { certificatePem } = await handle(request(csr.pem));
      expectCertificateFor(csr.pem, certificatePem, createPublicKey(issuing.privateKey), 365);
    }

    expect(sequence()).toEqual([
      'SSM.GetParameter',
      'IoT.DescribeCACertificate',
      'SSM.GetParameter',
      'KMS.GetPublicKey',
      'DynamoDB.Update', // the kms:Sign slot
      'KMS.Sign',
      'EventBridge.PutEvents',
      'DynamoDB.Update',
      'KMS.Sign',
      'EventBridge.PutEvents',
    ]);
    expect(iotMock).toHaveReceivedCommandWith(cmd(DescribeCACertificateCommand), { certificateId: caId });
    expect(kmsMock).toHaveReceivedCommandWith(cmd(GetPublicKeyCommand), { KeyId: KMS_KEY });
    for (const call of kmsMock.commandCalls(cmd(SignCommand))) {
      expect(call.args[0].input).toEqual({
        KeyId: KMS_KEY,
        Message: expect.anything(),
        MessageType: 'RAW',
        SigningAlgorithm: 'ECDSA_SHA_256',
      });
    }
  });

  it('takes a kms:Sign slot of the shared schedule (RATE_LIMIT_TABLE_NAME) before each Sign, and retries a throttled Sign', async () => {
    const caId = givenKmsCa({ throttledSigns: 2 });
    const handle = container(certflowEnv(caId, 'kms'));
    const csr = await makeCsr({ name: 'CN=kms-throttled' });
    const before = Date.now();
    const { certificatePem } = await handle(request(csr.pem));
    const after = Date.now();

    expectCertificateFor(csr.pem, certificatePem, createPublicKey(issuing.privateKey), 365);
    // 3 attempts at most, each on a new slot (1000/s: 1 ms apart)
    expect(sequence().slice(4)).toEqual([
      'DynamoDB.Update',
      'KMS.Sign',
      'DynamoDB.Update',
      'KMS.Sign',
      'DynamoDB.Update',
      'KMS.Sign',
      'EventBridge.PutEvents',
    ]);
    const calls = docMock.commandCalls(cmd(UpdateCommand));
    expect(calls).toHaveLength(3);
    for (const call of calls) expectSlotTaken(call, 'kms:Sign', 1, [before, after]);
    // full-jitter backoff within the provider's budget: under 50 ms, then under 100 ms
    expect(after - before).toBeLessThan(1000);
  });

  it('gives up a Sign still throttled after 3 attempts: AWS IoT gets the error, nothing is emitted', async () => {
    const caId = givenKmsCa({ throttledSigns: 3 });
    const handle = container(certflowEnv(caId, 'kms'));
    const error = jest.spyOn(logger, 'error').mockImplementation(() => undefined);
    try {
      await expect(handle(request((await makeCsr({ name: 'CN=kms-busy' })).pem))).rejects.toThrow('Rate exceeded');
    } finally {
      error.mockRestore();
    }
    expect(kmsMock).toHaveReceivedCommandTimes(cmd(SignCommand), PROVIDER_PACING.retry.maxAttempts);
    expect(ebMock).not.toHaveReceivedAnyCommand();
  });
});

describe('certificate provider, ACM Private CA', () => {
  const token = (csrPem: string) => createHash('sha256').update(parseCsr(csrPem).der).digest('hex').slice(0, 36);

  /** A PCA whose CA has `keyAlgorithm`, signing with `ca`; the first `inProgress` polls answer RequestInProgress. */
  function givenPca(
    ca: CreatedCa,
    keyAlgorithm: string,
    options: { inProgress?: number; subject?: string; throttledIssues?: number } = {},
  ) {
    let throttled = options.throttledIssues ?? 0;
    const csrByArn = new Map<string, Buffer>();
    const arnByToken = new Map<string, string>();
    let polls = 0;
    pcaMock.on(cmd(DescribeCertificateAuthorityCommand)).resolves({
      CertificateAuthority: {
        Arn: PCA_ARN,
        Status: 'ACTIVE',
        CertificateAuthorityConfiguration: {
          KeyAlgorithm: keyAlgorithm as never,
          SigningAlgorithm: 'SHA256WITHRSA',
          Subject: {},
        },
      },
    });
    pcaMock
      .on(cmd(IssueCertificateCommand))
      .callsFake(async (input: { Csr?: Uint8Array; IdempotencyToken?: string }) => {
        if (throttled-- > 0) throw throttling();
        const known = arnByToken.get(input.IdempotencyToken!);
        if (known) return { CertificateArn: known };
        const arn = `${PCA_ARN}/certificate/${csrByArn.size + 1}`;
        csrByArn.set(arn, Buffer.from(input.Csr!));
        arnByToken.set(input.IdempotencyToken!, arn);
        return { CertificateArn: arn };
      });
    pcaMock.on(cmd(GetCertificateCommand)).callsFake(async (input: { CertificateArn?: string }) => {
      if (++polls <= (options.inProgress ?? 0)) {
        throw new RequestInProgressException({ message: 'The request is in progress', $metadata: {} });
      }
      const csr = parseCsr(csrByArn.get(input.CertificateArn!)!.toString('utf8'));
      const subject = options.subject ? (await makeCsr({ name: options.subject })).der : undefined;
      const signed = await issueFromCsr(
        ca.issuer,
        subject ? { ...csr, subjectDer: parseCsr(subject).subjectDer } : csr,
        { profile: 'device', validity: { days: 90 }, now: new Date() },
      );
      return { Certificate: signed.pem, CertificateChain: `${ca.certificate.pem}${root.certificate.pem}` };
    });
  }

  it.each<[string, CreatedCa | (() => CreatedCa), string, string, KeyType]>([
    ['an EC CA: SHA256WITHECDSA', () => issuing, 'EC_prime256v1', 'SHA256WITHECDSA', 'ec-p256'],
    ['an RSA CA: SHA256WITHRSA', () => rsaIssuing, 'RSA_2048', 'SHA256WITHRSA', 'rsa-2048'],
  ])(
    'signs with %s, describes the CA once, an idempotency token from the CSR, waits for GetCertificate',
    async (_, caOf, keyAlgorithm, algorithm) => {
      const ca = typeof caOf === 'function' ? caOf() : caOf;
      givenPca(ca, keyAlgorithm, { inProgress: 2 });
      const handle = container(pcaEnv(90));
      const first = await makeCsr({ name: 'CN=pca-0001, O=Acme' });
      const second = await makeCsr({ name: 'CN=pca-0002', alg: { name: 'ECDSA', namedCurve: 'P-384' } });

      const a = await handle(request(first.pem));
      const b = await handle(request(second.pem));

      const certA = expectCertificateFor(first.pem, a.certificatePem, createPublicKey(ca.privateKey), 90);
      expectCertificateFor(second.pem, b.certificatePem, createPublicKey(ca.privateKey), 90);
      expect(sequence()).toEqual([
        'ACMPCA.DescribeCertificateAuthority',
        // each IssueCertificate and GetCertificate takes its slot of the shared schedule first
        'DynamoDB.Update',
        'ACMPCA.IssueCertificate',
        'DynamoDB.Update',
        'ACMPCA.GetCertificate',
        'DynamoDB.Update',
        'ACMPCA.GetCertificate',
        'DynamoDB.Update',
        'ACMPCA.GetCertificate',
        'EventBridge.PutEvents',
        'DynamoDB.Update',
        'ACMPCA.IssueCertificate',
        'DynamoDB.Update',
        'ACMPCA.GetCertificate',
        'EventBridge.PutEvents',
      ]);
      expect(slots()).toEqual([
        'rate#acm-pca:IssueCertificate',
        ...Array<string>(3).fill('rate#acm-pca:GetCertificate'),
        'rate#acm-pca:IssueCertificate',
        'rate#acm-pca:GetCertificate',
      ]);
      expect(pcaMock).toHaveReceivedCommandWith(cmd(DescribeCertificateAuthorityCommand), {
        CertificateAuthorityArn: PCA_ARN,
      });
      const issues = pcaMock.commandCalls(cmd(IssueCertificateCommand)).map((c) => c.args[0].input);
      expect(issues).toEqual(
        [first, second].map((csr) => ({
          CertificateAuthorityArn: PCA_ARN,
          Csr: expect.anything(),
          SigningAlgorithm: algorithm,
          Validity: { Type: 'DAYS', Value: 90 },
          IdempotencyToken: token(csr.pem),
          TemplateArn: 'arn:aws:acm-pca:::template/EndEntityClientAuthCertificate/V1',
        })),
      );
      expect(Buffer.from(issues[0]!.Csr!).toString('utf8')).toBe(
        `-----BEGIN CERTIFICATE REQUEST-----\n${first.der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END CERTIFICATE REQUEST-----\n`,
      );
      expect(pcaMock.commandCalls(cmd(GetCertificateCommand)).map((c) => c.args[0].input)[0]).toEqual({
        CertificateAuthorityArn: PCA_ARN,
        CertificateArn: `${PCA_ARN}/certificate/1`,
      });
      expect(sleeps).toEqual([100, 200, 400, 100]);
      expect(ssmMock).not.toHaveReceivedAnyCommand();
      expect(issuedEvents()[0]!.detail).toMatchObject({
        issuerId: PCA_ARN,
        origin: 'certificate-provider',
        certificates: [{ certificateId: certA.id, serialNumber: certA.serialNumber, commonName: 'pca-0001' }],
      });
    },
  );

  it('sends the same token for the same CSR, so a retrying device gets the same certificate', async () => {
    givenPca(issuing, 'EC_prime256v1');
    const handle = container(pcaEnv());
    const csr = await makeCsr({ name: 'CN=retrying-device' });
    await handle(request(csr.pem));
    await handle(request(csr.pem));
    const tokens = pcaMock.commandCalls(cmd(IssueCertificateCommand)).map((c) => c.args[0].input.IdempotencyToken);
    expect(tokens).toEqual([token(csr.pem), token(csr.pem)]);
    expect(tokens[0]).toHaveLength(36);
    expect(clientAuthTemplateArn('arn:aws-cn:acm-pca:cn-north-1:111122223333:certificate-authority/x')).toBe(
      'arn:aws-cn:acm-pca:::template/EndEntityClientAuthCertificate/V1',
    );
  });

  it('gives up within the 5-second budget when PCA never finishes (2.7 s of waits), and emits nothing', async () => {
    givenPca(issuing, 'EC_prime256v1', { inProgress: 1000 });
    const handle = container(pcaEnv());
    const error = jest.spyOn(logger, 'error').mockImplementation(() => undefined);
    try {
      await expect(handle(request((await makeCsr({ name: 'CN=slow' })).pem))).rejects.toThrow(CertificateNotReadyError);
    } finally {
      error.mockRestore();
    }
    expect(pcaMock).toHaveReceivedCommandTimes(cmd(GetCertificateCommand), PROVIDER_PCA_WAIT.maxPolls);
    expect(sleeps.reduce((a, b) => a + b, 0)).toBe(2700);
    expect(ebMock).not.toHaveReceivedAnyCommand();
  });

  it('takes an IssueCertificate slot before IssueCertificate and retries a throttled one with the same token', async () => {
    givenPca(issuing, 'EC_prime256v1', { throttledIssues: 1 });
    const handle = container(pcaEnv());
    const csr = await makeCsr({ name: 'CN=pca-throttled' });
    const before = Date.now();
    const { certificatePem } = await handle(request(csr.pem));
    const after = Date.now();

    expectCertificateFor(csr.pem, certificatePem, createPublicKey(issuing.privateKey), 90);
    expect(sequence()).toEqual([
      'ACMPCA.DescribeCertificateAuthority',
      'DynamoDB.Update',
      'ACMPCA.IssueCertificate',
      'DynamoDB.Update',
      'ACMPCA.IssueCertificate',
      'DynamoDB.Update',
      'ACMPCA.GetCertificate',
      'EventBridge.PutEvents',
    ]);
    const [first, second, poll] = docMock.commandCalls(cmd(UpdateCommand));
    // 25/s and 75/s (AWS's defaults): 40 ms and 13.3 ms intervals
    expectSlotTaken(first!, 'acm-pca:IssueCertificate', 40, [before, after]);
    expectSlotTaken(second!, 'acm-pca:IssueCertificate', 40, [before, after]);
    expectSlotTaken(poll!, 'acm-pca:GetCertificate', 1000 / 75, [before, after]);
    const tokens = pcaMock.commandCalls(cmd(IssueCertificateCommand)).map((c) => c.args[0].input.IdempotencyToken);
    expect(tokens).toEqual([token(csr.pem), token(csr.pem)]);
  });

  it('fails fast, without calling IssueCertificate, when the shared schedule is more than 1 s ahead', async () => {
    givenPca(issuing, 'EC_prime256v1');
    const handle = container(pcaEnv());
    const csr = await makeCsr({ name: 'CN=pca-backlog' });
    const nextFree = Date.now() + 5000;
    docMock
      .on(cmd(UpdateCommand))
      .rejects(Object.assign(new Error('The conditional request failed'), { name: 'ConditionalCheckFailedException' }));
    docMock.on(cmd(GetCommand), { TableName: RATE_TABLE }).resolves({ Item: { pk: 'rate#x', nextFree } });
    const logged = jest.spyOn(logger, 'error').mockImplementation(() => undefined);
    const started = Date.now();
    try {
      const error = await handle(request(csr.pem)).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(RateLimitBacklogError);
      expect((error as RateLimitBacklogError).api).toBe('acm-pca:IssueCertificate');
    } finally {
      logged.mockRestore();
    }
    // well inside AWS IoT's 5 seconds: no wait for the far slot, AWS IoT tells the device, which retries
    expect(Date.now() - started).toBeLessThan(500);
    expect(pcaMock).not.toHaveReceivedCommand(cmd(IssueCertificateCommand));
    expect(ebMock).not.toHaveReceivedAnyCommand();
    // both conditional writes refused (nothing reserved), the schedule read once: a 4 s backlog > the 1 s max wait
    expect(sequence()).toEqual([
      'ACMPCA.DescribeCertificateAuthority',
      'DynamoDB.Update',
      'DynamoDB.Update',
      'DynamoDB.Get',
    ]);
    expect(docMock).toHaveReceivedCommandWith(cmd(GetCommand), {
      TableName: RATE_TABLE,
      Key: { pk: 'rate#acm-pca:IssueCertificate' },
      ConsistentRead: true,
    });
  });

  it('never hands out a certificate whose subject is not the CSR\u2019s', async () => {
    givenPca(issuing, 'EC_prime256v1', { subject: 'CN=someone-else' });
    const handle = container(pcaEnv());
    const error = jest.spyOn(logger, 'error').mockImplementation(() => undefined);
    try {
      await expect(handle(request((await makeCsr({ name: 'CN=me' })).pem))).rejects.toThrow(
        IssuedCertificateMismatchError,
      );
    } finally {
      error.mockRestore();
    }
    expect(ebMock).not.toHaveReceivedAnyCommand();
  });
});

describe('the Lambda entry point', () => {
  it('reads its environment once, then answers AWS IoT with { certificatePem } from the CA it loaded once', async () => {
    const caId = givenSsmCa(issuing);
    docMock.on(cmd(GetCommand)).resolves({ Item: { caId, status: 'active' } });
    const variables = {
      AWS_REGION: 'eu-west-1',
      EVENT_BUS_NAME: BUS,
      SIGNING_CA: JSON.stringify({ type: 'certflow', caId }),
      CA_TABLE_NAME: CA_TABLE,
      VALIDITY_DAYS: '30',
      RATE_LIMIT_TABLE_NAME: RATE_TABLE,
    };
    const saved = { ...process.env };
    Object.assign(process.env, variables);
    const info = jest.spyOn(logger, 'info').mockImplementation(() => undefined);
    const context = { functionName: 'certflow-provider', awsRequestId: 'r-1', getRemainingTimeInMillis: () => 5000 };
    try {
      const csrs = [await makeCsr({ name: 'CN=entry-0001' }), await makeCsr({ name: 'CN=entry-0002' })];
      for (const csr of csrs) {
        const answer = await handler(request(csr.pem), context as unknown as Context);
        expect(Object.keys(answer)).toEqual(['certificatePem']);
        expectCertificateFor(csr.pem, answer.certificatePem, createPublicKey(issuing.privateKey), 30);
      }
      process.env.SIGNING_CA = 'changed after the cold start';
      await handler(request(csrs[0]!.pem), context as unknown as Context);
    } finally {
      process.env = saved;
      info.mockRestore();
    }
    expect(ssmMock).toHaveReceivedCommandTimes(cmd(GetParameterCommand), 3);
    expect(docMock).toHaveReceivedCommandWith(cmd(GetCommand), {
      TableName: CA_TABLE,
      Key: { caId },
      ConsistentRead: true,
    });
    expect(ebMock).toHaveReceivedCommandTimes(cmd(PutEventsCommand), 3);
  });

  it('gives every SDK client 1 s per request, 0.5 s to connect and one retry (AWS IoT waits 5 s)', async () => {
    for (const client of Object.values(providerClients())) {
      const { config } = client as unknown as {
        config: { maxAttempts: () => Promise<number>; requestHandler: { configProvider: Promise<object> } };
      };
      expect(await config.maxAttempts()).toBe(2);
      expect(await config.requestHandler.configProvider).toMatchObject({
        connectionTimeout: 500,
        requestTimeout: 1000,
      });
    }
  });
});

describe('CertificateProviderEnv', () => {
  it.each([
    ['error/AWS IoT as the CA', { SIGNING_CA: '{"type":"aws-iot"}' }, /certflow CA or an ACM Private CA/],
    ['error/not JSON', { SIGNING_CA: 'ca-1' }, /SIGNING_CA: not JSON/],
    ['error/bad PCA ARN', { SIGNING_CA: '{"type":"acm-pca","arn":"arn:aws:acm-pca:x"}' }, /SIGNING_CA/],
    ['error/no CA', {}, /SIGNING_CA/],
    ['error/zero days', { SIGNING_CA: '{"type":"certflow","caId":"ca-1"}', VALIDITY_DAYS: '0' }, /VALIDITY_DAYS/],
  ])('%s fails the cold start', (_, vars, message) => {
    expect(() => readEnv(CertificateProviderEnv, { EVENT_BUS_NAME: BUS, ...vars })).toThrow(message);
  });

  it('error/no RATE_LIMIT_TABLE_NAME fails the cold start', () => {
    expect(() =>
      readEnv(CertificateProviderEnv, { EVENT_BUS_NAME: BUS, SIGNING_CA: '{"type":"certflow","caId":"ca-1"}' }),
    ).toThrow(/RATE_LIMIT_TABLE_NAME/);
  });

  it('ok/defaults: SSM key store, 365 days, AWS\u2019s API rates', () => {
    expect(
      readEnv(CertificateProviderEnv, {
        EVENT_BUS_NAME: BUS,
        SIGNING_CA: '{"type":"certflow","caId":"ca-1"}',
        RATE_LIMIT_TABLE_NAME: RATE_TABLE,
      }),
    ).toEqual({
      EVENT_BUS_NAME: BUS,
      SIGNING_CA: { type: 'certflow', caId: 'ca-1' },
      CA_KEY_STORE: 'ssm',
      CA_TABLE_NAME: '',
      VALIDITY_DAYS: 365,
      RATE_LIMIT_TABLE_NAME: RATE_TABLE,
      API_RATES: {},
    });
  });
});
