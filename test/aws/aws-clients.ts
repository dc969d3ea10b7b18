import { ACMPCAClient } from '@aws-sdk/client-acm-pca';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { IoTClient } from '@aws-sdk/client-iot';
import { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { AwsClients } from '../../lambdas/adapters/aws/bulk-deps';

/** Static test credentials and a region: the SDK needs them to sign, aws-sdk-client-mock answers before any network. */
export const TEST_CLIENT_CONFIG = {
  region: 'eu-west-1',
  credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
};

/** The same in us-east-1 with access key id `x` (the handler tests assert on presigned URLs made with it). */
export const US_EAST_1_CONFIG = {
  region: 'us-east-1',
  credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
};

/** Every client AwsClients holds, made with `config` (their `send` is what the tests mock). */
export const testClients = (config: object = TEST_CLIENT_CONFIG): AwsClients => ({
  dynamodb: new DynamoDBClient(config),
  s3: new S3Client(config),
  eventBridge: new EventBridgeClient(config),
  sfn: new SFNClient(config),
  ssm: new SSMClient(config),
  iot: new IoTClient(config),
  kms: new KMSClient(config),
  pca: new ACMPCAClient(config),
});
