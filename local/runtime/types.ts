/**
 * Plain data shared by the local runtime's building blocks (servers, runner). No I/O here.
 */

/** A DynamoDB key attribute: name and scalar type (S string, N number, B binary). */
export interface KeyAttribute {
  name: string;
  type: 'S' | 'N' | 'B';
}

/** A global secondary index; the local tables always project ALL attributes. */
export interface GlobalSecondaryIndexDefinition {
  indexName: string;
  partitionKey: KeyAttribute;
  sortKey?: KeyAttribute;
}

/**
 * A table as the local runtime creates it (pay-per-request, GSIs projecting ALL). The same shape can describe the
 * CDK tables, so that both runtimes are built from one definition.
 */
export interface TableDefinition {
  tableName: string;
  partitionKey: KeyAttribute;
  sortKey?: KeyAttribute;
  globalSecondaryIndexes?: GlobalSecondaryIndexDefinition[];
}

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
