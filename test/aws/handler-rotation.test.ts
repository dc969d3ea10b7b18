/**
 * The rotation task Lambdas (sfn-rotation-approve, -vend, -reply, -rollback, -ack) on AWS adapters over real SDK
 * clients whose `send` is mocked: the exact AWS IoT, IoT Data, S3, SSM and EventBridge commands, inputs and order of
 * each flow, called step by step as the ASL calls them, and each module's Lambda `handler` built from RotationEnv.
 */
import 'aws-sdk-client-mock-jest';
import {
  ACMPCAClient,
  DescribeCertificateAuthorityCommand,
  GetCertificateCommand,
  IssueCertificateCommand,
} from '@aws-sdk/client-acm-pca';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  DeleteCertificateCommand,
  DescribeCACertificateCommand,
  DescribeCertificateCommand,
  DescribeThingCommand,
  DetachPolicyCommand,
  DetachThingPrincipalCommand,
  IoTClient,
  ListAttachedPoliciesCommand,
  ListPrincipalThingsCommand,
  ListThingGroupsForThingCommand,
  ListThingPrincipalsCommand,
  RegisterCertificateCommand,
  RemoveThingFromThingGroupCommand,
  ResourceNotFoundException,
  ThrottlingException,
  UnauthorizedException,
  UpdateCertificateCommand,
  UpdateThingCommand,
} from '@aws-sdk/client-iot';
import { IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { GetParameterCommand, ParameterNotFound, SSMClient } from '@aws-sdk/client-ssm';
import type { Context } from 'aws-lambda';
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { awsPace } from '../../lambdas/adapters/aws/bulk-deps';
import { awsRotationDeps } from '../../lambdas/adapters/aws/rotation-deps';
import type { Pace } from '../../lambdas/core/pacing';
import { EVENT_SCHEMAS } from '../../lambdas/core/events';
import {
  createRootCa,
  issueFromCsr,
  parseCertificate,
  parseCsr,
  privateKeyToPem,
  type CreatedCa,
} from '../../lambdas/core/pki';
import type { RotationDeps } from '../../lambdas/core/rotation/service';
import { RotationEnv, readEnv } from '../../lambdas/handlers/env';
import * as ack from '../../lambdas/handlers/sfn-rotation-ack';
import * as approve from '../../lambdas/handlers/sfn-rotation-approve';
import * as reply from '../../lambdas/handlers/sfn-rotation-reply';
import * as rollback from '../../lambdas/handlers/sfn-rotation-rollback';
import * as vend from '../../lambdas/handlers/sfn-rotation-vend';
import { makeCsr } from '../helpers/csr';
import { TEST_CLIENT_CONFIG, testClients } from './aws-clients';
import { cmd, mockSdk } from './sdk-mock';

const iotMock = mockSdk(IoTClient);
const pcaMock = mockSdk(ACMPCAClient);
const iotDataMock = mockSdk(IoTDataPlaneClient);
const s3Mock = mockSdk(S3Client);
const ssmMock = mockSdk(SSMClient);
const ebMock = mockSdk(EventBridgeClient);
const ddbMock = mockSdk(DynamoDBDocumentClient);
const MOCKS = [iotMock, iotDataMock, s3Mock, ssmMock, ebMock, pcaMock, ddbMock];
const PCA_ARN = 'arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/11111111-2222-3333-4444-555555555555';

const config = TEST_CLIENT_CONFIG;

const THING = 'thing-7';
const GROUP = 'cdfRotateCertificates';
const POLICY = 'certflow-rotated';
const arnOf = (id: string) => `arn:aws:iot:eu-west-1:111122223333:cert/${id}`;
const OLD_ID = '0a'.repeat(32);
const OTHER_ID = '0b'.repeat(32);

let ca: CreatedCa;
beforeAll(async () => {
  ca = await createRootCa({ subject: { commonName: 'CDF Rotation CA' }, validity: { days: 3650 }, now: new Date() });
});

const ENV = {
  BUCKET_NAME: 'cdf-certificates',
  EVENT_BUS_NAME: 'cdf-bus',
  ROTATED_CERTIFICATE_POLICY_NAME: POLICY,
  RATE_LIMIT_TABLE_NAME: 'certflow-tasks',
};
const certflowCa = () => JSON.stringify({ type: 'certflow', caId: ca.certificate.id });
const depsFor = (env: Record<string, string> = {}, pace?: Pace): RotationDeps =>
  awsRotationDeps(
    readEnv(RotationEnv, { ...ENV, ROTATION_SIGNING_CA: certflowCa(), ...env }),
    testClients(),
    new IoTDataPlaneClient(config),
    ...(pace ? [pace] : []),
  );
/** A CSR of THING, the certificate ACM PCA (an EC P-256 CA, mocked) signs for it. */
async function pcaSigning() {
  const csr = await makeCsr({ name: `CN=${THING}` });
  const signed = await issueFromCsr(ca.issuer, parseCsr(csr.pem), {
    profile: 'device',
    validity: { days: 1095 },
    now: new Date(),
  });
  pcaMock.on(cmd(DescribeCertificateAuthorityCommand)).resolves({
    CertificateAuthority: { CertificateAuthorityConfiguration: { KeyAlgorithm: 'EC_prime256v1' } } as never,
  });
  return { csr, signed };
}
/** The rate schedule items the calls took a slot of, in order (DynamoRateLimiter's conditional UpdateItem). */
const slots = () => ddbMock.commandCalls(cmd(UpdateCommand)).map((c) => (c.args[0].input.Key as { pk: string }).pk);

/** AWS IoT as a thing in the rotation group with one old certificate (policy fleet-a) sees it. */
function installIot(): void {
  iotMock.on(cmd(DescribeThingCommand)).resolves({
    thingName: THING,
    thingArn: `arn:aws:iot:eu-west-1:111122223333:thing/${THING}`,
    attributes: { status: 'rotating' },
  });
  iotMock.on(cmd(ListThingGroupsForThingCommand)).resolves({
    thingGroups: [
      { groupName: 'fleet', groupArn: 'arn:g/fleet' },
      { groupName: GROUP, groupArn: `arn:g/${GROUP}` },
    ],
  });
  iotMock.on(cmd(DescribeCACertificateCommand)).resolves({
    certificateDescription: { certificateId: ca.certificate.id, certificatePem: ca.certificate.pem },
  });
  iotMock.on(cmd(DescribeCertificateCommand)).callsFake((input: { certificateId: string }) => {
    if (input.certificateId !== OLD_ID && input.certificateId !== OTHER_ID) {
      throw new ResourceNotFoundException({ message: 'no such certificate', $metadata: {} });
    }
    return {
      certificateDescription: {
        certificateId: input.certificateId,
        certificateArn: arnOf(input.certificateId),
        status: 'ACTIVE',
      },
    };
  });
  iotMock.on(cmd(ListPrincipalThingsCommand)).resolves({ things: [THING] });
  iotMock.on(cmd(ListAttachedPoliciesCommand)).resolves({ policies: [{ policyName: 'fleet-a' }] });
  iotMock.on(cmd(RegisterCertificateCommand)).callsFake((input: { certificatePem: string }) => {
    const id = parseCertificate(input.certificatePem).id;
    return { certificateId: id, certificateArn: arnOf(id) };
  });
  for (const command of [
    AttachThingPrincipalCommand,
    AttachPolicyCommand,
    UpdateThingCommand,
    UpdateCertificateCommand,
    DetachThingPrincipalCommand,
    DetachPolicyCommand,
    DeleteCertificateCommand,
    RemoveThingFromThingGroupCommand,
  ]) {
    iotMock.on(cmd(command)).resolves({});
  }
}

beforeEach(() => {
  for (const mock of MOCKS) mock.reset();
  installIot();
  ssmMock.on(cmd(GetParameterCommand)).callsFake((input: { Name: string }) => {
    if (input.Name === `cdf-ca-key-${ca.certificate.id}`)
      return { Parameter: { Value: privateKeyToPem(ca.privateKey) } };
    throw new ParameterNotFound({ message: 'not found', $metadata: {} });
  });
  ebMock.on(cmd(PutEventsCommand)).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'e-1' }] });
  iotDataMock.on(cmd(PublishCommand)).resolves({});
  // the shared rate schedule, idle: every slot is free at once
  ddbMock.on(cmd(UpdateCommand)).resolves({});
});

/** The AWS IoT calls, in order: command name and input. */
const iotCalls = () =>
  iotMock.calls().map((c) => {
    const command = c.args[0] as unknown as { constructor: { name: string }; input: Record<string, unknown> };
    return [command.constructor.name.replace(/Command$/, ''), command.input] as const;
  });
const iotCallNames = () => iotCalls().map(([name]) => name);
const published = () =>
  iotDataMock.commandCalls(cmd(PublishCommand)).map((c) => {
    const input = c.args[0].input;
    return {
      topic: input.topic,
      qos: input.qos,
      payload: JSON.parse(Buffer.from(input.payload as Uint8Array).toString('utf8')) as Record<string, unknown>,
    };
  });
const events = () =>
  ebMock.commandCalls(cmd(PutEventsCommand)).flatMap((c) =>
    (c.args[0].input.Entries ?? []).map((e) => ({
      bus: e.EventBusName,
      detailType: e.DetailType,
      detail: JSON.parse(e.Detail ?? '{}') as Record<string, unknown>,
    })),
  );

/** What Step Functions puts in a Catch's ResultPath for a Lambda error (Cause: the Lambda error as JSON). */
async function caught(run: Promise<unknown>): Promise<{ Error: string; Cause: string }> {
  const error = (await run.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e,
  )) as Error;
  return { Error: error.name, Cause: JSON.stringify({ errorType: error.name, errorMessage: error.message }) };
}

describe('rotation get with a CSR', () => {
  it('ApproveDevice → SignCertificate → ReplyAccepted: the exact IoT calls in CDF order, then Publish QoS 1', async () => {
    const deps = depsFor();
    const csr = await makeCsr({ name: `CN=${THING}` });
    const input = { deviceId: THING, action: 'get', certId: OLD_ID, csr: csr.pem, previousCertificateId: OLD_ID };

    await expect(approve.createHandler(deps)(input)).resolves.toMatchObject({ deviceId: THING });
    const vended = await vend.createHandler(deps)(input);
    await reply.createHandler(deps)({ deviceId: THING, action: 'get', outcome: 'accepted', reply: vended.reply });

    const certificate = parseCertificate((vended.reply as { certificate: string }).certificate);
    const newArn = arnOf(certificate.id);
    expect(iotCalls()).toEqual([
      ['DescribeThing', { thingName: THING }],
      ['ListThingGroupsForThing', { thingName: THING }],
      ['DescribeCertificate', { certificateId: OLD_ID }],
      ['ListPrincipalThings', { principal: arnOf(OLD_ID) }],
      ['ListAttachedPolicies', { target: arnOf(OLD_ID), recursive: false }],
      ['DescribeCACertificate', { certificateId: ca.certificate.id }],
      [
        'RegisterCertificate',
        { certificatePem: certificate.pem, caCertificatePem: ca.certificate.pem, status: 'ACTIVE' },
      ],
      ['AttachThingPrincipal', { thingName: THING, principal: newArn }],
      ['AttachPolicy', { policyName: 'fleet-a', target: newArn }],
      ['UpdateThing', { thingName: THING, attributePayload: { attributes: { status: 'active' }, merge: true } }],
    ]);
    expect(vended).toEqual({
      deviceId: THING,
      action: 'get',
      mode: 'csr',
      certificateId: certificate.id,
      certificateArn: newArn,
      newlyActivated: true,
      reply: { deviceId: THING, action: 'get', certificateId: certificate.id, certificate: certificate.pem },
    });
    expect(published()).toEqual([{ topic: `cdf/certificates/${THING}/get/accepted`, qos: 1, payload: vended.reply }]);
    expect(certificate.commonName).toBe(THING);
    expect(certificate.issuer).toBe(ca.certificate.subject);
    expect(Math.round((certificate.notAfter.getTime() - Date.now()) / 86_400_000)).toBe(1095);

    const [issued] = events();
    expect(issued).toMatchObject({ bus: 'cdf-bus', detailType: 'Certificate Issued' });
    expect(EVENT_SCHEMAS['Certificate Issued'].parse(issued!.detail)).toMatchObject({
      origin: 'rotation',
      kind: 'device',
      thingName: THING,
      issuerId: ca.certificate.id,
    });
    expect(JSON.stringify(issued!.detail)).not.toMatch(/PRIVATE KEY|BEGIN/);
  });

  it('without a previous certificate attaches the configured policy; ROTATION_REGISTER_WITH_CA=false registers without CA', async () => {
    const deps = depsFor({ ROTATION_REGISTER_WITH_CA: 'false', ROTATION_REQUIRE_THING: 'false' });
    const csr = await makeCsr({ name: `CN=${THING}` });
    const input = { deviceId: THING, action: 'get', csr: csr.pem };
    iotMock.on(cmd(RegisterCertificateCommand)).rejects(new Error('RegisterCertificate must not be called'));
    const { RegisterCertificateWithoutCACommand } = await import('@aws-sdk/client-iot');
    iotMock.on(cmd(RegisterCertificateWithoutCACommand)).callsFake((i: { certificatePem: string }) => {
      const id = parseCertificate(i.certificatePem).id;
      return { certificateId: id, certificateArn: arnOf(id) };
    });
    await approve.createHandler(deps)(input);
    const vended = await vend.createHandler(deps)(input);
    expect(iotCallNames()).toEqual([
      'ListThingGroupsForThing',
      'DescribeCACertificate',
      'RegisterCertificateWithoutCA',
      'AttachThingPrincipal',
      'AttachPolicy',
      'UpdateThing',
    ]);
    expect(iotMock).toHaveReceivedCommandWith(cmd(AttachPolicyCommand), {
      policyName: POLICY,
      target: vended.certificateArn,
    });
  });

  it.each([
    ['a CSR for another thing', { csrName: 'CN=thing-8' }, 'CSR_CN_MISMATCH'],
    ['an unknown previous certificate', { previousCertificateId: 'ff'.repeat(32) }, 'PREVIOUS_CERTIFICATE_NOT_FOUND'],
    [
      'a previous certificate of another thing',
      { previousCertificateId: OTHER_ID, holders: ['thing-9'] },
      'PREVIOUS_CERTIFICATE_NOT_ATTACHED',
    ],
  ] as const)('error/%s: rejected before anything is signed or registered', async (_, setup, reason) => {
    const deps = depsFor();
    const s = setup as { csrName?: string; previousCertificateId?: string; holders?: string[] };
    if (s.holders) iotMock.on(cmd(ListPrincipalThingsCommand)).resolves({ things: s.holders });
    const csr = await makeCsr({ name: s.csrName ?? `CN=${THING}` });
    const input = {
      deviceId: THING,
      action: 'get',
      csr: csr.pem,
      ...(s.previousCertificateId ? { previousCertificateId: s.previousCertificateId } : {}),
    };
    const error = await caught(vend.createHandler(deps)(input));
    expect(error.Error).toBe('RotationRejectedError');
    await reply.createHandler(deps)({ deviceId: THING, action: 'get', outcome: 'rejected', error });
    expect(published()).toEqual([
      { topic: `cdf/certificates/${THING}/get/rejected`, qos: 1, payload: { message: reason } },
    ]);
    expect(iotCallNames()).not.toContain('RegisterCertificate');
    expect(events()).toEqual([]);
  });

  it('undoes a half-done rotation when AttachPolicy is refused: detach, INACTIVE, delete, then UNABLE_TO_ATTACH_POLICY', async () => {
    const deps = depsFor();
    iotMock.on(cmd(AttachPolicyCommand)).rejects(new UnauthorizedException({ message: 'no', $metadata: {} }));
    const csr = await makeCsr({ name: `CN=${THING}` });
    const error = await caught(vend.createHandler(deps)({ deviceId: THING, action: 'get', csr: csr.pem }));
    expect(error.Error).toBe('RotationRejectedError');
    expect(JSON.parse(error.Cause)).toMatchObject({
      errorMessage: expect.stringMatching(/^UNABLE_TO_ATTACH_POLICY: /),
    });
    const registered = iotMock.commandCalls(cmd(RegisterCertificateCommand))[0]!.args[0].input;
    const newId = parseCertificate(registered.certificatePem!).id;
    expect(iotCalls().slice(-6)).toEqual([
      ['RegisterCertificate', expect.objectContaining({ status: 'ACTIVE' })],
      ['AttachThingPrincipal', { thingName: THING, principal: arnOf(newId) }],
      ['AttachPolicy', { policyName: POLICY, target: arnOf(newId) }],
      ['DetachThingPrincipal', { thingName: THING, principal: arnOf(newId) }],
      ['UpdateCertificate', { certificateId: newId, newStatus: 'INACTIVE' }],
      ['DeleteCertificate', { certificateId: newId, forceDelete: false }],
    ]);
    expect(events()).toEqual([]);
  });

  it('undoes the half-done work and rethrows a throttled call unchanged, for the ASL to retry', async () => {
    const deps = depsFor();
    iotMock.on(cmd(UpdateThingCommand)).rejects(new ThrottlingException({ message: 'Rate exceeded', $metadata: {} }));
    const csr = await makeCsr({ name: `CN=${THING}` });
    const error = await caught(vend.createHandler(deps)({ deviceId: THING, action: 'get', csr: csr.pem }));
    expect(error.Error).toBe('ThrottlingException');
    expect(iotCallNames().slice(-7)).toEqual([
      'AttachThingPrincipal',
      'AttachPolicy',
      'UpdateThing',
      'DetachPolicy',
      'DetachThingPrincipal',
      'UpdateCertificate',
      'DeleteCertificate',
    ]);
  });

  it('signs with ACM Private CA when ROTATION_SIGNING_CA is one: no CA key is loaded, the chain’s CA registers the certificate', async () => {
    const deps = depsFor({ ROTATION_SIGNING_CA: JSON.stringify({ type: 'acm-pca', arn: PCA_ARN }) });
    const { csr, signed } = await pcaSigning();
    pcaMock.on(cmd(IssueCertificateCommand)).resolves({ CertificateArn: `${PCA_ARN}/certificate/abc` });
    pcaMock.on(cmd(GetCertificateCommand)).resolves({ Certificate: signed.pem, CertificateChain: ca.certificate.pem });

    const vended = await vend.createHandler(deps)({ deviceId: THING, action: 'get', csr: csr.pem });

    const [issue] = pcaMock.commandCalls(cmd(IssueCertificateCommand)).map((c) => c.args[0].input);
    expect(issue).toMatchObject({
      CertificateAuthorityArn: PCA_ARN,
      SigningAlgorithm: 'SHA256WITHECDSA',
      Validity: { Type: 'DAYS', Value: 1095 },
      IdempotencyToken: expect.stringMatching(/^[0-9a-f]{36}$/),
    });
    // rotation keeps PCA's EndEntityCertificate/V1 (the provider asks for the client-auth template)
    expect(issue).not.toHaveProperty('TemplateArn');
    expect(Buffer.from(issue!.Csr as Uint8Array).toString('utf8')).toContain('BEGIN CERTIFICATE REQUEST');
    expect(ssmMock.calls()).toHaveLength(0);
    expect(iotCalls()).toEqual([
      ['RegisterCertificate', { certificatePem: signed.pem, caCertificatePem: ca.certificate.pem, status: 'ACTIVE' }],
      ['AttachThingPrincipal', { thingName: THING, principal: arnOf(signed.id) }],
      ['AttachPolicy', { policyName: POLICY, target: arnOf(signed.id) }],
      ['UpdateThing', { thingName: THING, attributePayload: { attributes: { status: 'active' }, merge: true } }],
    ]);
    expect(vended.certificateId).toBe(signed.id);
    expect(events()[0]!.detail).toMatchObject({ issuerId: PCA_ARN, origin: 'rotation' });
  });

  it('RollBackCertificate (reply not delivered): detaches policies and thing, INACTIVE, deletes', async () => {
    const deps = depsFor();
    const id = OTHER_ID;
    await expect(
      rollback.createHandler(deps)({ deviceId: THING, mode: 'csr', certificateId: id, certificateArn: arnOf(id) }),
    ).resolves.toEqual({ deviceId: THING, certificateId: id, rolledBack: true });
    expect(iotCalls()).toEqual([
      ['DescribeCertificate', { certificateId: id }],
      ['ListAttachedPolicies', { target: arnOf(id), recursive: false }],
      ['DetachPolicy', { policyName: 'fleet-a', target: arnOf(id) }],
      ['DetachThingPrincipal', { thingName: THING, principal: arnOf(id) }],
      ['UpdateCertificate', { certificateId: id, newStatus: 'INACTIVE' }],
      ['DeleteCertificate', { certificateId: id, forceDelete: false }],
    ]);
  });
});

describe('rotation get, paced (issue 7)', () => {
  const throttled = () => new ThrottlingException({ message: 'Rate exceeded', $metadata: {} });
  let sleeps: number[];
  const testPace = () => {
    sleeps = [];
    return awsPace({ API_RATES: {}, TASK_TABLE_NAME: 'certflow-tasks' }, testClients(), {
      retry: { sleep: async (ms) => void sleeps.push(ms), random: () => 0.5 },
    });
  };

  it('takes a slot of the shared schedule (RATE_LIMIT_TABLE_NAME) before each quota-bound AWS IoT call', async () => {
    const deps = depsFor();
    const csr = await makeCsr({ name: `CN=${THING}` });
    await vend.createHandler(deps)({ deviceId: THING, action: 'get', csr: csr.pem });
    expect(slots()).toEqual(['rate#iot:RegisterCertificate', 'rate#iot:AttachThingPrincipal', 'rate#iot:AttachPolicy']);
    expect(ddbMock.commandCalls(cmd(UpdateCommand)).map((c) => c.args[0].input.TableName)).toEqual([
      'certflow-tasks',
      'certflow-tasks',
      'certflow-tasks',
    ]);
  });

  it('retries throttled RegisterCertificate, AttachThingPrincipal and AttachPolicy with jittered backoff, on a new slot each', async () => {
    const deps = depsFor({}, testPace());
    iotMock
      .on(cmd(RegisterCertificateCommand))
      .rejectsOnce(throttled())
      .callsFake((input: { certificatePem: string }) => {
        const id = parseCertificate(input.certificatePem).id;
        return { certificateId: id, certificateArn: arnOf(id) };
      });
    iotMock.on(cmd(AttachThingPrincipalCommand)).rejectsOnce(throttled()).resolves({});
    iotMock.on(cmd(AttachPolicyCommand)).rejectsOnce(throttled()).rejectsOnce(throttled()).resolves({});
    const csr = await makeCsr({ name: `CN=${THING}` });

    const vended = await vend.createHandler(deps)({ deviceId: THING, action: 'get', csr: csr.pem });

    expect(vended.mode).toBe('csr');
    expect(iotCallNames().filter((n) => !n.startsWith('Describe'))).toEqual([
      'RegisterCertificate',
      'RegisterCertificate',
      'AttachThingPrincipal',
      'AttachThingPrincipal',
      'AttachPolicy',
      'AttachPolicy',
      'AttachPolicy',
      'UpdateThing',
    ]);
    expect(slots()).toEqual([
      'rate#iot:RegisterCertificate',
      'rate#iot:RegisterCertificate',
      'rate#iot:AttachThingPrincipal',
      'rate#iot:AttachThingPrincipal',
      'rate#iot:AttachPolicy',
      'rate#iot:AttachPolicy',
      'rate#iot:AttachPolicy',
    ]);
    // full jitter: random() × min(5000, 100 × 2^retry)
    expect(sleeps).toEqual([50, 50, 50, 100]);
  });

  it('gives a throttled call up after the attempts (8) and undoes the half-done rotation, for the ASL to retry', async () => {
    const deps = depsFor({}, testPace());
    iotMock.on(cmd(AttachPolicyCommand)).rejects(throttled());
    const csr = await makeCsr({ name: `CN=${THING}` });
    const error = await caught(vend.createHandler(deps)({ deviceId: THING, action: 'get', csr: csr.pem }));
    expect(error.Error).toBe('ThrottlingException');
    expect(iotMock).toHaveReceivedCommandTimes(cmd(AttachPolicyCommand), 8);
    expect(sleeps).toHaveLength(7);
    expect(iotCallNames().slice(-3)).toEqual(['DetachThingPrincipal', 'UpdateCertificate', 'DeleteCertificate']);
  });

  it('paces ACM PCA IssueCertificate and GetCertificate and retries a throttled IssueCertificate', async () => {
    const deps = depsFor({ ROTATION_SIGNING_CA: JSON.stringify({ type: 'acm-pca', arn: PCA_ARN }) }, testPace());
    const { csr, signed } = await pcaSigning();
    pcaMock
      .on(cmd(IssueCertificateCommand))
      .rejectsOnce(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }))
      .resolves({ CertificateArn: `${PCA_ARN}/certificate/abc` });
    pcaMock.on(cmd(GetCertificateCommand)).resolves({ Certificate: signed.pem, CertificateChain: ca.certificate.pem });

    const vended = await vend.createHandler(deps)({ deviceId: THING, action: 'get', csr: csr.pem });

    expect(vended.certificateId).toBe(signed.id);
    expect(pcaMock).toHaveReceivedCommandTimes(cmd(IssueCertificateCommand), 2);
    const [first, second] = pcaMock.commandCalls(cmd(IssueCertificateCommand)).map((c) => c.args[0].input);
    // the retry carries the same idempotency token: PCA issues (and bills) once
    expect(second!.IdempotencyToken).toBe(first!.IdempotencyToken);
    expect(slots().slice(0, 3)).toEqual([
      'rate#acm-pca:IssueCertificate',
      'rate#acm-pca:IssueCertificate',
      'rate#acm-pca:GetCertificate',
    ]);
    expect(slots().slice(3)).toEqual([
      'rate#iot:RegisterCertificate',
      'rate#iot:AttachThingPrincipal',
      'rate#iot:AttachPolicy',
    ]);
  });
});

describe('rotation get of a pre-created package', () => {
  // a pre-created package's certificate waits INACTIVE until its device asks
  beforeEach(() => {
    iotMock.on(cmd(DescribeCertificateCommand), { certificateId: OLD_ID }).resolves({
      certificateDescription: { certificateId: OLD_ID, certificateArn: arnOf(OLD_ID), status: 'INACTIVE' },
    });
  });

  it('HeadObject → UpdateCertificate ACTIVE → AttachThingPrincipal → presign → UpdateThing → location', async () => {
    const deps = depsFor();
    s3Mock.on(cmd(HeadObjectCommand)).resolves({ ContentLength: 2048, Metadata: { certificateid: OLD_ID } });
    const input = { deviceId: THING, action: 'get' };
    await approve.createHandler(deps)(input);
    const vended = await vend.createHandler(deps)(input);
    await reply.createHandler(deps)({ deviceId: THING, action: 'get', outcome: 'accepted', reply: vended.reply });
    expect(s3Mock).toHaveReceivedCommandWith(cmd(HeadObjectCommand), {
      Bucket: 'cdf-certificates',
      Key: `certificates/${THING}.zip`,
    });
    expect(iotCalls()).toEqual([
      ['DescribeThing', { thingName: THING }],
      ['ListThingGroupsForThing', { thingName: THING }],
      ['DescribeCertificate', { certificateId: OLD_ID }],
      ['UpdateCertificate', { certificateId: OLD_ID, newStatus: 'ACTIVE' }],
      ['AttachThingPrincipal', { thingName: THING, principal: arnOf(OLD_ID) }],
      ['UpdateThing', { thingName: THING, attributePayload: { attributes: { status: 'active' }, merge: true } }],
    ]);
    const [message] = published();
    expect(message!.topic).toBe(`cdf/certificates/${THING}/get/accepted`);
    const location = new URL((message!.payload as { location: string }).location);
    expect(location.hostname).toBe('cdf-certificates.s3.eu-west-1.amazonaws.com');
    expect(location.pathname).toBe(`/certificates/${THING}.zip`);
    expect(location.searchParams.get('X-Amz-Expires')).toBe('300');
    expect(message!.payload).toEqual({ deviceId: THING, action: 'get', location: location.toString() });
  });

  it.each([
    ['no package', undefined, 'CERTIFICATE_NOT_FOUND'],
    ['a package without certificateid metadata', {}, 'MISSING_CERTIFICATE_ID'],
    ['a package naming an unknown certificate', { certificateid: 'ee'.repeat(32) }, 'CERTIFICATE_NOT_FOUND'],
  ] as const)('error/%s: rejected, nothing activated', async (_, metadata, reason) => {
    const deps = depsFor();
    if (metadata) s3Mock.on(cmd(HeadObjectCommand)).resolves({ ContentLength: 1, Metadata: metadata });
    else
      s3Mock
        .on(cmd(HeadObjectCommand))
        .rejects(Object.assign(new Error('Not Found'), { name: 'NotFound', $metadata: { httpStatusCode: 404 } }));
    const error = await caught(vend.createHandler(deps)({ deviceId: THING, action: 'get' }));
    expect(JSON.parse(error.Cause).errorMessage).toMatch(new RegExp(`^${reason}: `));
    expect(iotCallNames()).not.toContain('UpdateCertificate');
  });

  it('sets the certificate INACTIVE again when AttachThingPrincipal fails (UNABLE_TO_ATTACH_CERTIFICATE)', async () => {
    const deps = depsFor();
    s3Mock.on(cmd(HeadObjectCommand)).resolves({ ContentLength: 1, Metadata: { certificateid: OLD_ID } });
    iotMock.on(cmd(AttachThingPrincipalCommand)).rejects(new UnauthorizedException({ message: 'no', $metadata: {} }));
    const error = await caught(vend.createHandler(deps)({ deviceId: THING, action: 'get' }));
    expect(JSON.parse(error.Cause).errorMessage).toMatch(/^UNABLE_TO_ATTACH_CERTIFICATE: /);
    expect(iotCalls()).toEqual([
      ['DescribeCertificate', { certificateId: OLD_ID }],
      ['UpdateCertificate', { certificateId: OLD_ID, newStatus: 'ACTIVE' }],
      ['AttachThingPrincipal', { thingName: THING, principal: arnOf(OLD_ID) }],
      ['UpdateCertificate', { certificateId: OLD_ID, newStatus: 'INACTIVE' }],
    ]);
  });
});

describe('rotation get of a package vended before (the device asks again)', () => {
  it('leaves the ACTIVE certificate as it is when a later step fails, and its rollback does nothing', async () => {
    const deps = depsFor();
    s3Mock.on(cmd(HeadObjectCommand)).resolves({ ContentLength: 1, Metadata: { certificateid: OLD_ID } });
    iotMock.on(cmd(UpdateThingCommand)).rejects(new UnauthorizedException({ message: 'no', $metadata: {} }));
    const error = await caught(vend.createHandler(deps)({ deviceId: THING, action: 'get' }));
    expect(JSON.parse(error.Cause).errorMessage).toMatch(/^UNABLE_TO_UPDATE_ASSET_STATUS: /);
    expect(iotCallNames()).toEqual(['DescribeCertificate', 'UpdateCertificate', 'AttachThingPrincipal', 'UpdateThing']);
    iotMock.resetHistory();
    await expect(
      rollback.createHandler(deps)({
        deviceId: THING,
        mode: 'package',
        certificateId: OLD_ID,
        certificateArn: arnOf(OLD_ID),
        newlyActivated: false,
      }),
    ).resolves.toEqual({ deviceId: THING, certificateId: OLD_ID, rolledBack: false });
    expect(iotMock.calls()).toHaveLength(0);
  });
});

describe('rotation approval', () => {
  it('error/a thing outside the rotation group: DEVICE_NOT_WHITELISTED on get/rejected', async () => {
    const deps = depsFor();
    iotMock.on(cmd(ListThingGroupsForThingCommand)).resolves({ thingGroups: [{ groupName: 'fleet' }] });
    const error = await caught(approve.createHandler(deps)({ deviceId: THING, action: 'get' }));
    await reply.createHandler(deps)({ deviceId: THING, action: 'get', outcome: 'rejected', error });
    expect(iotCallNames()).toEqual(['DescribeThing', 'ListThingGroupsForThing']);
    expect(published()).toEqual([
      { topic: `cdf/certificates/${THING}/get/rejected`, qos: 1, payload: { message: 'DEVICE_NOT_WHITELISTED' } },
    ]);
  });

  it('error/an unknown thing: DEVICE_NOT_WHITELISTED without asking for its groups', async () => {
    const deps = depsFor();
    iotMock.on(cmd(DescribeThingCommand)).rejects(new ResourceNotFoundException({ message: 'no', $metadata: {} }));
    const error = await caught(approve.createHandler(deps)({ deviceId: THING, action: 'ack' }));
    expect(JSON.parse(error.Cause).errorMessage).toMatch(/^DEVICE_NOT_WHITELISTED: /);
    expect(iotCallNames()).toEqual(['DescribeThing']);
  });

  it('error/a registry failure: UNABLE_TO_CHECK_WHITELIST; a throttled one is rethrown for Retry', async () => {
    const deps = depsFor();
    iotMock.on(cmd(DescribeThingCommand)).rejects(new UnauthorizedException({ message: 'no', $metadata: {} }));
    const error = await caught(approve.createHandler(deps)({ deviceId: THING, action: 'get' }));
    expect(JSON.parse(error.Cause).errorMessage).toMatch(/^UNABLE_TO_CHECK_WHITELIST: /);
    iotMock.on(cmd(DescribeThingCommand)).rejects(new ThrottlingException({ message: 'slow', $metadata: {} }));
    expect((await caught(approve.createHandler(deps)({ deviceId: THING, action: 'get' }))).Error).toBe(
      'ThrottlingException',
    );
  });

  it('error/a malformed rule input: INVALID_REQUEST; an exhausted transient failure: ROTATION_FAILED', async () => {
    const deps = depsFor();
    const error = await caught(approve.createHandler(deps)({ deviceId: 'a/b', action: 'get' }));
    expect(JSON.parse(error.Cause).errorMessage).toMatch(/^INVALID_REQUEST: /);
    await reply.createHandler(deps)({
      deviceId: THING,
      action: 'ack',
      outcome: 'rejected',
      error: { Error: 'ThrottlingException', Cause: '{"errorMessage":"Rate exceeded"}' },
    });
    expect(published()).toEqual([
      { topic: `cdf/certificates/${THING}/ack/rejected`, qos: 1, payload: { message: 'ROTATION_FAILED' } },
    ]);
    expect(iotMock.calls()).toHaveLength(0);
  });
});

describe('rotation ack', () => {
  const NEW_ID = '1c'.repeat(32);

  it('with deletion on: every other principal detached and, held by no thing, its policies detached, INACTIVE, deleted; then the group', async () => {
    const deps = depsFor({ DELETE_PREVIOUS_CERTIFICATE: 'true' });
    iotMock.on(cmd(ListThingPrincipalsCommand)).resolves({ principals: [arnOf(OLD_ID), arnOf(NEW_ID)] });
    iotMock.on(cmd(ListPrincipalThingsCommand)).resolves({ things: [] });
    const input = { deviceId: THING, action: 'ack', certId: NEW_ID };
    await approve.createHandler(deps)(input);
    const result = await ack.createHandler(deps)(input);
    await reply.createHandler(deps)({ deviceId: THING, action: 'ack', outcome: 'accepted', reply: result.reply });

    expect(iotCalls()).toEqual([
      ['DescribeThing', { thingName: THING }],
      ['ListThingGroupsForThing', { thingName: THING }],
      ['ListThingPrincipals', { thingName: THING }],
      ['DetachThingPrincipal', { thingName: THING, principal: arnOf(OLD_ID) }],
      ['ListPrincipalThings', { principal: arnOf(OLD_ID) }],
      ['ListAttachedPolicies', { target: arnOf(OLD_ID), recursive: false }],
      ['DetachPolicy', { policyName: 'fleet-a', target: arnOf(OLD_ID) }],
      ['UpdateCertificate', { certificateId: OLD_ID, newStatus: 'INACTIVE' }],
      ['DeleteCertificate', { certificateId: OLD_ID, forceDelete: false }],
      ['RemoveThingFromThingGroup', { thingName: THING, thingGroupName: GROUP }],
    ]);
    expect(published()).toEqual([
      { topic: `cdf/certificates/${THING}/ack/accepted`, qos: 1, payload: { message: 'OK' } },
    ]);
    const [rotated] = events();
    expect(rotated!.detailType).toBe('Certificate Rotated');
    expect(EVENT_SCHEMAS['Certificate Rotated'].parse(rotated!.detail)).toMatchObject({
      thingName: THING,
      certificateId: NEW_ID,
      previousCertificateIds: [OLD_ID],
      deletedCertificateIds: [OLD_ID],
      thingGroupName: GROUP,
    });
  });

  it('with deletion on and previousCertificateId: only that one; kept when another thing still holds it', async () => {
    const deps = depsFor({ DELETE_PREVIOUS_CERTIFICATE: 'true' });
    iotMock
      .on(cmd(ListPrincipalThingsCommand))
      .resolvesOnce({ things: [THING, 'thing-gateway'] })
      .resolves({ things: ['thing-gateway'] });
    const result = await ack.createHandler(deps)({
      deviceId: THING,
      action: 'ack',
      certId: NEW_ID,
      previousCertificateId: OLD_ID,
    });
    expect(iotCalls()).toEqual([
      ['DescribeCertificate', { certificateId: OLD_ID }],
      ['ListPrincipalThings', { principal: arnOf(OLD_ID) }],
      ['DetachThingPrincipal', { thingName: THING, principal: arnOf(OLD_ID) }],
      ['ListPrincipalThings', { principal: arnOf(OLD_ID) }],
      ['RemoveThingFromThingGroup', { thingName: THING, thingGroupName: GROUP }],
    ]);
    expect(result).toMatchObject({ previousCertificateIds: [OLD_ID], deletedCertificateIds: [] });
  });

  it('error/deletion on, previousCertificateId of another thing or of none: PREVIOUS_CERTIFICATE_NOT_ATTACHED, nothing touched', async () => {
    const deps = depsFor({ DELETE_PREVIOUS_CERTIFICATE: 'true' });
    for (const holders of [['thing-9'], []]) {
      iotMock.resetHistory();
      iotMock.on(cmd(ListPrincipalThingsCommand)).resolves({ things: holders });
      const error = await caught(
        ack.createHandler(deps)({ deviceId: THING, action: 'ack', certId: NEW_ID, previousCertificateId: OTHER_ID }),
      );
      expect(JSON.parse(error.Cause).errorMessage).toMatch(/^PREVIOUS_CERTIFICATE_NOT_ATTACHED: /);
      expect(iotCallNames()).toEqual(['DescribeCertificate', 'ListPrincipalThings']);
    }
    expect(events()).toEqual([]);
  });

  it('with deletion off (the default): only RemoveThingFromThingGroup', async () => {
    const deps = depsFor();
    const result = await ack.createHandler(deps)({ deviceId: THING, action: 'ack', certId: NEW_ID });
    expect(iotCalls()).toEqual([['RemoveThingFromThingGroup', { thingName: THING, thingGroupName: GROUP }]]);
    expect(result.reply).toEqual({ message: 'OK' });
  });

  it.each([
    ['no certificate id at all', {}, 'MISSING_CERTIFICATE_ID', []],
    [
      'a certificate not attached to the thing',
      { certId: 'dd'.repeat(32) },
      'CERTIFICATE_NOT_ATTACHED',
      ['ListThingPrincipals'],
    ],
  ] as const)(
    'error/deletion on, %s: rejected, nothing detached, still in the group',
    async (_, extra, reason, calls) => {
      const deps = depsFor({ DELETE_PREVIOUS_CERTIFICATE: 'true' });
      iotMock.on(cmd(ListThingPrincipalsCommand)).resolves({ principals: [arnOf(OLD_ID)] });
      const error = await caught(ack.createHandler(deps)({ deviceId: THING, action: 'ack', ...extra }));
      expect(JSON.parse(error.Cause).errorMessage).toMatch(new RegExp(`^${reason}: `));
      expect(iotCallNames()).toEqual(calls);
      expect(events()).toEqual([]);
    },
  );
});

describe('Lambda handlers', () => {
  const context = {
    functionName: 'certflow-rotation',
    awsRequestId: 'c6af9ac6-7b61-11e6-9a41-93e812345678',
    getRemainingTimeInMillis: () => 30_000,
  } as unknown as Context;
  const saved: Record<string, string | undefined> = {};
  const variables = {
    BUCKET_NAME: 'prod-certs',
    EVENT_BUS_NAME: 'prod-bus',
    ROTATION_TOPIC_PREFIX: 'acme/rotation',
    RATE_LIMIT_TABLE_NAME: 'prod-tasks',
  };
  beforeEach(() => {
    for (const [k, v] of Object.entries(variables)) {
      saved[k] = process.env[k];
      process.env[k] = v;
    }
  });
  afterEach(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it('build their deps from RotationEnv alone: the configured prefix, the default group', async () => {
    await expect(approve.handler({ deviceId: THING, action: 'get' }, context)).resolves.toMatchObject({
      deviceId: THING,
    });
    await reply.handler({ deviceId: THING, action: 'ack', outcome: 'accepted', reply: { message: 'OK' } }, context);
    await ack.handler({ deviceId: THING, action: 'ack' }, context);
    expect(published().map((p) => p.topic)).toEqual([`acme/rotation/${THING}/ack/accepted`]);
    expect(iotMock).toHaveReceivedCommandWith(cmd(RemoveThingFromThingGroupCommand), {
      thingName: THING,
      thingGroupName: GROUP,
    });
    expect(events().map((e) => e.bus)).toEqual(['prod-bus']);
    for (const h of [vend.handler, rollback.handler]) expect(typeof h).toBe('function');
  });

  it('fail the cold start on a bad environment', async () => {
    process.env.ROTATION_VALIDITY_DAYS = 'many';
    try {
      await expect(rollback.handler({}, context)).rejects.toThrow(/invalid environment: ROTATION_VALIDITY_DAYS/);
    } finally {
      delete process.env.ROTATION_VALIDITY_DAYS;
    }
  });
});
