/**
 * Local IoT topic rules: a device message on the local broker whose topic matches a rule's filter starts the rule's
 * action with the input AWS IoT would build from the rule's SQL (`ruleInput` in lambdas/core/rotation/topics.ts:
 * `topic(n) as deviceId, topic(n+1) as action, principal() as certId, *`).
 *
 * Payloads: an empty payload contributes no fields (CDF's pre-created package `get` has an empty body); otherwise the
 * payload must be a JSON object, else the message is dropped, as AWS IoT cannot evaluate `*` of a non-JSON payload
 * into a Step Functions input.
 */
import { ruleInput, type RotationRule } from '../../lambdas/core/rotation/topics';
import type { DeviceMessage } from './mqtt-broker';

export interface LocalTopicRule {
  name: string;
  rule: RotationRule;
  /** starts the rule's target (a state machine execution) with the rule's input */
  action: (input: Record<string, unknown>) => void | Promise<unknown>;
}

/** the payload's fields for `*`, or undefined when the payload is not a JSON object */
export function payloadFields(payload: Buffer): Record<string, unknown> | undefined {
  if (payload.length === 0) return {};
  try {
    const parsed: unknown = JSON.parse(payload.toString('utf8'));
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** Dispatches device messages to every matching rule; answers the names of the rules it started. */
export function topicRuleDispatcher(
  rules: LocalTopicRule[],
  log: (message: string, extra?: Record<string, unknown>) => void = () => undefined,
): (message: DeviceMessage) => Promise<string[]> {
  return async (message) => {
    const started: string[] = [];
    for (const { name, rule, action } of rules) {
      const fields = payloadFields(message.payload);
      const input = fields && ruleInput(rule, message.topic, fields, message.principal);
      if (!input) {
        if (!fields && ruleInput(rule, message.topic, {}, message.principal)) {
          log('topic rule skipped a payload that is not a JSON object', { rule: name, topic: message.topic });
        }
        continue;
      }
      await action(input);
      started.push(name);
    }
    return started;
  };
}
