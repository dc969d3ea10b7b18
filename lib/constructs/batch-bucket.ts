import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Grant, IGrantable } from 'aws-cdk-lib/aws-iam';
import { BlockPublicAccess, Bucket, BucketEncryption, ObjectOwnership } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { batchPrefix } from '../../lambdas/core/bulk/keys';
import { certificateKey, crlKey } from '../../lambdas/core/ca/service';
import { provisioningTaskKey } from '../../lambdas/core/provisioning/bulk';

const topFolder = (key: string): string => `${key.split('/')[0]}/`;

/** The key prefix of every batch object (`batches/`), taken from the key layout the core writes. */
export const BATCHES_PREFIX = topFolder(batchPrefix('-'));
/** The key prefix of the certificates the CA API issues (`certificates/{certificateId}.pem`). */
export const CERTIFICATES_PREFIX = topFolder(certificateKey('-'));
/** The key prefix of bulk provisioning tasks (`bulkprovisioning/{taskId}/`: task, results, saved progress). */
export const BULK_PROVISIONING_PREFIX = topFolder(provisioningTaskKey('-'));
/** The key prefix of the CAs' CRLs (`crls/{caId}.crl` and `crls/{caId}.crl.pem`). */
export const CRLS_PREFIX = topFolder(crlKey('-', 'der'));

/** The S3 object actions certflow's functions use; grants name them one by one (no `s3:*`). */
export type BatchObjectAction = 's3:GetObject' | 's3:PutObject' | 's3:DeleteObject' | 's3:AbortMultipartUpload';

export interface BatchBucketProps {
  /** days after which objects under `batches/` and `bulkprovisioning/` expire, default 30 */
  readonly expireBatchesAfterDays?: number;
  /** days the server access logs are kept, default 365 */
  readonly accessLogsExpireAfterDays?: number;
  /** default RETAIN, for both buckets */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The bucket of certflow's objects: bulk issuance (chunk zips, manifests, batch zips under `batches/{taskId}/`)
 * and the CA hierarchy (issued certificates under `certificates/`, CRLs under `crls/`). Private, TLS only, SSE-S3,
 * unversioned; batches expire after a configurable number of days (certificates and CRLs do not); server access
 * logs to their own bucket.
 */
export class BatchBucket extends Construct {
  readonly bucket: Bucket;
  readonly accessLogsBucket: Bucket;

  constructor(scope: Construct, id: string, props: BatchBucketProps = {}) {
    super(scope, id);
    // Log delivery by bucket policy (logging.s3.amazonaws.com), not by the legacy LogDeliveryWrite ACL, so both
    // buckets keep ACLs disabled (BucketOwnerEnforced). Set here, on this subtree, before any child exists.
    this.node.setContext('@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy', true);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;

    this.accessLogsBucket = new Bucket(this, 'AccessLogs', {
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      // server access logging delivers only to SSE-S3 buckets
      encryption: BucketEncryption.S3_MANAGED,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [
        { id: 'expire-access-logs', expiration: Duration.days(props.accessLogsExpireAfterDays ?? 365) },
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
      removalPolicy,
    });
    // cdk-nag S1 holds for this bucket as it is the access-log target of the batch bucket

    this.bucket = new Bucket(this, 'Bucket', {
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      encryption: BucketEncryption.S3_MANAGED,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: false,
      serverAccessLogsBucket: this.accessLogsBucket,
      serverAccessLogsPrefix: 'batch-bucket/',
      lifecycleRules: [
        {
          id: 'expire-batches',
          prefix: BATCHES_PREFIX,
          expiration: Duration.days(props.expireBatchesAfterDays ?? 30),
        },
        {
          // provisioning results hold the keys certflow made for the things, as batch zips do
          id: 'expire-bulk-provisioning',
          prefix: BULK_PROVISIONING_PREFIX,
          expiration: Duration.days(props.expireBatchesAfterDays ?? 30),
        },
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
      removalPolicy,
    });
  }

  get bucketName(): string {
    return this.bucket.bucketName;
  }

  /** Grants exactly `actions` on the batch objects (`batches/*`), nothing else in the bucket. */
  grantBatchObjects(grantee: IGrantable, ...actions: BatchObjectAction[]): Grant {
    return this.grantObjects(grantee, [BATCHES_PREFIX], ...actions);
  }

  /** Grants exactly `actions` on the objects under `prefixes` (each a folder such as `crls/`), nothing else. */
  grantObjects(grantee: IGrantable, prefixes: readonly string[], ...actions: BatchObjectAction[]): Grant {
    for (const prefix of prefixes) {
      if (!/^[A-Za-z0-9._-]+\/$/.test(prefix)) throw new Error(`${this.node.path}: not a folder prefix: ${prefix}`);
    }
    return Grant.addToPrincipal({
      grantee,
      actions,
      resourceArns: prefixes.map((prefix) => this.bucket.arnForObjects(`${prefix}*`)),
    });
  }

  /**
   * s3:ListBucket on the bucket: without it S3 answers 403 instead of 404 for an absent key, and the adapters
   * tell "not there yet" (HeadObject) from a failure by that 404.
   */
  grantList(grantee: IGrantable): Grant {
    return Grant.addToPrincipal({ grantee, actions: ['s3:ListBucket'], resourceArns: [this.bucket.bucketArn] });
  }
}
