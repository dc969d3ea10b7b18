import { AddThingToThingGroupCommand, DescribeThingGroupCommand, type IoTClient } from '@aws-sdk/client-iot';
import { NotFoundError } from '../../core/errors';
import type { RotationGroup } from '../../core/ports';
import { isAwsError } from './sdk-errors';

/** AddThingToThingGroup requests in flight at once (AWS IoT's registry APIs have low per-account rates). */
export const ADD_CONCURRENCY = 5;

/**
 * RotationGroup on an AWS IoT static thing group (CDF's `cdfRotateCertificates`). Adding a thing that is in the group
 * already is a no-op in AWS IoT, so a retried add is harmless. A thing that no longer exists is skipped; when AWS IoT
 * answers ResourceNotFoundException the group itself is checked once, so a missing group is a NotFoundError
 * (THING_GROUP_NOT_FOUND) rather than every thing being skipped. Throttling and other service errors propagate
 * unchanged, with their SDK `name`; no new request starts after one has failed.
 */
export class IotRotationGroup implements RotationGroup {
  constructor(
    private readonly iot: IoTClient,
    readonly groupName: string = 'cdfRotateCertificates',
  ) {}

  async add(thingNames: string[]): Promise<void> {
    const things = [...new Set(thingNames)];
    let groupCheck: Promise<boolean> | undefined;
    let next = 0;
    let failure: { error: unknown } | undefined;
    const worker = async (): Promise<void> => {
      while (failure === undefined && next < things.length) {
        const thingName = things[next++]!;
        try {
          await this.iot.send(new AddThingToThingGroupCommand({ thingGroupName: this.groupName, thingName }));
        } catch (error) {
          if (!isAwsError(error, 'ResourceNotFoundException')) {
            failure ??= { error };
            continue;
          }
          groupCheck ??= this.groupExists();
          try {
            if (!(await groupCheck)) failure ??= { error: this.groupNotFound(error) };
            // else: the thing is gone (deleted since its certificate was issued): nothing to rotate
          } catch (checkError) {
            failure ??= { error: checkError };
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(ADD_CONCURRENCY, things.length) }, worker));
    if (failure !== undefined) throw failure.error;
  }

  private async groupExists(): Promise<boolean> {
    try {
      await this.iot.send(new DescribeThingGroupCommand({ thingGroupName: this.groupName }));
      return true;
    } catch (error) {
      if (isAwsError(error, 'ResourceNotFoundException')) return false;
      throw error;
    }
  }

  private groupNotFound(cause: unknown): NotFoundError {
    return new NotFoundError('THING_GROUP_NOT_FOUND', `thing group ${this.groupName} not found`, {
      cause,
      details: { thingGroupName: this.groupName },
    });
  }
}
