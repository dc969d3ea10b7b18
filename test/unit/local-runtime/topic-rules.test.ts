/**
 * Local topic rules: the input a device message gives the rotation workflows, as the IoT rule SQL of core's rotation
 * topics builds it (`topic(3) as deviceId, topic(4) as action, principal() as certId, *`).
 */
import { rotationTopics, ROTATION_RULES } from '../../../lambdas/core/rotation/topics';
import { payloadFields, topicRuleDispatcher } from '../../../local/runtime/topic-rules';

const principal = 'a'.repeat(64);

function dispatcher(prefix?: string) {
  const started: { rule: string; input: Record<string, unknown> }[] = [];
  const logs: string[] = [];
  const rules = prefix ? rotationTopics(prefix).rules : ROTATION_RULES.rules;
  const dispatch = topicRuleDispatcher(
    [
      { name: 'rotation-get', rule: rules.get, action: (input) => void started.push({ rule: 'rotation-get', input }) },
      { name: 'rotation-ack', rule: rules.ack, action: (input) => void started.push({ rule: 'rotation-ack', input }) },
    ],
    (message) => logs.push(message),
  );
  return { dispatch, started, logs };
}

const message = (topic: string, payload: string) => ({
  topic,
  payload: Buffer.from(payload),
  clientId: topic.split('/')[2] ?? '',
  principal,
});

describe('topicRuleDispatcher', () => {
  it('starts rotation-get with deviceId = topic(3), action = topic(4), certId = principal, and the payload fields', async () => {
    const { dispatch, started } = dispatcher();
    const csr = '-----BEGIN CERTIFICATE REQUEST-----…';
    expect(
      await dispatch(message('cdf/certificates/t1/get', JSON.stringify({ csr, previousCertificateId: 'b' }))),
    ).toEqual(['rotation-get']);
    expect(started).toEqual([
      {
        rule: 'rotation-get',
        input: { csr, previousCertificateId: 'b', deviceId: 't1', action: 'get', certId: principal },
      },
    ]);
  });

  it('gives an empty payload no fields (the pre-created package get) and starts rotation-ack on …/ack', async () => {
    const { dispatch, started } = dispatcher();
    await dispatch(message('cdf/certificates/t1/get', ''));
    await dispatch(message('cdf/certificates/t1/ack', '{}'));
    expect(started).toEqual([
      { rule: 'rotation-get', input: { deviceId: 't1', action: 'get', certId: principal } },
      { rule: 'rotation-ack', input: { deviceId: 't1', action: 'ack', certId: principal } },
    ]);
  });

  it('keeps the topic and the connection’s certificate over payload fields of the same name', async () => {
    const { dispatch, started } = dispatcher();
    await dispatch(message('cdf/certificates/t1/get', JSON.stringify({ deviceId: 't2', certId: 'c'.repeat(64) })));
    expect(started[0]!.input).toMatchObject({ deviceId: 't1', certId: principal });
  });

  it.each([
    ['error/not JSON', 'cdf/certificates/t1/get', 'csr=…', true],
    ['error/a JSON array', 'cdf/certificates/t1/get', '[1]', true],
    ['error/a reply topic', 'cdf/certificates/t1/get/accepted', '{}', false],
    ['error/another prefix', 'other/certificates/t1/get', '{}', false],
    ['error/another action', 'cdf/certificates/t1/status', '{}', false],
  ])('%s starts nothing', async (_name, topic, payload, logged) => {
    const { dispatch, started, logs } = dispatcher();
    expect(await dispatch(message(topic, payload))).toEqual([]);
    expect(started).toEqual([]);
    expect(logs.length > 0).toBe(logged);
  });

  it('follows a configured prefix (topic(n) moves with its depth)', async () => {
    const { dispatch, started } = dispatcher('fleet/a/certs');
    await dispatch(message('fleet/a/certs/t9/ack', '{"previousCertificateId":"x"}'));
    expect(started).toEqual([
      {
        rule: 'rotation-ack',
        input: { previousCertificateId: 'x', deviceId: 't9', action: 'ack', certId: principal },
      },
    ]);
  });
});

describe('payloadFields', () => {
  it('reads JSON objects, treats an empty payload as no fields and refuses anything else', () => {
    expect(payloadFields(Buffer.from('{"a":1}'))).toEqual({ a: 1 });
    expect(payloadFields(Buffer.alloc(0))).toEqual({});
    expect(payloadFields(Buffer.from('null'))).toBeUndefined();
    expect(payloadFields(Buffer.from('"x"'))).toBeUndefined();
  });
});
