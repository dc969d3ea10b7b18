import {
  DescribeCertificateCommand,
  type IoTClient,
  RegisterCertificateCommand,
  RegisterCertificateWithoutCACommand,
} from '@aws-sdk/client-iot';
import { parseCertificate } from '../../core/pki';
import { type Pace, unpaced } from '../../core/pacing';
import type { CertificateRegistry } from '../../core/ports';
import { isAwsError } from './sdk-errors';

type RegisterInput = Parameters<CertificateRegistry['register']>[0];

/**
 * CertificateRegistry on the AWS IoT registry. Registration is idempotent: a certificate registered before is
 * answered with its id (SHA-256 of the DER) and ARN. Throttling and other service errors propagate unchanged, with
 * their SDK `name`; with a Pace each call takes its slot of the shared rate first and throttling is retried.
 */
export class IotCertificateRegistry implements CertificateRegistry {
  constructor(
    private readonly iot: IoTClient,
    private readonly pace: Pace = unpaced,
  ) {}

  async register(input: RegisterInput): Promise<{ certificateId: string; certificateArn: string }> {
    const { certificatePem, caCertificatePem, status } = input;
    try {
      const output =
        caCertificatePem !== undefined
          ? await this.pace('iot:RegisterCertificate', () =>
              this.iot.send(new RegisterCertificateCommand({ certificatePem, caCertificatePem, status })),
            )
          : await this.pace('iot:RegisterCertificateWithoutCA', () =>
              this.iot.send(new RegisterCertificateWithoutCACommand({ certificatePem, status })),
            );
      if (!output.certificateId || !output.certificateArn) {
        throw new Error('AWS IoT registered the certificate without returning its id and ARN');
      }
      return { certificateId: output.certificateId, certificateArn: output.certificateArn };
    } catch (error) {
      if (!isAwsError(error, 'ResourceAlreadyExistsException')) throw error;
      // registered before (a replayed chunk, a retried rotation): answer with the existing registration
      const certificateId = parseCertificate(certificatePem).id;
      // paced as the registration it completes (its slot of the same schedule; throttling retried)
      const { certificateDescription } = await this.pace(
        caCertificatePem !== undefined ? 'iot:RegisterCertificate' : 'iot:RegisterCertificateWithoutCA',
        () => this.iot.send(new DescribeCertificateCommand({ certificateId })),
      );
      if (!certificateDescription?.certificateArn) {
        throw new Error(`AWS IoT reports certificate ${certificateId} as registered but does not describe it`);
      }
      return { certificateId, certificateArn: certificateDescription.certificateArn };
    }
  }
}
