import { reasonOfFailure, RotationRejectedError, ROTATION_REASONS } from '../../lambdas/core/rotation/reasons';
import {
  replyTopic,
  requestTopic,
  ROTATION_RULES,
  ruleInput,
  rotationJobDocument,
  rotationTopics,
} from '../../lambdas/core/rotation/topics';

describe('rotationTopics', () => {
  it('gives CDF’s rules for the default prefix', () => {
    expect(ROTATION_RULES.rules.get).toEqual({
      action: 'get',
      topicFilter: 'cdf/certificates/+/get',
      sql: "SELECT topic(3) as deviceId, topic(4) as action, principal() as certId, * FROM 'cdf/certificates/+/get'",
      thingLevel: 3,
    });
    expect(ROTATION_RULES.rules.ack.topicFilter).toBe('cdf/certificates/+/ack');
  });

  it('moves the thing level with the prefix', () => {
    expect(rotationTopics('rotate').rules.ack.sql).toBe(
      "SELECT topic(2) as deviceId, topic(3) as action, principal() as certId, * FROM 'rotate/+/ack'",
    );
  });

  it.each(['', '/cdf', 'cdf/', 'cdf/+', 'cdf/#', 'cdf//x', '$aws/things'])('error/refuses the prefix %j', (prefix) => {
    expect(() => rotationTopics(prefix)).toThrow(/invalid rotation topic prefix/);
  });

  it('names request and reply topics', () => {
    expect(requestTopic('cdf/certificates', 't-1', 'get')).toBe('cdf/certificates/t-1/get');
    expect(replyTopic('cdf/certificates', 't-1', 'ack', 'rejected')).toBe('cdf/certificates/t-1/ack/rejected');
    expect(rotationJobDocument('a/b').ack).toEqual({
      subscribe: 'a/b/{thingName}/ack/+',
      publish: 'a/b/{thingName}/ack',
    });
  });
});

describe('ruleInput (what the IoT rule SQL hands the workflow)', () => {
  const rule = ROTATION_RULES.rules.get;

  it('takes deviceId and action from the topic, certId from the principal, the payload fields as they are', () => {
    expect(
      ruleInput(rule, 'cdf/certificates/thing-1/get', { csr: 'PEM', previousCertificateId: 'ab' }, 'c'.repeat(64)),
    ).toEqual({
      deviceId: 'thing-1',
      action: 'get',
      certId: 'c'.repeat(64),
      csr: 'PEM',
      previousCertificateId: 'ab',
    });
  });

  it('does not let the payload override the topic’s thing, the action or the connection’s certificate', () => {
    expect(
      ruleInput(rule, 'cdf/certificates/thing-1/get', { deviceId: 'thing-2', action: 'ack', certId: 'x' }, 'c'),
    ).toEqual({ deviceId: 'thing-1', action: 'get', certId: 'c' });
  });

  it.each([
    'cdf/certificates/thing-1/ack',
    'cdf/certificates/thing-1/get/accepted',
    'other/certificates/t/get',
    'cdf/certificates/get',
  ])('answers undefined for %s', (topic) => {
    expect(ruleInput(rule, topic, {}, undefined)).toBeUndefined();
  });
});

describe('reasonOfFailure', () => {
  const rejected = new RotationRejectedError('CSR_CN_MISMATCH', 'the CSR is for thing-2');

  it('reads the reason from a Lambda error Cause (AWS: JSON) and from a plain one (local runner)', () => {
    expect(rejected.message).toBe('CSR_CN_MISMATCH: the CSR is for thing-2');
    expect(
      reasonOfFailure({
        Error: 'RotationRejectedError',
        Cause: JSON.stringify({ errorType: 'RotationRejectedError', errorMessage: rejected.message, trace: [] }),
      }),
    ).toBe('CSR_CN_MISMATCH');
    expect(reasonOfFailure({ Error: 'RotationRejectedError', Cause: rejected.message })).toBe('CSR_CN_MISMATCH');
  });

  it.each([
    ['another error', { Error: 'ThrottlingException', Cause: 'CSR_CN_MISMATCH: spoofed' }],
    ['an unknown reason', { Error: 'RotationRejectedError', Cause: 'NOT_A_REASON: x' }],
    ['no cause', { Error: 'RotationRejectedError' }],
    ['nothing', undefined],
  ])('is ROTATION_FAILED for %s', (_, failure) => {
    expect(reasonOfFailure(failure)).toBe('ROTATION_FAILED');
  });

  it('knows CDF’s reasons', () => {
    expect(ROTATION_REASONS).toEqual(
      expect.arrayContaining(['DEVICE_NOT_WHITELISTED', 'UNABLE_TO_UPDATE_ASSET_STATUS', 'MISSING_CERTIFICATE_ID']),
    );
  });
});
