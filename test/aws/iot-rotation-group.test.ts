import 'aws-sdk-client-mock-jest';
import {
  AddThingToThingGroupCommand,
  DescribeThingGroupCommand,
  IoTClient,
  ResourceNotFoundException,
  ThrottlingException,
} from '@aws-sdk/client-iot';
import { NotFoundError } from '../../lambdas/core/errors';
import { IotRotationGroup } from '../../lambdas/adapters/aws/iot-rotation-group';
import { cmd, mockSdk } from './sdk-mock';

const iotMock = mockSdk(IoTClient);
const iot = new IoTClient({ region: 'eu-west-1' });
const notFound = (message: string) => new ResourceNotFoundException({ message, $metadata: {} });

beforeEach(() => iotMock.reset());

describe('IotRotationGroup.add', () => {
  it('adds each thing to cdfRotateCertificates once', async () => {
    iotMock.on(cmd(AddThingToThingGroupCommand)).resolves({});
    await new IotRotationGroup(iot).add(['thing-1', 'thing-2', 'thing-1']);
    expect(iotMock).toHaveReceivedCommandTimes(cmd(AddThingToThingGroupCommand), 2);
    expect(iotMock.commandCalls(cmd(AddThingToThingGroupCommand)).map((c) => c.args[0].input)).toEqual([
      { thingGroupName: 'cdfRotateCertificates', thingName: 'thing-1' },
      { thingGroupName: 'cdfRotateCertificates', thingName: 'thing-2' },
    ]);
  });

  it('uses the group it is given and does nothing for no things', async () => {
    iotMock.on(cmd(AddThingToThingGroupCommand)).resolves({});
    await new IotRotationGroup(iot, 'rotate-now').add(['t']);
    expect(iotMock).toHaveReceivedCommandWith(cmd(AddThingToThingGroupCommand), {
      thingGroupName: 'rotate-now',
      thingName: 't',
    });
    iotMock.resetHistory();
    await new IotRotationGroup(iot).add([]);
    expect(iotMock.calls()).toHaveLength(0);
  });

  it('has at most 5 requests in flight', async () => {
    let inFlight = 0;
    let most = 0;
    iotMock.on(cmd(AddThingToThingGroupCommand)).callsFake(async () => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((resolve) => setTimeout(resolve, 2));
      inFlight--;
      return {};
    });
    await new IotRotationGroup(iot).add(Array.from({ length: 23 }, (_, i) => `thing-${i}`));
    expect(iotMock).toHaveReceivedCommandTimes(cmd(AddThingToThingGroupCommand), 23);
    expect(most).toBe(5);
  });

  it('skips things that no longer exist, checking once that the group does', async () => {
    iotMock.on(cmd(AddThingToThingGroupCommand)).resolves({});
    iotMock
      .on(cmd(AddThingToThingGroupCommand), { thingName: 'gone-1' })
      .rejects(notFound('Thing gone-1 cannot be found.'));
    iotMock
      .on(cmd(AddThingToThingGroupCommand), { thingName: 'gone-2' })
      .rejects(notFound('Thing gone-2 cannot be found.'));
    iotMock.on(cmd(DescribeThingGroupCommand)).resolves({ thingGroupName: 'cdfRotateCertificates' });
    await new IotRotationGroup(iot).add(['gone-1', 'thing-1', 'gone-2', 'thing-2']);
    expect(iotMock).toHaveReceivedCommandTimes(cmd(AddThingToThingGroupCommand), 4);
    expect(iotMock).toHaveReceivedCommandTimes(cmd(DescribeThingGroupCommand), 1);
    expect(iotMock).toHaveReceivedCommandWith(cmd(DescribeThingGroupCommand), {
      thingGroupName: 'cdfRotateCertificates',
    });
  });

  it('throws NotFoundError THING_GROUP_NOT_FOUND when the group does not exist', async () => {
    iotMock.on(cmd(AddThingToThingGroupCommand)).rejects(notFound('Thing group cannot be found.'));
    iotMock.on(cmd(DescribeThingGroupCommand)).rejects(notFound('Thing group cannot be found.'));
    const caught = await new IotRotationGroup(iot).add(['thing-1', 'thing-2']).catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(NotFoundError);
    expect(caught).toMatchObject({
      code: 'THING_GROUP_NOT_FOUND',
      details: { thingGroupName: 'cdfRotateCertificates' },
    });
  });

  it('lets throttling through with its name and starts no more requests', async () => {
    iotMock
      .on(cmd(AddThingToThingGroupCommand))
      .rejects(new ThrottlingException({ message: 'Rate exceeded', $metadata: { httpStatusCode: 429 } }));
    const caught = await new IotRotationGroup(iot)
      .add(Array.from({ length: 20 }, (_, i) => `thing-${i}`))
      .catch((e: unknown) => e);
    expect(caught).toMatchObject({ name: 'ThrottlingException' });
    expect(iotMock.commandCalls(cmd(AddThingToThingGroupCommand)).length).toBeLessThanOrEqual(5);
    expect(iotMock).not.toHaveReceivedCommand(cmd(DescribeThingGroupCommand));
  });
});
