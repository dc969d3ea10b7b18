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

/** A piece of an object written by ObjectStore.compose: bytes, or bytes [start, end) of an object in the store. */
export type ObjectPiece = Uint8Array | { copyFrom: { key: string; start: number; end: number } };

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
   * Writes a large object from a stream of pieces with bounded memory (S3 multipart upload underneath): bytes, or
   * ranges of objects already in the store, copied inside the store where it can (S3 UploadPartCopy), otherwise read
   * and written as bytes. Nothing is visible under `key` unless every piece was written.
   */
  compose(key: string, pieces: AsyncIterable<ObjectPiece>, options?: PutOptions): Promise<{ size: number }>;
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
  /** the first failed chunk and its Step Functions error (`{ Error, Cause }` as JSON), written by the workflow */
  chunkFailure?: { index: number; error: string };
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
  /**
   * Marks one chunk done exactly once, with the certificates it registered: a replayed chunk does not count twice.
   * True when this call counted it, false when it had been counted before. `get` then shows one chunk fewer pending.
   */
  completeChunk(taskId: string, chunkIndex: number, registered?: number): Promise<boolean>;
  /** has this chunk been completed before? (lets a re-run skip finished chunks) */
  isChunkDone(taskId: string, chunkIndex: number): Promise<boolean>;
  /**
   * Leases a chunk to one attempt until `untilMs` (epoch ms, the attempt's deadline): false while another attempt
   * holds a lease that has not expired, so two deliveries of one chunk never sign it at the same time.
   */
  claimChunk(taskId: string, chunkIndex: number, attemptId: string, untilMs: number): Promise<boolean>;
  /** gives a lease back (an attempt that failed), if `attemptId` still holds it */
  releaseChunk(taskId: string, chunkIndex: number, attemptId: string): Promise<void>;
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

/**
 * The AWS APIs whose request rate certflow paces (per account and region on AWS; see `DEFAULT_API_RATES` in
 * core/pacing.ts for the default quotas). Bulk issuance, rotation and provisioning name the API they are about to
 * call.
 */
export type RateLimitedApi =
  | 'iot:RegisterCertificate'
  | 'iot:RegisterCertificateWithoutCA'
  | 'iot:CreateKeysAndCertificate'
  | 'iot:CreateThing'
  | 'iot:AttachThingPrincipal'
  | 'iot:AttachPolicy'
  | 'iot:UpdateCertificate'
  | 'iot:RegisterThing'
  | 'acm-pca:IssueCertificate'
  | 'acm-pca:GetCertificate'
  | 'kms:Sign';

/**
 * A request rate shared by every caller of one deployment — all concurrent Distributed Map children, not one per
 * Lambda: a token bucket item in DynamoDB on AWS (`DynamoRateLimiter`), in memory in the local runtime (one process).
 */
export interface RateLimiter {
  /** resolves when one call to `api` fits its configured rate; throws RateLimitBacklogError when the wait would be too long */
  acquire(api: RateLimitedApi): Promise<void>;
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

/**
 * What an attempt has done so far for one certificate of a chunk, kept in S3 between attempts (JSON) so that a
 * re-run chunk neither bills a second certificate nor hands out a certificate whose key was lost.
 */
export interface ExternalIssueProgress {
  /** the device key certflow made for the certificate (PKCS#8 PEM), saved before the CA is asked to sign */
  privateKeyPem?: string;
  /** the CA's id for the requested certificate (ACM PCA certificate ARN) once the CA accepted the request */
  certificateArn?: string;
}

/** Signs device certificates with a CA outside certflow: ACM Private CA, or AWS IoT's own CA. */
export interface DeviceCertificateIssuer {
  /** makes a device key (PKCS#8 PEM) when certflow makes the keys; absent when the CA makes them (AWS IoT) */
  makeKey?(keyType: import('./pki/keys').KeyType): string;
  /**
   * Issues one certificate, resuming from `progress` (what earlier attempts saved; the key when makeKey exists);
   * `record` receives progress worth keeping as it happens (the caller saves it).
   */
  issue(
    input: ExternalIssueInput,
    progress: ExternalIssueProgress,
    record: (progress: ExternalIssueProgress) => void,
  ): Promise<DeviceFiles>;
}

// ---------------------------------------------------------------------------------------------------------------
// CA hierarchy and inventory

export type CertificateKind = 'root' | 'intermediate' | 'server' | 'device';
export type InventoryStatus = 'active' | 'revoked';

/** One certificate in the inventory (filled from `Certificate Issued` / `Certificate Revoked` events). */
export interface InventoryRecord {
  /** lower-case hex SHA-256 of the DER (AWS IoT certificate id) */
  certificateId: string;
  kind: CertificateKind;
  commonName: string;
  /** the issuing CA's id (a certflow CA id — its certificate id —, an ACM PCA ARN or "aws-iot"); roots: their own */
  issuerId: string;
  serialNumber: string;
  notBefore: string;
  notAfter: string;
  status: InventoryStatus;
  /** when the issuance event was recorded (ISO); with certificateId it orders an issuer's certificates stably */
  issuedAt: string;
  revokedAt?: string;
  revocationReason?: string;
  batchId?: string;
  thingName?: string;
  supplierId?: string;
  origin?: string;
}

export interface InventoryPage {
  items: InventoryRecord[];
  /** opaque; absent on the last page */
  nextToken?: string;
}

export interface InventoryQuery {
  status?: InventoryStatus;
  limit: number;
  nextToken?: string;
}

/** The certificate inventory (DynamoDB; dynalite locally). */
export interface Inventory {
  /** records certificates; a record that exists already is left as it is (replayed events change nothing) */
  putIssued(records: InventoryRecord[]): Promise<void>;
  get(certificateId: string): Promise<InventoryRecord | undefined>;
  /** an issuer's certificates in a stable order (issuedAt, then certificateId), paginated */
  listByIssuer(issuerId: string, query: InventoryQuery): Promise<InventoryPage>;
  /** certificates whose notAfter is before `before` (ISO), soonest first, paginated */
  listExpiring(before: string, query: InventoryQuery): Promise<InventoryPage>;
  /** marks one certificate revoked, once: `already` when it was revoked before, `missing` when unknown */
  markRevoked(certificateId: string, revokedAt: string, reason: string): Promise<'revoked' | 'already' | 'missing'>;
  /** remembers that `Certificate Expiring` was sent for this window; false when it had been already */
  markExpiringNotified(certificateId: string, window: string): Promise<boolean>;
}

export type CaKind = 'root' | 'intermediate';

/** A certflow CA's metadata (its key lives in the CaKeyStore, never here). */
export interface CaRecord {
  /** the CA certificate's id (SHA-256 of its DER) */
  caId: string;
  kind: CaKind;
  /** the issuing CA (roots: undefined) */
  parentId?: string;
  commonName: string;
  subject: string;
  serialNumber: string;
  keyType: string;
  status: InventoryStatus;
  notBefore: string;
  notAfter: string;
  pathLength?: number;
  certificatePem: string;
  createdAt: string;
  revokedAt?: string;
  revocationReason?: string;
  /** the number of the CRL last published (0: none yet) */
  crlNumber: number;
}

export interface CaStore {
  /** throws ConflictError when the CA exists */
  create(ca: CaRecord): Promise<void>;
  get(caId: string): Promise<CaRecord | undefined>;
  list(): Promise<CaRecord[]>;
  /** atomically increments and returns the CA's CRL number */
  nextCrlNumber(caId: string): Promise<number>;
  /** marks the CA revoked once; false when it was revoked already */
  markRevoked(caId: string, revokedAt: string, reason: string): Promise<boolean>;
}

/** Stores a new CA's key where CaKeyStore.load finds it (SSM SecureString on AWS, encrypted file locally). */
export interface CaKeyWriter {
  save(
    caId: string,
    ca: { certificatePem: string; chainPem?: string; privateKey: import('node:crypto').KeyObject },
  ): Promise<void>;
}

/** Things that should rotate to a healthy CA (the rotation thing group on AWS IoT; the local registry locally). */
export interface RotationGroup {
  add(thingNames: string[]): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------------
// Device registry and device messages (rotation, provisioning, the certificate provider)

export type RegistryCertificateStatus = 'ACTIVE' | 'INACTIVE' | 'REVOKED' | 'PENDING_ACTIVATION';

export interface ThingRecord {
  thingName: string;
  thingArn: string;
  thingTypeName?: string;
  attributes: Record<string, string>;
}

export interface RegisteredCertificate {
  certificateId: string;
  certificateArn: string;
  status: RegistryCertificateStatus;
  certificatePem?: string;
  /** the registered CA's certificate id, when registered with one */
  caCertificateId?: string;
}

/**
 * The device registry: things, their certificates (principals), policies and thing groups. AWS IoT on AWS
 * (`IotDeviceRegistry`); locally a registry kept in dynalite (`LocalDeviceRegistry`), which the local MQTT broker
 * also consults to admit a device. Methods mirror the AWS IoT calls CDF makes, one call each, so the handler tests
 * can assert the exact AWS call order. Missing things or certificates: `describe*` answer undefined, the others
 * throw NotFoundError. Registering a certificate that is registered already answers the existing registration.
 */
export interface DeviceRegistry extends CertificateRegistry {
  describeThing(thingName: string): Promise<ThingRecord | undefined>;
  /** creates the thing, or answers it when it exists with the same type (attributes are merged) */
  createThing(input: {
    thingName: string;
    thingTypeName?: string;
    attributes?: Record<string, string>;
  }): Promise<ThingRecord>;
  /** merges attributes into the thing's (CDF sets `status` this way) */
  updateThingAttributes(thingName: string, attributes: Record<string, string>): Promise<void>;
  /** the thing groups a thing belongs to */
  listThingGroupsForThing(thingName: string): Promise<string[]>;
  addThingToThingGroup(thingName: string, groupName: string): Promise<void>;
  removeThingFromThingGroup(thingName: string, groupName: string): Promise<void>;
  describeCertificate(certificateId: string): Promise<RegisteredCertificate | undefined>;
  updateCertificateStatus(certificateId: string, status: RegistryCertificateStatus): Promise<void>;
  /** deletes an INACTIVE certificate that no thing and no policy holds */
  deleteCertificate(certificateId: string): Promise<void>;
  attachThingPrincipal(thingName: string, principalArn: string): Promise<void>;
  detachThingPrincipal(thingName: string, principalArn: string): Promise<void>;
  /** the certificate ARNs attached to a thing */
  listThingPrincipals(thingName: string): Promise<string[]>;
  /** the things a certificate is attached to */
  listPrincipalThings(principalArn: string): Promise<string[]>;
  /** the policy names attached to a certificate */
  listAttachedPolicies(principalArn: string): Promise<string[]>;
  attachPolicy(policyName: string, principalArn: string): Promise<void>;
  detachPolicy(policyName: string, principalArn: string): Promise<void>;
  /** the policy's document, undefined when there is no such policy */
  getPolicy(policyName: string): Promise<{ policyName: string; policyArn: string; document: string } | undefined>;
  /** creates a policy, or answers it when it exists with the same document */
  createPolicy(policyName: string, document: string): Promise<{ policyName: string; policyArn: string }>;
}

/** Publishes to devices over MQTT: AWS IoT Data (`IotDataDeviceMessaging`) or the local broker (aedes). */
export interface DeviceMessaging {
  /** QoS 1, JSON payload */
  publish(topic: string, payload: Record<string, unknown>): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------------
// Provisioning (templates → things, certificates, policies)

/** AWS IoT CA certificates (`CA_{ALIAS}` names one by id or ARN); throws NotFoundError for an unknown CA. */
export interface IotCaDirectory {
  certificatePem(caIdOrArn: string): Promise<string>;
}

/** AWS IoT's own template engine: `RegisterThing` with a template body and string parameters (AWS only). */
export interface ThingRegistrar {
  registerThing(
    templateBody: string,
    parameters: Record<string, string>,
  ): Promise<{ certificatePem?: string; resourceArns: Record<string, string> }>;
}
