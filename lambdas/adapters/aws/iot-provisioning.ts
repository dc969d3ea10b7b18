/**
 * The AWS side of provisioning beyond the DeviceRegistry port: AWS IoT's RegisterThing and the CA certificates
 * registered with AWS IoT. (ACM PCA signs through the shared CsrSigner: csr-signers.ts.)
 */
import { type IoTClient, RegisterThingCommand } from '@aws-sdk/client-iot';
import { InvalidTemplateError } from '../../core/errors';
import { type Pace, unpaced } from '../../core/pacing';
import type { IotCaDirectory, ThingRegistrar } from '../../core/ports';
import { describeCaCertificate } from './ca-certificates';
import { isAwsError } from './sdk-errors';

/**
 * RegisterThing: AWS IoT runs the template (AWS's own engine) with string parameters. With a Pace each call takes its
 * slot of the shared `iot:RegisterThing` rate first and throttling answers are retried with jittered backoff.
 */
export class IotThingRegistrar implements ThingRegistrar {
  constructor(
    private readonly iot: IoTClient,
    private readonly pace: Pace = unpaced,
  ) {}

  async registerThing(templateBody: string, parameters: Record<string, string>) {
    try {
      const out = await this.pace('iot:RegisterThing', () =>
        this.iot.send(new RegisterThingCommand({ templateBody, parameters })),
      );
      return {
        ...(out.certificatePem ? { certificatePem: out.certificatePem } : {}),
        resourceArns: out.resourceArns ?? {},
      };
    } catch (error) {
      // AWS IoT refuses the template or a parameter (InvalidRequestException): a 400 like certflow's own checks
      if (isAwsError(error, 'InvalidRequestException')) {
        throw new InvalidTemplateError('TEMPLATE_REJECTED', '(template)', (error as Error).message, { cause: error });
      }
      throw error;
    }
  }
}

/** CA certificates registered with AWS IoT (DescribeCACertificate), by id or `…:cacert/{id}` ARN. */
export class IotCaCertificates implements IotCaDirectory {
  constructor(private readonly iot: IoTClient) {}

  async certificatePem(caIdOrArn: string): Promise<string> {
    const caId = caIdOrArn.includes(':cacert/') ? caIdOrArn.split(':cacert/')[1]! : caIdOrArn;
    return (await describeCaCertificate(this.iot, caId)).pem;
  }
}
