/**
 * The AWS side of provisioning beyond the DeviceRegistry port: AWS IoT's RegisterThing, ACM PCA signing a CSR,
 * and the CA certificates registered with AWS IoT.
 */
import type { ACMPCAClient } from '@aws-sdk/client-acm-pca';
import { type IoTClient, RegisterThingCommand } from '@aws-sdk/client-iot';
import { InvalidTemplateError } from '../../core/errors';
import type { IotCaDirectory, PcaCsrSigner, ThingRegistrar } from '../../core/ports';
import { AcmPcaCertificateAuthority } from './acm-pca-authority';
import { describeCaCertificate } from './ca-certificates';
import { isAwsError } from './sdk-errors';

/** RegisterThing: AWS IoT runs the template (AWS's own engine) with string parameters. */
export class IotThingRegistrar implements ThingRegistrar {
  constructor(private readonly iot: IoTClient) {}

  async registerThing(templateBody: string, parameters: Record<string, string>) {
    try {
      const out = await this.iot.send(new RegisterThingCommand({ templateBody, parameters }));
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

/** ACM PCA by ARN (one client per CA, signing algorithm from the CA's key). */
export class AcmPcaCsrSigner implements PcaCsrSigner {
  private readonly cas = new Map<string, AcmPcaCertificateAuthority>();

  constructor(private readonly pca: ACMPCAClient) {}

  async signCsr(input: { caArn: string; csrPem: string; validityDays: number }) {
    let ca = this.cas.get(input.caArn);
    if (!ca) {
      ca = new AcmPcaCertificateAuthority(this.pca, input.caArn);
      this.cas.set(input.caArn, ca);
    }
    const issued = await ca.issue({
      csrPem: input.csrPem,
      validityDays: input.validityDays,
      signingAlgorithm: await ca.signingAlgorithmForCa(),
    });
    return { certificatePem: issued.certificatePem, chainPem: issued.chainPem };
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
