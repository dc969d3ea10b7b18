/**
 * Plain data shared by the local runtime's building blocks (servers, runner). No I/O here.
 */

// Table definitions are the ones the CDK stack uses: one shape, one source.
export type { GlobalSecondaryIndexDefinition, KeyAttribute, TableDefinition } from '../../lambdas/adapters/aws/tables';

/** A server started by the local runtime on 127.0.0.1. */
export interface LocalServer {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Region and static credentials for SDK clients that talk to the local servers. dynalite accepts any credentials;
 * s3rver only knows the access key id `S3RVER` (it rejects others with InvalidAccessKeyId), so both use that pair.
 */
export const LOCAL_AWS_REGION = 'us-east-1';
export const LOCAL_AWS_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;
