/** Helpers for precise cdk-nag `appliesTo` findings (the suppressions themselves sit next to the resources). */
import type { RegexAppliesTo } from 'cdk-nag';

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/**
 * The IAM5 finding of a resource ARN of this stack's partition, region and account (as tokens, or literal when
 * the stack has an explicit environment), e.g. `arnFinding('iot', 'cert/*')`. `resource` is literal text.
 */
export function arnFinding(service: string, resource: string): RegexAppliesTo {
  return {
    regex:
      `/^Resource::arn:<AWS::Partition>:${escape(service)}:(<AWS::Region>|[a-z0-9-]+):(<AWS::AccountId>|\\d{12}):` +
      `${escape(resource)}$/`,
  };
}

/** Like arnFinding, with `resource` a regular expression (for names that contain tokens). */
export function arnFindingMatching(service: string, resourcePattern: string): RegexAppliesTo {
  return {
    regex: `/^Resource::arn:<AWS::Partition>:${escape(service)}:(<AWS::Region>|[a-z0-9-]+):(<AWS::AccountId>|\\d{12}):${resourcePattern}$/`,
  };
}

/** The IAM5 finding of objects under `prefix` of a bucket of this stack (`<Bucket.Arn>/prefix*`). */
export function objectsFinding(prefix: string): RegexAppliesTo {
  return { regex: `/^Resource::<[A-Za-z0-9]+\\.Arn>\\/${escape(prefix)}\\*$/` };
}
