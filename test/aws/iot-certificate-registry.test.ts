import 'aws-sdk-client-mock-jest';
import {
  DescribeCertificateCommand,
  IoTClient,
  RegisterCertificateCommand,
  RegisterCertificateWithoutCACommand,
  ResourceAlreadyExistsException,
  ThrottlingException,
} from '@aws-sdk/client-iot';
import { createRootCa, issueLeaf, type ParsedCertificate } from '../../lambdas/core/pki';
import { IotCertificateRegistry } from '../../lambdas/adapters/aws/iot-certificate-registry';
import { isThrottlingError } from '../../lambdas/adapters/aws/sdk-errors';
import { createPace } from '../../lambdas/core/pacing';
import { cmd, mockSdk } from './sdk-mock';

const iotMock = mockSdk(IoTClient);
const registry = new IotCertificateRegistry(new IoTClient({ region: 'eu-west-1' }));
const NOW = new Date('2026-03-01T12:00:00.000Z');
const arnOf = (id: string) => `arn:aws:iot:eu-west-1:111122223333:cert/${id}`;

let ca: ParsedCertificate;
let device: ParsedCertificate;

beforeAll(async () => {
  const root = await createRootCa({ subject: { commonName: 'Test Root' }, validity: { days: 365 }, now: NOW });
  ca = root.certificate;
  device = (
    await issueLeaf(root.issuer, {
      profile: 'device',
      subject: { commonName: 'dev-1' },
      validity: { days: 30 },
      now: NOW,
    })
  ).certificate;
});

beforeEach(() => iotMock.reset());

describe('IotCertificateRegistry', () => {
  it('registers with its CA using the status field', async () => {
    iotMock
      .on(cmd(RegisterCertificateCommand))
      .resolves({ certificateId: device.id, certificateArn: arnOf(device.id) });
    await expect(
      registry.register({ certificatePem: device.pem, caCertificatePem: ca.pem, status: 'ACTIVE' }),
    ).resolves.toEqual({ certificateId: device.id, certificateArn: arnOf(device.id) });
    expect(iotMock.commandCalls(cmd(RegisterCertificateCommand))[0]!.args[0].input).toEqual({
      certificatePem: device.pem,
      caCertificatePem: ca.pem,
      status: 'ACTIVE',
    });
    expect(iotMock).not.toHaveReceivedCommand(cmd(RegisterCertificateWithoutCACommand));
  });

  it('registers without a CA when none is given', async () => {
    iotMock
      .on(cmd(RegisterCertificateWithoutCACommand))
      .resolves({ certificateId: device.id, certificateArn: arnOf(device.id) });
    await expect(registry.register({ certificatePem: device.pem, status: 'INACTIVE' })).resolves.toEqual({
      certificateId: device.id,
      certificateArn: arnOf(device.id),
    });
    expect(iotMock).toHaveReceivedCommandWith(cmd(RegisterCertificateWithoutCACommand), {
      certificatePem: device.pem,
      status: 'INACTIVE',
    });
    expect(iotMock).not.toHaveReceivedCommand(cmd(RegisterCertificateCommand));
  });

  it.each([
    ['with a CA', true],
    ['without a CA', false],
  ])('answers a certificate registered before (%s) with its id and ARN', async (_label, withCa) => {
    const exists = new ResourceAlreadyExistsException({
      message: 'The certificate is already provisioned or registered',
      $metadata: {},
    });
    iotMock.on(cmd(RegisterCertificateCommand)).rejects(exists);
    iotMock.on(cmd(RegisterCertificateWithoutCACommand)).rejects(exists);
    iotMock.on(cmd(DescribeCertificateCommand), { certificateId: device.id }).resolves({
      certificateDescription: { certificateId: device.id, certificateArn: arnOf(device.id), status: 'ACTIVE' },
    });
    const result = await registry.register({
      certificatePem: device.pem,
      ...(withCa ? { caCertificatePem: ca.pem } : {}),
      status: 'ACTIVE',
    });
    expect(result).toEqual({ certificateId: device.id, certificateArn: arnOf(device.id) });
    expect(device.id).toMatch(/^[0-9a-f]{64}$/);
    expect(iotMock).toHaveReceivedCommandWith(cmd(DescribeCertificateCommand), { certificateId: device.id });
    expect(iotMock).toHaveReceivedCommandTimes(
      cmd(withCa ? RegisterCertificateCommand : RegisterCertificateWithoutCACommand),
      1,
    );
  });

  it('lets throttling through with its original name, for the caller to pace', async () => {
    iotMock
      .on(cmd(RegisterCertificateCommand))
      .rejects(new ThrottlingException({ message: 'Rate exceeded', $metadata: {} }));
    await expect(
      registry.register({ certificatePem: device.pem, caCertificatePem: ca.pem, status: 'ACTIVE' }),
    ).rejects.toMatchObject({ name: 'ThrottlingException' });
    expect(iotMock).not.toHaveReceivedCommand(cmd(DescribeCertificateCommand));
  });

  it('paces the DescribeCertificate after ResourceAlreadyExistsException as the registration, throttling retried', async () => {
    const slots: string[] = [];
    const sleeps: number[] = [];
    const paced = new IotCertificateRegistry(
      new IoTClient({ region: 'eu-west-1' }),
      createPace({
        limiter: { acquire: async (api) => void slots.push(api) },
        isThrottling: isThrottlingError,
        retry: { sleep: async (ms) => void sleeps.push(ms), random: () => 0.5 },
      }),
    );
    iotMock
      .on(cmd(RegisterCertificateWithoutCACommand))
      .rejects(new ResourceAlreadyExistsException({ message: 'registered', $metadata: {} }));
    iotMock
      .on(cmd(DescribeCertificateCommand), { certificateId: device.id })
      .rejectsOnce(new ThrottlingException({ message: 'Rate exceeded', $metadata: {} }))
      .resolves({ certificateDescription: { certificateId: device.id, certificateArn: arnOf(device.id) } });
    await expect(paced.register({ certificatePem: device.pem, status: 'ACTIVE' })).resolves.toEqual({
      certificateId: device.id,
      certificateArn: arnOf(device.id),
    });
    // one slot for the registration, one per DescribeCertificate attempt; one jittered backoff (0.5 × 100 ms)
    expect(slots).toEqual([
      'iot:RegisterCertificateWithoutCA',
      'iot:RegisterCertificateWithoutCA',
      'iot:RegisterCertificateWithoutCA',
    ]);
    expect(sleeps).toEqual([50]);
    expect(iotMock).toHaveReceivedCommandTimes(cmd(DescribeCertificateCommand), 2);
    expect(iotMock).toHaveReceivedCommandTimes(cmd(RegisterCertificateWithoutCACommand), 1);
  });
});
