/**
 * The IoT policy of a rotating device, as CDF's example: it connects as its own thing (client id = thing name, the
 * certificate attached to that thing) and publishes, subscribes and receives only under its own rotation topics and
 * its own jobs topics (`${iot:ClientId}`). One document for both runtimes: the CDK creates it as AWS::IoT::Policy,
 * the local runtime in its device registry; both attach it to rotated certificates that name no previous one.
 */
import { DEFAULT_ROTATION_TOPIC_PREFIX } from './topics';

/** The policy's name unless configured (rotatedCertificatePolicyName). */
export const DEFAULT_ROTATION_DEVICE_POLICY_NAME = 'certflow-rotation-device';

/** Where the policy applies: the partition, region and account of its ARNs (CDK tokens on AWS). */
export interface DevicePolicyScope {
  partition: string;
  region: string;
  account: string;
  /** default `cdf/certificates` */
  topicPrefix?: string;
}

export interface IotPolicyDocument {
  Version: '2012-10-17';
  Statement: {
    Effect: 'Allow';
    Action: string;
    Resource: string | string[];
    Condition?: Record<string, Record<string, string>>;
  }[];
}

export function rotationDevicePolicyDocument(scope: DevicePolicyScope): IotPolicyDocument {
  const base = `arn:${scope.partition}:iot:${scope.region}:${scope.account}`;
  const topic = (name: string) => `${base}:topic/${name}`;
  const topicFilter = (name: string) => `${base}:topicfilter/${name}`;
  const own = `${scope.topicPrefix ?? DEFAULT_ROTATION_TOPIC_PREFIX}/\${iot:ClientId}`;
  const jobs = `$aws/things/\${iot:ClientId}/jobs`;
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Action: 'iot:Connect',
        Resource: `${base}:client/\${iot:Connection.Thing.ThingName}`,
        Condition: { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } },
      },
      {
        Effect: 'Allow',
        Action: 'iot:Publish',
        Resource: [topic(`${own}/get`), topic(`${own}/ack`), topic(`${jobs}/*`)],
      },
      {
        Effect: 'Allow',
        Action: 'iot:Subscribe',
        Resource: [topicFilter(`${own}/get/*`), topicFilter(`${own}/ack/*`), topicFilter(`${jobs}/*`)],
      },
      {
        Effect: 'Allow',
        Action: 'iot:Receive',
        Resource: [topic(`${own}/get/*`), topic(`${own}/ack/*`), topic(`${jobs}/*`)],
      },
    ],
  };
}
