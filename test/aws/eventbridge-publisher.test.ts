import 'aws-sdk-client-mock-jest';
import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { ValidationError } from '../../lambdas/core/errors';
import type { DomainEvent } from '../../lambdas/core/ports';
import { EventBridgePublisher, EventPublishError } from '../../lambdas/adapters/aws/eventbridge-publisher';
import { cmd, mockSdk } from './sdk-mock';

const BUS = 'certflow-bus';
const ebMock = mockSdk(EventBridgeClient);
const sleeps: number[] = [];
const publisher = new EventBridgePublisher(new EventBridgeClient({ region: 'us-east-1' }), BUS, {
  sleep: (ms) => {
    sleeps.push(ms);
    return Promise.resolve();
  },
  random: () => 0.5,
});

const issued = (i: number): DomainEvent => ({
  detailType: 'Certificate Issued',
  detail: { certificateId: `cert-${i}`, taskId: 't1' },
});

/** answers every entry with an EventId */
const accepted = (input: { Entries: PutEventsRequestEntry[] }) => ({
  FailedEntryCount: 0,
  Entries: input.Entries.map((_, i) => ({ EventId: `ev-${i}` })),
});

const sentEntries = () => ebMock.commandCalls(cmd(PutEventsCommand)).map((c) => c.args[0].input.Entries ?? []);

beforeEach(() => {
  ebMock.reset();
  sleeps.length = 0;
});

describe('EventBridgePublisher', () => {
  it('sends source certflow, the detail type, the detail as JSON and the bus name', async () => {
    ebMock.on(cmd(PutEventsCommand)).callsFake(accepted);
    await publisher.publish([{ detailType: 'Batch Completed', detail: { taskId: 't1', quantity: 250 } }]);
    expect(ebMock).toHaveReceivedCommandTimes(cmd(PutEventsCommand), 1);
    expect(ebMock).toHaveReceivedCommandWith(cmd(PutEventsCommand), {
      Entries: [
        {
          Source: 'certflow',
          DetailType: 'Batch Completed',
          Detail: '{"taskId":"t1","quantity":250}',
          EventBusName: BUS,
        },
      ],
    });
  });

  it('sends nothing for no events', async () => {
    await publisher.publish([]);
    expect(ebMock.calls()).toHaveLength(0);
  });

  it('sends 25 events in 3 requests of at most 10, in order', async () => {
    ebMock.on(cmd(PutEventsCommand)).callsFake(accepted);
    await publisher.publish(Array.from({ length: 25 }, (_, i) => issued(i)));
    expect(ebMock).toHaveReceivedCommandTimes(cmd(PutEventsCommand), 3);
    expect(sentEntries().map((e) => e.length)).toEqual([10, 10, 5]);
    expect(
      sentEntries()
        .flat()
        .map((e) => JSON.parse(e.Detail!).certificateId),
    ).toEqual(Array.from({ length: 25 }, (_, i) => `cert-${i}`));
  });

  it('keeps each request under 256 KB', async () => {
    ebMock.on(cmd(PutEventsCommand)).callsFake(accepted);
    const big = (i: number): DomainEvent => ({
      detailType: 'Batch Completed',
      detail: { i, pad: 'x'.repeat(100_000) },
    });
    await publisher.publish([big(0), big(1), big(2), big(3), big(4)]);
    expect(sentEntries().map((e) => e.length)).toEqual([2, 2, 1]);
    for (const entries of sentEntries()) {
      const bytes = entries.reduce((n, e) => n + Buffer.byteLength(e.Source! + e.DetailType! + e.Detail!), 0);
      expect(bytes).toBeLessThanOrEqual(256 * 1024);
    }
  });

  it('refuses an event larger than one request', async () => {
    const caught = await publisher
      .publish([{ detailType: 'Batch Completed', detail: { pad: 'x'.repeat(262_144) } }])
      .catch((e: unknown) => e);
    expect(caught).toMatchObject({ code: 'EVENT_TOO_LARGE' });
    expect(ebMock.calls()).toHaveLength(0);
  });

  it('retries only the entries EventBridge reported as failed', async () => {
    ebMock
      .on(cmd(PutEventsCommand))
      .resolvesOnce({
        FailedEntryCount: 2,
        Entries: [
          { EventId: 'ev-0' },
          { ErrorCode: 'ThrottlingException', ErrorMessage: 'Rate exceeded' },
          { EventId: 'ev-2' },
          { ErrorCode: 'InternalFailure', ErrorMessage: 'oops' },
        ],
      })
      .callsFake(accepted);
    await publisher.publish([issued(0), issued(1), issued(2), issued(3)]);
    expect(ebMock).toHaveReceivedCommandTimes(cmd(PutEventsCommand), 2);
    expect(sentEntries()[1]!.map((e) => JSON.parse(e.Detail!).certificateId)).toEqual(['cert-1', 'cert-3']);
    expect(sleeps).toEqual([50]); // full jitter: random 0.5 × 100 ms
  });

  it('gives up after 3 attempts with EventPublishError naming the failures', async () => {
    ebMock.on(cmd(PutEventsCommand)).callsFake((input: { Entries: PutEventsRequestEntry[] }) => ({
      FailedEntryCount: 1,
      Entries: input.Entries.map((e) =>
        JSON.parse(e.Detail!).certificateId === 'cert-1'
          ? { ErrorCode: 'ThrottlingException', ErrorMessage: 'Rate exceeded' }
          : { EventId: 'ok' },
      ),
    }));
    const caught = await publisher.publish([issued(0), issued(1)]).catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(EventPublishError);
    expect(caught).toMatchObject({
      name: 'EventPublishError',
      failures: [{ detailType: 'Certificate Issued', errorCode: 'ThrottlingException', errorMessage: 'Rate exceeded' }],
    });
    expect(ebMock).toHaveReceivedCommandTimes(cmd(PutEventsCommand), 3);
    expect(sentEntries().map((e) => e.length)).toEqual([2, 1, 1]);
    expect(sleeps).toEqual([50, 100]); // backoff doubles
  });

  it('lets a failed request through unchanged (the SDK has retried it already)', async () => {
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
    ebMock.on(cmd(PutEventsCommand)).rejects(throttled);
    await expect(publisher.publish([issued(0)])).rejects.toMatchObject({ name: 'ThrottlingException' });
  });

  it.each([
    ['a PEM private key', { privateKey: '-----BEGIN PRIVATE KEY-----\nMIG...\n-----END PRIVATE KEY-----\n' }],
    [
      'an EC private key, nested',
      { device: { keys: ['-----BEGIN EC PRIVATE KEY-----\nabc\n-----END EC PRIVATE KEY-----'] } },
    ],
    ['an RSA private key', { pem: '-----BEGIN RSA PRIVATE KEY-----' }],
  ])('refuses an event carrying %s and publishes none of the batch', async (_label, detail) => {
    const caught = await publisher
      .publish([issued(0), { detailType: 'Certificate Issued', detail }])
      .catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(ValidationError);
    expect(caught).toMatchObject({ code: 'PRIVATE_KEY_IN_EVENT' });
    expect((caught as Error).message).not.toContain('BEGIN');
    expect(ebMock.calls()).toHaveLength(0);
  });

  it('publishes certificates (public material) normally', async () => {
    ebMock.on(cmd(PutEventsCommand)).callsFake(accepted);
    await publisher.publish([
      {
        detailType: 'CA Created',
        detail: { certificatePem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----' },
      },
    ]);
    expect(ebMock).toHaveReceivedCommandTimes(cmd(PutEventsCommand), 1);
  });
});
