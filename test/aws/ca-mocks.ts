/** A certflow CA as the SSM and AWS IoT mocks serve it to the issuing handlers. */
import { DescribeCACertificateCommand } from '@aws-sdk/client-iot';
import { GetParameterCommand, ParameterNotFound } from '@aws-sdk/client-ssm';
import type { MetadataBearer } from '@smithy/types';
import type { AwsStub } from 'aws-sdk-client-mock';
import { type CreatedCa, privateKeyToPem } from '../../lambdas/core/pki';
import { cmd } from './sdk-mock';

type Mock = AwsStub<object, MetadataBearer, unknown>;

/**
 * The CA `caId` registered in AWS IoT (its certificate from DescribeCACertificate) whose key is the SecureString
 * `cdf-ca-key-{caId}`; it has no `cdf-ca-chain-` or `cdf-ca-cert-` parameter (those reads fail as SSM does).
 */
export function serveIotRegisteredCa(ssmMock: Mock, iotMock: Mock, caId: string, ca: CreatedCa): void {
  ssmMock.on(cmd(GetParameterCommand), { Name: `cdf-ca-key-${caId}` }).resolves({
    Parameter: { Name: `cdf-ca-key-${caId}`, Type: 'SecureString', Value: privateKeyToPem(ca.privateKey) },
  });
  for (const name of [`cdf-ca-chain-${caId}`, `cdf-ca-cert-${caId}`]) {
    ssmMock
      .on(cmd(GetParameterCommand), { Name: name })
      .rejects(new ParameterNotFound({ message: 'parameter not found', $metadata: {} }));
  }
  iotMock.on(cmd(DescribeCACertificateCommand), { certificateId: caId }).resolves({
    certificateDescription: { certificateId: caId, certificatePem: ca.certificate.pem, status: 'ACTIVE' },
  });
}
