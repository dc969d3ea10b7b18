/**
 * The MQTT contract of certificate rotation (CDF's certificate vendor): the topics devices publish to and receive
 * on, the IoT topic-rule SQL that turns a device message into a workflow input, and the job document. The CDK topic
 * rules and the local broker's rules both take their text from here.
 */

/** CDF's default topic prefix: devices publish to `cdf/certificates/{thingName}/get` and `…/ack`. */
export const DEFAULT_ROTATION_TOPIC_PREFIX = 'cdf/certificates';
/** CDF's default rotation thing group. */
export const DEFAULT_ROTATION_THING_GROUP = 'cdfRotateCertificates';

export const ROTATION_ACTIONS = ['get', 'ack'] as const;
export type RotationAction = (typeof ROTATION_ACTIONS)[number];
export type ReplyOutcome = 'accepted' | 'rejected';

/** A topic prefix: MQTT topic levels without wildcards, no leading or trailing '/', no `$` (reserved). */
export const TOPIC_PREFIX_PATTERN = /^[A-Za-z0-9_:.-]+(\/[A-Za-z0-9_:.-]+)*$/;

export interface RotationRule {
  action: RotationAction;
  /** the MQTT topic filter the rule listens on, e.g. `cdf/certificates/+/get` */
  topicFilter: string;
  /** the AWS IoT rule SQL (2016-03-23), as CDF writes it */
  sql: string;
  /** 1-based topic level of the thing name: `topic(n)` in the SQL */
  thingLevel: number;
}

export interface RotationTopics {
  prefix: string;
  rules: Record<RotationAction, RotationRule>;
}

/** The rules for a prefix; the prefix's length decides which `topic(n)` holds the thing name. */
export function rotationTopics(prefix: string = DEFAULT_ROTATION_TOPIC_PREFIX): RotationTopics {
  if (!TOPIC_PREFIX_PATTERN.test(prefix)) throw new Error(`invalid rotation topic prefix ${JSON.stringify(prefix)}`);
  const thingLevel = prefix.split('/').length + 1;
  const rule = (action: RotationAction): RotationRule => {
    const topicFilter = `${prefix}/+/${action}`;
    return {
      action,
      topicFilter,
      sql:
        `SELECT topic(${thingLevel}) as deviceId, topic(${thingLevel + 1}) as action, principal() as certId, * ` +
        `FROM '${topicFilter}'`,
      thingLevel,
    };
  };
  return { prefix, rules: { get: rule('get'), ack: rule('ack') } };
}

/** The rules for CDF's default prefix (`cdf/certificates`). */
export const ROTATION_RULES: RotationTopics = rotationTopics();

/** Where a device publishes a request: `{prefix}/{thingName}/{action}`. */
export const requestTopic = (prefix: string, thingName: string, action: RotationAction): string =>
  `${prefix}/${thingName}/${action}`;

/** Where certflow answers: `{prefix}/{thingName}/{action}/accepted|rejected`. */
export const replyTopic = (prefix: string, thingName: string, action: RotationAction, outcome: ReplyOutcome): string =>
  `${prefix}/${thingName}/${action}/${outcome}`;

/**
 * What an IoT rule with the SQL above hands the workflow for a message on `topic`: the thing name and action from
 * the topic, the client certificate's id as `certId`, and the payload's own fields (`*`). Undefined when the topic
 * does not match the rule. The local broker uses this to start the same workflows as AWS IoT does.
 */
export function ruleInput(
  rule: RotationRule,
  topic: string,
  payload: Record<string, unknown>,
  principal: string | undefined,
): Record<string, unknown> | undefined {
  const levels = topic.split('/');
  const filter = rule.topicFilter.split('/');
  if (levels.length !== filter.length) return undefined;
  if (!filter.every((level, i) => level === '+' || level === levels[i])) return undefined;
  // the topic's thing and action and the connection's certificate win over payload fields of the same name
  return {
    ...payload,
    deviceId: levels[rule.thingLevel - 1],
    action: levels[rule.thingLevel],
    ...(principal !== undefined ? { certId: principal } : {}),
  };
}

/**
 * CDF's job document for the continuous rotation job: where the device subscribes and publishes (`{thingName}` is
 * literal text, filled in by the device).
 */
export function rotationJobDocument(prefix: string = DEFAULT_ROTATION_TOPIC_PREFIX): Record<string, unknown> {
  return {
    get: { subscribe: `${prefix}/{thingName}/get/+`, publish: `${prefix}/{thingName}/get` },
    ack: { subscribe: `${prefix}/{thingName}/ack/+`, publish: `${prefix}/{thingName}/ack` },
  };
}
