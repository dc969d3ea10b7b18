import { DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { parseCertificate } from '../../core/pki';
import type { CertificateRegistry } from '../../core/ports';

/** The local stand-in for the AWS IoT registry's certificates, kept in dynalite. Re-registering is a no-op. */
export const REGISTRY_TABLE = {
  tableName: 'certflow-registry',
  partitionKey: { name: 'pk', type: 'S' as const },
};

export class LocalCertificateRegistry implements CertificateRegistry {
  constructor(
    private readonly dynamodb: DynamoDBClient,
    private readonly tableName = REGISTRY_TABLE.tableName,
  ) {}

  async register(input: { certificatePem: string; caCertificatePem?: string; status: 'ACTIVE' | 'INACTIVE' }) {
    const cert = parseCertificate(input.certificatePem);
    const caId = input.caCertificatePem ? parseCertificate(input.caCertificatePem).id : undefined;
    const certificateArn = `arn:aws:iot:local:000000000000:cert/${cert.id}`;
    await this.dynamodb
      .send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: {
            pk: { S: `cert#${cert.id}` },
            certificateArn: { S: certificateArn },
            status: { S: input.status },
            certificatePem: { S: cert.pem },
            ...(caId ? { caCertificateId: { S: caId } } : {}),
            registeredAt: { S: new Date().toISOString() },
          },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      )
      .catch((e: { name?: string }) => {
        if (e.name !== 'ConditionalCheckFailedException') throw e;
      });
    return { certificateId: cert.id, certificateArn };
  }
}
