import { Match } from 'aws-cdk-lib/assertions';
import { createTableInput, TASK_TABLE } from '../../lambdas/adapters/aws/tables';
import { buildCertflowApp, CertflowApp, logicalId } from './certflow-app';

let built: CertflowApp;
beforeAll(() => {
  // the table, buckets and bus do not depend on the function bundles
  built = buildCertflowApp({ bundle: false });
});

describe('TaskTable', () => {
  it('has the key schema, attributes and indexes of TASK_TABLE, as the local runtime creates it', () => {
    const local = createTableInput(TASK_TABLE);
    built.template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: local.KeySchema,
      AttributeDefinitions: Match.arrayWith(local.AttributeDefinitions),
      GlobalSecondaryIndexes: local.GlobalSecondaryIndexes,
      BillingMode: 'PAY_PER_REQUEST',
    });
    const [table] = Object.values(built.template.findResources('AWS::DynamoDB::Table'));
    const props = (table as { Properties: { AttributeDefinitions: unknown[] } }).Properties;
    expect(props.AttributeDefinitions).toHaveLength(local.AttributeDefinitions.length);
  });

  it('has the byStatus index', () => {
    built.template.hasResourceProperties('AWS::DynamoDB::Table', {
      GlobalSecondaryIndexes: [
        {
          IndexName: 'byStatus',
          KeySchema: [
            { AttributeName: 'gsi1pk', KeyType: 'HASH' },
            { AttributeName: 'createdAt', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
        },
      ],
    });
  });

  it('is encrypted, point-in-time recoverable, protected and retained', () => {
    built.template.hasResource('AWS::DynamoDB::Table', {
      Properties: Match.objectLike({
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: true },
        DeletionProtectionEnabled: true,
      }),
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });
});

describe('BatchBucket', () => {
  const batchBucket = () => logicalId(built.stack.bucket.bucket);

  it('blocks all public access on both buckets', () => {
    const buckets = built.template.findResources('AWS::S3::Bucket');
    expect(Object.keys(buckets)).toHaveLength(2);
    for (const bucket of Object.values(buckets) as { Properties: Record<string, unknown> }[]) {
      expect(bucket.Properties.PublicAccessBlockConfiguration).toEqual({
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
      expect(bucket.Properties.BucketEncryption).toEqual({
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      });
    }
  });

  it('denies requests without TLS', () => {
    built.template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: batchBucket() },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 's3:*',
            Principal: { AWS: '*' },
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });

  it('expires batches after 30 days, aborts incomplete uploads after 1 day, keeps no versions', () => {
    const bucket = built.template.toJSON().Resources[batchBucket()] as { Properties: Record<string, unknown> };
    expect(bucket.Properties.VersioningConfiguration).toBeUndefined();
    expect(bucket.Properties.LifecycleConfiguration).toEqual({
      Rules: [
        { Id: 'expire-batches', Prefix: 'batches/', ExpirationInDays: 30, Status: 'Enabled' },
        {
          Id: 'abort-incomplete-uploads',
          AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
          Status: 'Enabled',
        },
      ],
    });
  });

  it('logs server access to the separate log bucket, delivered by bucket policy', () => {
    const logs = logicalId(built.stack.bucket.accessLogsBucket);
    built.template.hasResourceProperties('AWS::S3::Bucket', {
      LoggingConfiguration: { DestinationBucketName: { Ref: logs }, LogFilePrefix: 'batch-bucket/' },
    });
    built.template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: logs },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Action: 's3:PutObject', Principal: { Service: 'logging.s3.amazonaws.com' } }),
        ]),
      },
    });
  });
});

describe('CertflowEventBus', () => {
  it('is the custom bus named certflow', () => {
    built.template.hasResourceProperties('AWS::Events::EventBus', { Name: 'certflow' });
  });

  it('archives the events of source certflow for replay', () => {
    built.template.hasResourceProperties('AWS::Events::Archive', {
      SourceArn: { 'Fn::GetAtt': [logicalId(built.stack.bus.bus), 'Arn'] },
      EventPattern: { source: ['certflow'] },
      RetentionDays: 90,
    });
  });
});
