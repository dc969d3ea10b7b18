import 'aws-sdk-client-mock-jest';
import {
  AddThingToThingGroupCommand,
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreatePolicyCommand,
  CreateThingCommand,
  DeleteCertificateCommand,
  DescribeCertificateCommand,
  DescribeThingCommand,
  DetachPolicyCommand,
  DetachThingPrincipalCommand,
  GetPolicyCommand,
  IoTClient,
  ListAttachedPoliciesCommand,
  ListPrincipalThingsCommand,
  ListThingGroupsForThingCommand,
  ListThingPrincipalsCommand,
  RegisterCertificateCommand,
  RemoveThingFromThingGroupCommand,
  ResourceAlreadyExistsException,
  ResourceNotFoundException,
  ThrottlingException,
  UpdateCertificateCommand,
  UpdateThingCommand,
} from '@aws-sdk/client-iot';
import { IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { IotDataDeviceMessaging } from '../../lambdas/adapters/aws/iot-data-device-messaging';
import { IotDeviceRegistry } from '../../lambdas/adapters/aws/iot-device-registry';
import { isThrottlingError } from '../../lambdas/adapters/aws/sdk-errors';
import { createPace } from '../../lambdas/core/pacing';
import { ConflictError, NotFoundError } from '../../lambdas/core/errors';
import { createRootCa } from '../../lambdas/core/pki';
import { TEST_CLIENT_CONFIG } from './aws-clients';
import { cmd, type CommandClass, mockSdk } from './sdk-mock';

const iotMock = mockSdk(IoTClient);
const dataMock = mockSdk(IoTDataPlaneClient);
const config = TEST_CLIENT_CONFIG;
const registry = () => new IotDeviceRegistry(new IoTClient(config));
const notFound = () => new ResourceNotFoundException({ message: 'not found', $metadata: {} });
const exists = () => new ResourceAlreadyExistsException({ message: 'exists', $metadata: {}, resourceId: 'r' });
const ARN = 'arn:aws:iot:eu-west-1:111122223333:cert/' + 'ab'.repeat(32);

beforeEach(() => {
  iotMock.reset();
  dataMock.reset();
});

const inputsOf = (command: CommandClass) => iotMock.commandCalls(cmd(command)).map((c) => c.args[0].input);

describe('IotDeviceRegistry: one AWS IoT call per method, with exactly these inputs', () => {
  it.each([
    [
      'updateThingAttributes',
      (r: IotDeviceRegistry) => r.updateThingAttributes('t', { status: 'active' }),
      UpdateThingCommand,
      { thingName: 't', attributePayload: { attributes: { status: 'active' }, merge: true } },
    ],
    [
      'addThingToThingGroup',
      (r: IotDeviceRegistry) => r.addThingToThingGroup('t', 'g'),
      AddThingToThingGroupCommand,
      { thingName: 't', thingGroupName: 'g' },
    ],
    [
      'removeThingFromThingGroup',
      (r: IotDeviceRegistry) => r.removeThingFromThingGroup('t', 'g'),
      RemoveThingFromThingGroupCommand,
      { thingName: 't', thingGroupName: 'g' },
    ],
    [
      'updateCertificateStatus',
      (r: IotDeviceRegistry) => r.updateCertificateStatus('c1', 'INACTIVE'),
      UpdateCertificateCommand,
      { certificateId: 'c1', newStatus: 'INACTIVE' },
    ],
    [
      'deleteCertificate',
      (r: IotDeviceRegistry) => r.deleteCertificate('c1'),
      DeleteCertificateCommand,
      { certificateId: 'c1', forceDelete: false },
    ],
    [
      'attachThingPrincipal',
      (r: IotDeviceRegistry) => r.attachThingPrincipal('t', ARN),
      AttachThingPrincipalCommand,
      { thingName: 't', principal: ARN },
    ],
    [
      'detachThingPrincipal',
      (r: IotDeviceRegistry) => r.detachThingPrincipal('t', ARN),
      DetachThingPrincipalCommand,
      { thingName: 't', principal: ARN },
    ],
    [
      'attachPolicy',
      (r: IotDeviceRegistry) => r.attachPolicy('p', ARN),
      AttachPolicyCommand,
      { policyName: 'p', target: ARN },
    ],
    [
      'detachPolicy',
      (r: IotDeviceRegistry) => r.detachPolicy('p', ARN),
      DetachPolicyCommand,
      { policyName: 'p', target: ARN },
    ],
  ] as const)('%s', async (_, call, command, input) => {
    iotMock.on(cmd(command as CommandClass)).resolves({});
    await call(registry());
    expect(iotMock.calls()).toHaveLength(1);
    expect(inputsOf(command as CommandClass)).toEqual([input]);
  });

  it.each([
    [
      'updateThingAttributes',
      (r: IotDeviceRegistry) => r.updateThingAttributes('t', {}),
      UpdateThingCommand,
      'THING_NOT_FOUND',
    ],
    [
      'removeThingFromThingGroup',
      (r: IotDeviceRegistry) => r.removeThingFromThingGroup('t', 'g'),
      RemoveThingFromThingGroupCommand,
      'THING_GROUP_NOT_FOUND',
    ],
    [
      'deleteCertificate',
      (r: IotDeviceRegistry) => r.deleteCertificate('c1'),
      DeleteCertificateCommand,
      'CERTIFICATE_NOT_FOUND',
    ],
    ['attachPolicy', (r: IotDeviceRegistry) => r.attachPolicy('p', ARN), AttachPolicyCommand, 'POLICY_NOT_FOUND'],
    [
      'listThingPrincipals',
      (r: IotDeviceRegistry) => r.listThingPrincipals('t'),
      ListThingPrincipalsCommand,
      'THING_NOT_FOUND',
    ],
  ] as const)('error/%s of something missing is a NotFoundError', async (_, call, command, code) => {
    iotMock.on(cmd(command as CommandClass)).rejects(notFound());
    const error = await (call(registry()) as Promise<unknown>).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotFoundError);
    expect(error).toMatchObject({ code });
  });

  it('passes throttling through unchanged, with its SDK name', async () => {
    iotMock.on(cmd(AttachThingPrincipalCommand)).rejects(new ThrottlingException({ message: 'slow', $metadata: {} }));
    await expect(registry().attachThingPrincipal('t', ARN)).rejects.toMatchObject({ name: 'ThrottlingException' });
  });

  it.each([
    ['createThing', 'iot:CreateThing', CreateThingCommand, (r: IotDeviceRegistry) => r.createThing({ thingName: 't' })],
    [
      'attachThingPrincipal',
      'iot:AttachThingPrincipal',
      AttachThingPrincipalCommand,
      (r: IotDeviceRegistry) => r.attachThingPrincipal('t', ARN),
    ],
    ['attachPolicy', 'iot:AttachPolicy', AttachPolicyCommand, (r: IotDeviceRegistry) => r.attachPolicy('p', ARN)],
  ] as const)(
    'with a Pace, %s takes a %s slot per attempt and retries throttling with jittered backoff',
    async (_, api, command, call) => {
      const slots: string[] = [];
      const sleeps: number[] = [];
      const paced = new IotDeviceRegistry(
        new IoTClient(config),
        createPace({
          limiter: { acquire: async (a) => void slots.push(a) },
          isThrottling: isThrottlingError,
          retry: { sleep: async (ms) => void sleeps.push(ms), random: () => 0.25 },
        }),
      );
      iotMock
        .on(cmd(command as CommandClass))
        .rejectsOnce(new ThrottlingException({ message: 'slow', $metadata: {} }))
        .rejectsOnce(new ThrottlingException({ message: 'slow', $metadata: {} }))
        .resolves({ thingArn: 'arn:aws:iot:eu-west-1:111122223333:thing/t' } as never);
      await call(paced);
      expect(slots).toEqual([api, api, api]);
      expect(sleeps).toEqual([25, 50]);
      expect(iotMock).toHaveReceivedCommandTimes(cmd(command as CommandClass), 3);
    },
  );

  it('with a Pace, the calls without a quota (DescribeThing) take no slot', async () => {
    const slots: string[] = [];
    const paced = new IotDeviceRegistry(
      new IoTClient(config),
      createPace({ limiter: { acquire: async (a) => void slots.push(a) }, isThrottling: isThrottlingError }),
    );
    iotMock.on(cmd(DescribeThingCommand)).resolves({ thingName: 't', thingArn: 'arn:t' });
    await paced.describeThing('t');
    expect(slots).toEqual([]);
  });

  it('describeThing: the thing, or undefined when AWS IoT does not know it', async () => {
    iotMock
      .on(cmd(DescribeThingCommand), { thingName: 't' })
      .resolves({ thingName: 't', thingArn: 'arn:thing/t', thingTypeName: 'sensor', attributes: { a: '1' } })
      .on(cmd(DescribeThingCommand), { thingName: 'gone' })
      .rejects(notFound());
    await expect(registry().describeThing('t')).resolves.toEqual({
      thingName: 't',
      thingArn: 'arn:thing/t',
      thingTypeName: 'sensor',
      attributes: { a: '1' },
    });
    await expect(registry().describeThing('gone')).resolves.toBeUndefined();
    expect(inputsOf(DescribeThingCommand)).toEqual([{ thingName: 't' }, { thingName: 'gone' }]);
  });

  it('describeCertificate: id, ARN, status, PEM and CA id, or undefined', async () => {
    iotMock
      .on(cmd(DescribeCertificateCommand), { certificateId: 'c1' })
      .resolves({
        certificateDescription: {
          certificateId: 'c1',
          certificateArn: ARN,
          status: 'ACTIVE',
          certificatePem: 'PEM',
          caCertificateId: 'ca1',
        },
      })
      .on(cmd(DescribeCertificateCommand), { certificateId: 'c2' })
      .rejects(notFound());
    await expect(registry().describeCertificate('c1')).resolves.toEqual({
      certificateId: 'c1',
      certificateArn: ARN,
      status: 'ACTIVE',
      certificatePem: 'PEM',
      caCertificateId: 'ca1',
    });
    await expect(registry().describeCertificate('c2')).resolves.toBeUndefined();
  });

  it('lists follow every page (nextToken, or nextMarker for policies)', async () => {
    iotMock
      .on(cmd(ListThingGroupsForThingCommand), { thingName: 't' })
      .resolves({ thingGroups: [{ groupName: 'g1' }], nextToken: 'n1' })
      .on(cmd(ListThingGroupsForThingCommand), { thingName: 't', nextToken: 'n1' })
      .resolves({ thingGroups: [{ groupName: 'g2' }] });
    iotMock
      .on(cmd(ListThingPrincipalsCommand), { thingName: 't' })
      .resolves({ principals: ['a1'], nextToken: 'n1' })
      .on(cmd(ListThingPrincipalsCommand), { thingName: 't', nextToken: 'n1' })
      .resolves({ principals: ['a2'] });
    iotMock.on(cmd(ListPrincipalThingsCommand)).resolves({ things: ['t', 'u'] });
    iotMock
      .on(cmd(ListAttachedPoliciesCommand), { target: ARN, recursive: false })
      .resolves({ policies: [{ policyName: 'p1' }], nextMarker: 'm1' })
      .on(cmd(ListAttachedPoliciesCommand), { target: ARN, recursive: false, marker: 'm1' })
      .resolves({ policies: [{ policyName: 'p2' }] });
    const r = registry();
    await expect(r.listThingGroupsForThing('t')).resolves.toEqual(['g1', 'g2']);
    await expect(r.listThingPrincipals('t')).resolves.toEqual(['a1', 'a2']);
    await expect(r.listPrincipalThings(ARN)).resolves.toEqual(['t', 'u']);
    await expect(r.listAttachedPolicies(ARN)).resolves.toEqual(['p1', 'p2']);
    expect(inputsOf(ListPrincipalThingsCommand)).toEqual([{ principal: ARN }]);
    expect(inputsOf(ListAttachedPoliciesCommand)).toEqual([
      { target: ARN, recursive: false },
      { target: ARN, recursive: false, marker: 'm1' },
    ]);
  });

  it('register reuses IotCertificateRegistry: a certificate registered before answers its registration', async () => {
    const ca = await createRootCa({ subject: { commonName: 'R' }, validity: { days: 10 }, now: new Date() });
    iotMock.on(cmd(RegisterCertificateCommand)).rejects(exists());
    iotMock.on(cmd(DescribeCertificateCommand)).resolves({ certificateDescription: { certificateArn: ARN } });
    await expect(
      registry().register({
        certificatePem: ca.certificate.pem,
        caCertificatePem: ca.certificate.pem,
        status: 'ACTIVE',
      }),
    ).resolves.toEqual({ certificateId: ca.certificate.id, certificateArn: ARN });
    expect(inputsOf(RegisterCertificateCommand)).toEqual([
      { certificatePem: ca.certificate.pem, caCertificatePem: ca.certificate.pem, status: 'ACTIVE' },
    ]);
  });

  it('createThing: CreateThing; an existing thing of the same type gets the attributes merged; another type conflicts', async () => {
    iotMock.on(cmd(CreateThingCommand)).resolvesOnce({ thingArn: 'arn:thing/t' }).rejects(exists());
    iotMock.on(cmd(DescribeThingCommand)).resolves({ thingName: 't', thingArn: 'arn:thing/t', attributes: { a: '1' } });
    iotMock.on(cmd(UpdateThingCommand)).resolves({});
    const r = registry();
    await expect(r.createThing({ thingName: 't', attributes: { b: '2' } })).resolves.toEqual({
      thingName: 't',
      thingArn: 'arn:thing/t',
      attributes: { b: '2' },
    });
    await expect(r.createThing({ thingName: 't', attributes: { b: '2' } })).resolves.toEqual({
      thingName: 't',
      thingArn: 'arn:thing/t',
      attributes: { a: '1', b: '2' },
    });
    expect(inputsOf(UpdateThingCommand)).toEqual([
      { thingName: 't', attributePayload: { attributes: { b: '2' }, merge: true } },
    ]);
    await expect(r.createThing({ thingName: 't', thingTypeName: 'sensor' })).rejects.toBeInstanceOf(ConflictError);
  });

  it('getPolicy and createPolicy: undefined when missing; an existing policy with the same JSON is answered, another conflicts', async () => {
    const doc = JSON.stringify({ Version: '2012-10-17', Statement: [] });
    iotMock.on(cmd(GetPolicyCommand), { policyName: 'missing' }).rejects(notFound());
    iotMock.on(cmd(GetPolicyCommand), { policyName: 'p' }).resolves({
      policyName: 'p',
      policyArn: 'arn:policy/p',
      policyDocument: JSON.stringify(JSON.parse(doc), null, 2),
    });
    iotMock.on(cmd(CreatePolicyCommand)).rejects(exists());
    const r = registry();
    await expect(r.getPolicy('missing')).resolves.toBeUndefined();
    await expect(r.createPolicy('p', doc)).resolves.toEqual({ policyName: 'p', policyArn: 'arn:policy/p' });
    await expect(r.createPolicy('p', JSON.stringify({ Version: '2012-10-17' }))).rejects.toMatchObject({
      code: 'POLICY_EXISTS',
    });
    expect(inputsOf(CreatePolicyCommand)[0]).toEqual({ policyName: 'p', policyDocument: doc });
  });
});

describe('IotDataDeviceMessaging', () => {
  it('publishes JSON with QoS 1 on the topic', async () => {
    dataMock.on(cmd(PublishCommand)).resolves({});
    await new IotDataDeviceMessaging(new IoTDataPlaneClient(config)).publish('cdf/certificates/t/get/accepted', {
      message: 'OK',
    });
    const [call] = dataMock.commandCalls(cmd(PublishCommand));
    const input = call!.args[0].input;
    expect({ ...input, payload: Buffer.from(input.payload as Uint8Array).toString('utf8') }).toEqual({
      topic: 'cdf/certificates/t/get/accepted',
      qos: 1,
      payload: '{"message":"OK"}',
      contentType: 'application/json',
    });
  });

  it('passes throttling through with its SDK name', async () => {
    dataMock.on(cmd(PublishCommand)).rejects(Object.assign(new Error('slow'), { name: 'ThrottlingException' }));
    await expect(new IotDataDeviceMessaging(new IoTDataPlaneClient(config)).publish('t', {})).rejects.toMatchObject({
      name: 'ThrottlingException',
    });
  });
});
