/**
 * The interfaces the core needs from the outside world. `lib/` (AWS) and `local/` choose the implementations;
 * handlers receive them as arguments. Implementations are named technology + interface (S3ObjectStore,
 * DynamoTaskStore, FileCaKeyStore …).
 */
import type { Issuer, ParsedCertificate } from './pki/certificate';

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

export interface ObjectHead {
  size: number;
  contentType?: string;
  metadata: Record<string, string>;
}

export interface PutOptions {
  contentType?: string;
  metadata?: Record<string, string>;
}

/** Objects (S3 or s3rver): batch chunks, zips, templates, CRLs. Keys never start with '/'. */
export interface ObjectStore {
  put(key: string, body: Buffer | string, options?: PutOptions): Promise<void>;
  /** throws NotFoundError when absent */
  get(key: string): Promise<Buffer>;
  /** bytes [start, end) of an object; throws NotFoundError when absent */
  getRange(key: string, start: number, end: number): Promise<Buffer>;
  /** the object as a stream of chunks; throws NotFoundError when absent */
  getStream(key: string): Promise<AsyncIterable<Uint8Array>>;
  head(key: string): Promise<ObjectHead | undefined>;
  /**
   * Writes a large object from a stream with bounded memory (S3 multipart upload underneath).
   * Nothing is visible under `key` unless the whole stream was written.
   */
  upload(key: string, body: AsyncIterable<Uint8Array>, options?: PutOptions): Promise<{ size: number }>;
  /** a URL anyone can GET for `expiresInSeconds`; `downloadName` sets Content-Disposition */
  presignGet(key: string, expiresInSeconds: number, downloadName?: string): Promise<string>;
  list(prefix: string): Promise<string[]>;
  delete(keys: string[]): Promise<void>;
}

export type TaskStatus = 'pending' | 'in_progress' | 'complete' | 'failed';

export interface TaskError {
  code: string;
  message: string;
}

/** A bulk-issuance batch as stored (one item per task). */
export interface BatchTask {
  taskId: string;
  supplierId: string;
  status: TaskStatus;
  quantity: number;
  chunkSize: number;
  chunksTotal: number;
  chunksPending: number;
  createdAt: string;
  updatedAt?: string;
  completedAt?: string;
  error?: TaskError;
  /** a summary of the request (key type, layout …); the whole validated request is kept in S3 next to the chunks */
  request: Record<string, unknown>;
  /** S3 key of the complete zip */
  zipKey?: string;
  zipSize?: number;
  registered?: number;
}

export interface TaskStore {
  /** creates the task; throws ConflictError when the id exists */
  create(task: BatchTask): Promise<void>;
  get(taskId: string): Promise<BatchTask | undefined>;
  /**
   * Remembers `taskId` for an idempotency key; returns the task id stored first when the key was already used
   * (with the fingerprint of the request that used it).
   */
  claimIdempotencyKey(
    scope: string,
    key: string,
    taskId: string,
    fingerprint: string,
  ): Promise<{ taskId: string; fingerprint: string } | undefined>;
  setStatus(
    taskId: string,
    status: TaskStatus,
    fields?: Partial<Pick<BatchTask, 'error' | 'completedAt' | 'zipKey' | 'zipSize'>>,
  ): Promise<void>;
  /** marks one chunk done exactly once (a replayed chunk does not count twice); returns the chunks still pending */
  completeChunk(taskId: string, chunkIndex: number, registered?: number): Promise<number>;
  /** has this chunk been completed before? (lets a re-run skip finished chunks) */
  isChunkDone(taskId: string, chunkIndex: number): Promise<boolean>;
  /** tasks in these states, oldest first (used to resume after a local restart) */
  listByStatus(statuses: TaskStatus[]): Promise<BatchTask[]>;
}

export interface DomainEvent {
  detailType: string;
  detail: Record<string, unknown>;
}

/** EventBridge (source "certflow") or the local bus. */
export interface EventPublisher {
  publish(events: DomainEvent[]): Promise<void>;
}

/** Starts a workflow execution named `name` (the task id). Starting the same name twice is not an error. */
export interface WorkflowStarter {
  start(workflow: string, name: string, input: Record<string, unknown>): Promise<void>;
}

/** Where a supplier's certificates are signed. */
export type SupplierCa = { type: 'certflow'; caId: string } | { type: 'acm-pca'; arn: string } | { type: 'aws-iot' };

export interface SupplierDirectory {
  get(supplierId: string): Promise<SupplierCa | undefined>;
}

/** A certflow CA ready to sign: the issuer and its chain up to the root (issuer first). */
export interface LoadedCa {
  caId: string;
  issuer: Issuer;
  chain: ParsedCertificate[];
}

/** CA keys: SSM SecureString or KMS on AWS, encrypted files locally. Throws NotFoundError for an unknown CA. */
export interface CaKeyStore {
  load(caId: string): Promise<LoadedCa>;
}

/** Registration of certificates with the device registry (AWS IoT, or the local registry). */
export interface CertificateRegistry {
  register(input: {
    certificatePem: string;
    caCertificatePem?: string;
    status: 'ACTIVE' | 'INACTIVE';
  }): Promise<{ certificateId: string; certificateArn: string }>;
}

/** One device's certificate files as an issuer outside certflow returns them (private key when it made one). */
export interface DeviceFiles {
  commonName: string;
  certificateId: string;
  serialNumber: string;
  certificatePem: string;
  privateKeyPem?: string;
  publicKeyPem?: string;
  chainPem?: string;
}

export interface ExternalIssueInput {
  commonName: string;
  /** the batch's subject fields other than the common name */
  subject: Record<string, string | undefined>;
  keyType: import('./pki/keys').KeyType;
  validityDays: number;
  /** stable per batch and index, so a replayed chunk is not billed or issued twice */
  idempotencyToken: string;
  includeChain: boolean;
}

/** Signs device certificates with a CA outside certflow: ACM Private CA, or AWS IoT's own CA. */
export interface DeviceCertificateIssuer {
  issue(input: ExternalIssueInput): Promise<DeviceFiles>;
}
