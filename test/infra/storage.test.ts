import { Match } from 'aws-cdk-lib/assertions';
import type { CertflowTable } from '../../lib/constructs/certflow-table';
import {
  CA_TABLE,
  createTableInput,
  INVENTORY_TABLE,
  TableDefinition,
  TASK_TABLE,
} from '../../lambdas/adapters/aws/tables';
import { buildCertflowApp, CertflowApp, logicalId } from './certflow-app';

let built: CertflowApp;
beforeAll(() => {
  // the table, buckets and bus do not depend on the function bundles
  built = buildCertflowApp({ bundle: false });
});

describe.each([
  ['task', TASK_TABLE, (app: CertflowApp): CertflowTable => app.stack.table],
  ['inventory', INVENTORY_TABLE, (app: CertflowApp): CertflowTable => app.stack.inventory.inventoryTable],
  ['CA', CA_TABLE, (app: CertflowApp): CertflowTable => app.stack.inventory.caTable],
] as [string, TableDefinition, (app: CertflowApp) => CertflowTable][])('the %s table', (_, definition, tableOf) => {
  const resource = () =>
    (built.template.toJSON().Resources as Record<string, { Properties: Record<string, unknown> } & object>)[
      logicalId(tableOf(built).table)
    ]!;

  it('has exactly the key schema, attributes and indexes of its definition, as the local runtime creates it', () => {
    const local = createTableInput(definition);
    const props = resource().Properties;
    expect({
      KeySchema: props.KeySchema,
      AttributeDefinitions: props.AttributeDefinitions,
      GlobalSecondaryIndexes: props.GlobalSecondaryIndexes,
      BillingMode: props.BillingMode,
    }).toEqual({
      KeySchema: local.KeySchema,
      AttributeDefinitions: local.AttributeDefinitions,
      GlobalSecondaryIndexes: local.GlobalSecondaryIndexes,
      BillingMode: local.BillingMode,
    });
  });

  it('is on demand, encrypted, point-in-time recoverable, protected and retained', () => {
    expect(resource()).toMatchObject({
      Properties: {
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: true },
        DeletionProtectionEnabled: true,
      },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });
});

describe('the table indexes', () => {
  const indexesOf = (table: CertflowTable) =>
    (built.template.toJSON().Resources as Record<string, { Properties: Record<string, unknown> }>)[
      logicalId(table.table)
    ]!.Properties.GlobalSecondaryIndexes;

  it('of the task table: byStatus (gsi1pk, createdAt), projecting ALL', () => {
    expect(indexesOf(built.stack.table)).toEqual([
      {
        IndexName: 'byStatus',
        KeySchema: [
          { AttributeName: 'gsi1pk', KeyType: 'HASH' },
          { AttributeName: 'createdAt', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
    ]);
  });

  it('of the CA table: none (CAs are few, listed by Scan)', () => {
    expect(indexesOf(built.stack.inventory.caTable)).toBeUndefined();
  });

  it('of the inventory table: byIssuer (issuerId, issuedKey) and byExpiry (expiryBucket, expiryKey), projecting ALL', () => {
    expect(indexesOf(built.stack.inventory.inventoryTable)).toEqual([
      {
        IndexName: 'byIssuer',
        KeySchema: [
          { AttributeName: 'issuerId', KeyType: 'HASH' },
          { AttributeName: 'issuedKey', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
      {
        IndexName: 'byExpiry',
        KeySchema: [
          { AttributeName: 'expiryBucket', KeyType: 'HASH' },
          { AttributeName: 'expiryKey', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
    ]);
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

  it('expires batches and bulk provisioning tasks after 30 days, aborts incomplete uploads after 1 day, keeps no versions', () => {
    const bucket = built.template.toJSON().Resources[batchBucket()] as { Properties: Record<string, unknown> };
    expect(bucket.Properties.VersioningConfiguration).toBeUndefined();
    expect(bucket.Properties.LifecycleConfiguration).toEqual({
      Rules: [
        { Id: 'expire-batches', Prefix: 'batches/', ExpirationInDays: 30, Status: 'Enabled' },
        { Id: 'expire-bulk-provisioning', Prefix: 'bulkprovisioning/', ExpirationInDays: 30, Status: 'Enabled' },
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
