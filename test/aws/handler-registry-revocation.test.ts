/**
 * The registry-revocation workflow's function against aws-sdk-client-mock: exact AWS IoT calls and inputs, the
 * paced UpdateCertificate (a slot of the shared schedule in DynamoDB first), replay, a certificate AWS IoT does not
 * know, and refused input.
 */
import 'aws-sdk-client-mock-jest';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import {
  DescribeCertificateCommand,
  IoTClient,
  ResourceNotFoundException,
  ThrottlingException,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';
import type { Context } from 'aws-lambda';
import { IotDeviceRegistry } from '../../lambdas/adapters/aws/iot-device-registry';
import { isThrottlingError } from '../../lambdas/adapters/aws/sdk-errors';
import { ValidationError } from '../../lambdas/core/errors';
import { EVENT_EXAMPLES } from '../../lambdas/core/events';
import { createPace, unpaced } from '../../lambdas/core/pacing';
import { createHandler, handler } from '../../lambdas/handlers/sfn-revoke-in-registry';
import { TEST_CLIENT_CONFIG } from './aws-clients';
import { callSequence, cmd, mockSdk } from './sdk-mock';

const iotMock = mockSdk(IoTClient);
const dynamoMock = mockSdk(DynamoDBDocumentClient);
const detail = EVENT_EXAMPLES['Certificate Revoked'];
const CERT_ID = detail.certificateId;
const ARN = `arn:aws:iot:eu-west-1:111122223333:cert/${CERT_ID}`;
const event = {
  version: '0',
  id: 'e6a1c7f2-0000-4000-8000-000000000001',
  'detail-type': 'Certificate Revoked',
  source: 'certflow',
  account: '111122223333',
  time: detail.revokedAt,
  region: 'eu-west-1',
  resources: [],
  detail,
};
const described = (status: string) => ({
  certificateDescription: { certificateId: CERT_ID, certificateArn: ARN, status: status as never },
});
const notFound = () => new ResourceNotFoundException({ message: 'not found', $metadata: {} });

const logs: { message: string; extra: Record<string, unknown> }[] = [];
const revoke = () =>
  createHandler({
    registry: new IotDeviceRegistry(new IoTClient(TEST_CLIENT_CONFIG)),
    pace: unpaced,
    log: (message, extra) => logs.push({ message, extra }),
  });
const sequence = () => callSequence({ IoT: iotMock, DynamoDB: dynamoMock });

beforeEach(() => {
  iotMock.reset();
  dynamoMock.reset();
  logs.length = 0;
});

describe('revokeInRegistry (sfn-revoke-in-registry)', () => {
  it.each(['ACTIVE', 'INACTIVE', 'PENDING_ACTIVATION'])(
    'ok/%s: DescribeCertificate, then UpdateCertificate { certificateId, newStatus: REVOKED }',
    async (status) => {
      iotMock.on(cmd(DescribeCertificateCommand)).resolves(described(status));
      iotMock.on(cmd(UpdateCertificateCommand)).resolves({});
      await expect(revoke()(event)).resolves.toEqual({
        certificateId: CERT_ID,
        outcome: 'revoked',
        previousStatus: status,
      });
      expect(sequence()).toEqual(['IoT.DescribeCertificate', 'IoT.UpdateCertificate']);
      expect(iotMock).toHaveReceivedCommandWith(cmd(DescribeCertificateCommand), { certificateId: CERT_ID });
      expect(iotMock.commandCalls(cmd(UpdateCertificateCommand)).map((c) => c.args[0].input)).toEqual([
        { certificateId: CERT_ID, newStatus: 'REVOKED' },
      ]);
    },
  );

  it('ok/replay: a certificate already REVOKED is left alone (no UpdateCertificate)', async () => {
    iotMock.on(cmd(DescribeCertificateCommand)).resolves(described('REVOKED'));
    await expect(revoke()(event)).resolves.toEqual({
      certificateId: CERT_ID,
      outcome: 'already-revoked',
      previousStatus: 'REVOKED',
    });
    expect(sequence()).toEqual(['IoT.DescribeCertificate']);
  });

  it('ok/replay: the same event twice sends one UpdateCertificate', async () => {
    iotMock.on(cmd(DescribeCertificateCommand)).resolvesOnce(described('ACTIVE')).resolves(described('REVOKED'));
    iotMock.on(cmd(UpdateCertificateCommand)).resolves({});
    const run = revoke();
    expect((await run(event)).outcome).toBe('revoked');
    expect((await run(event)).outcome).toBe('already-revoked');
    expect(iotMock.commandCalls(cmd(UpdateCertificateCommand))).toHaveLength(1);
  });

  it('ok/unknown: a certificate AWS IoT does not know is reported not-registered, and logged, not failed', async () => {
    iotMock.on(cmd(DescribeCertificateCommand)).rejects(notFound());
    await expect(revoke()(event)).resolves.toEqual({ certificateId: CERT_ID, outcome: 'not-registered' });
    expect(sequence()).toEqual(['IoT.DescribeCertificate']);
    expect(logs).toEqual([
      {
        message: expect.stringMatching(/not registered/) as unknown as string,
        extra: { certificateId: CERT_ID, serialNumber: detail.serialNumber },
      },
    ]);
  });

  it('ok/unknown: deleted between DescribeCertificate and UpdateCertificate is not-registered', async () => {
    iotMock.on(cmd(DescribeCertificateCommand)).resolves(described('ACTIVE'));
    iotMock.on(cmd(UpdateCertificateCommand)).rejects(notFound());
    await expect(revoke()(event)).resolves.toEqual({ certificateId: CERT_ID, outcome: 'not-registered' });
  });

  it('error/throttled: ThrottlingException propagates by name for the ASL to retry', async () => {
    iotMock.on(cmd(DescribeCertificateCommand)).resolves(described('ACTIVE'));
    iotMock
      .on(cmd(UpdateCertificateCommand))
      .rejects(new ThrottlingException({ message: 'Rate exceeded', $metadata: {} }));
    await expect(revoke()(event)).rejects.toMatchObject({ name: 'ThrottlingException' });
  });

  it('ok/paced: throttled UpdateCertificate is retried on a new slot of the shared schedule', async () => {
    iotMock.on(cmd(DescribeCertificateCommand)).resolves(described('ACTIVE'));
    iotMock
      .on(cmd(UpdateCertificateCommand))
      .rejectsOnce(new ThrottlingException({ message: 'Rate exceeded', $metadata: {} }))
      .resolves({});
    const slots: string[] = [];
    const run = createHandler({
      registry: new IotDeviceRegistry(new IoTClient(TEST_CLIENT_CONFIG)),
      pace: createPace({
        limiter: { acquire: async (api) => void slots.push(api) },
        isThrottling: isThrottlingError,
        retry: { sleep: async () => undefined },
      }),
    });
    expect((await run(event)).outcome).toBe('revoked');
    expect(slots).toEqual(['iot:UpdateCertificate', 'iot:UpdateCertificate']);
    expect(iotMock.commandCalls(cmd(UpdateCertificateCommand))).toHaveLength(2);
  });

  it.each([
    ['error/detail-type', { ...event, 'detail-type': 'Certificate Issued' }],
    ['error/detail', { ...event, detail: { ...detail, certificateId: 'not-an-id' } }],
    ['error/no event', undefined],
  ])('%s: refuses with ValidationError INVALID_EVENT and calls nothing', async (_name, input) => {
    const error = await revoke()(input).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect(error).toMatchObject({ code: 'INVALID_EVENT' });
    expect(sequence()).toEqual([]);
  });

  describe('Lambda handler', () => {
    const saved = { ...process.env };
    beforeEach(() => {
      process.env.RATE_TABLE_NAME = 'prod-tasks';
      process.env.API_RATES = '{"iot:UpdateCertificate":20}';
      process.env.AWS_REGION = 'eu-west-1';
      process.env.AWS_ACCESS_KEY_ID = 'AKIDEXAMPLE';
      process.env.AWS_SECRET_ACCESS_KEY = 'secret';
    });
    afterEach(() => {
      process.env = { ...saved };
    });

    it('takes a slot of rate#iot:UpdateCertificate in RATE_TABLE_NAME before UpdateCertificate', async () => {
      iotMock.on(cmd(DescribeCertificateCommand)).resolves(described('ACTIVE'));
      iotMock.on(cmd(UpdateCertificateCommand)).resolves({});
      dynamoMock.on(cmd(UpdateCommand)).resolves({});
      dynamoMock.on(cmd(GetCommand)).resolves({});
      const context = { awsRequestId: 'r-1', functionName: 'revoke-in-registry' } as unknown as Context;
      await expect(handler(event, context)).resolves.toMatchObject({ outcome: 'revoked' });
      expect(sequence()).toEqual(['IoT.DescribeCertificate', 'DynamoDB.Update', 'IoT.UpdateCertificate']);
      const slot = dynamoMock.commandCalls(cmd(UpdateCommand))[0]!.args[0].input;
      expect(slot.TableName).toBe('prod-tasks');
      expect(slot.Key).toEqual({ pk: 'rate#iot:UpdateCertificate' });
      // 20 per second (API_RATES): the idle schedule restarts at now and the next slot is 50 ms later
      const values = slot.ExpressionAttributeValues as { ':next': number; ':now': number };
      expect(values[':next'] - values[':now']).toBe(50);
    });
  });
});
