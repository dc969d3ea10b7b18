/**
 * Certificate rotation over MQTT (CDF's certificate vendor), as the steps of the rotation-get and rotation-ack
 * workflows: approve the device, vend a certificate (sign its CSR, or activate its pre-created package), reply,
 * undo a half-done rotation, and retire the previous certificate on ack. Every registry call goes through the
 * DeviceRegistry port, one AWS IoT call each, in the order CDF makes them.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { CsrRejectedError, isCertflowError, NotFoundError } from '../errors';
import { domainEvent } from '../events';
import { certificateIdOfArnOrUndefined } from '../naming/certificate-arn';
import type { ParsedCertificate } from '../pki/certificate';
import { parseCsr, type ParsedCsr } from '../pki/csr';
import type { Clock, DeviceMessaging, DeviceRegistry, EventPublisher, ObjectStore } from '../ports';
import type { CsrSigner } from '../signing/csr-signer';
import { CSR_REASONS, isTransient, reasonOfFailure, RotationRejectedError, type RotationReason } from './reasons';
import {
  DEFAULT_ROTATION_THING_GROUP,
  DEFAULT_ROTATION_TOPIC_PREFIX,
  replyTopic,
  type ReplyOutcome,
  type RotationAction,
} from './topics';

export interface RotationConfig {
  /** default `cdf/certificates` */
  topicPrefix: string;
  /** default `cdfRotateCertificates` */
  thingGroupName: string;
  /** the device must exist in the registry (DescribeThing) before its group membership is checked; default true */
  requireRegisteredThing: boolean;
  /** days a rotated certificate is valid (CDF: 1095) */
  validityDays: number;
  /** attached to a new certificate when the device names no previous certificate; none when absent */
  rotatedCertificatePolicyName?: string;
  /** ack: detach and delete the previous certificate(s); default false (CDF's default) */
  deletePreviousCertificate: boolean;
  /** register the new certificate with its CA's certificate (RegisterCertificate), else without (default true) */
  registerWithCa: boolean;
  /** lifetime of the package's presigned URL (CDF: 300 s) */
  presignSeconds: number;
}

export const DEFAULT_ROTATION_CONFIG: RotationConfig = {
  topicPrefix: DEFAULT_ROTATION_TOPIC_PREFIX,
  thingGroupName: DEFAULT_ROTATION_THING_GROUP,
  requireRegisteredThing: true,
  validityDays: 1095,
  deletePreviousCertificate: false,
  registerWithCa: true,
  presignSeconds: 300,
};

export interface RotationDeps {
  registry: DeviceRegistry;
  messaging: DeviceMessaging;
  objects: ObjectStore;
  events: EventPublisher;
  clock: Clock;
  config: RotationConfig;
  /**
   * the CA that signs CSRs (the certificate provider's CsrSigner: a certflow CA, CDF's CERTIFICATES_CACERTIFICATEID,
   * or ACM Private CA); none: CSRs are refused (UNABLE_TO_FETCH_CA_KEY)
   */
  signer?: CsrSigner;
  /** told about undo steps that failed (the original failure is what the workflow sees) */
  onUndoFailure?: (step: string, error: unknown) => void;
}

// ---------------------------------------------------------------------------------------------------------------
// Inputs

const THING_NAME = /^[a-zA-Z0-9:_-]{1,128}$/;
const CERTIFICATE_ID = /^[0-9a-f]{64}$/;

/** What the IoT rule hands the workflow: `{ deviceId, action, certId, ...payload }`. */
export const RotationRequest = z
  .object({
    deviceId: z.string().regex(THING_NAME, 'a thing name'),
    action: z.enum(['get', 'ack']),
    /**
     * principal(): the certificate id of the MQTT connection (other principals, e.g. an IAM caller publishing
     * through IoT Data, give other strings: they name no certificate)
     */
    certId: z.string().max(512).nullish(),
    csr: z.string().min(1).max(16_384).optional(),
    previousCertificateId: z.string().regex(CERTIFICATE_ID, 'a certificate id').optional(),
  })
  .loose();
export type RotationRequest = z.infer<typeof RotationRequest>;

export function parseRotationRequest(input: unknown, action?: RotationAction): RotationRequest {
  const parsed = RotationRequest.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new RotationRejectedError('INVALID_REQUEST', `${issue.path.join('.') || '(input)'}: ${issue.message}`);
  }
  if (action && parsed.data.action !== action) {
    throw new RotationRejectedError('INVALID_REQUEST', `action must be ${action}`);
  }
  return parsed.data;
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/** Runs one step: transient errors and rejections pass unchanged, anything else is refused with `reason`. */
async function step<T>(reason: RotationReason, what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof RotationRejectedError || isTransient(error)) throw error;
    const message = error instanceof Error ? error.message : String(error);
    throw new RotationRejectedError(reason, `${what}: ${message}`, { cause: error });
  }
}

/** Undo steps of a half-done rotation, run last-in first-out when a later step fails. */
class UndoLog {
  private readonly steps: { name: string; run: () => Promise<void> }[] = [];
  constructor(private readonly onFailure?: (step: string, error: unknown) => void) {}

  push(name: string, run: () => Promise<void>): void {
    this.steps.push({ name, run });
  }

  async run(): Promise<void> {
    for (const { name, run } of this.steps.reverse()) {
      try {
        await run();
      } catch (error) {
        // keep undoing: the rest may still succeed; the original failure is what the caller sees
        this.onFailure?.(name, error);
      }
    }
    this.steps.length = 0;
  }
}

const issuedSummary = (cert: ParsedCertificate) => ({
  certificateId: cert.id,
  serialNumber: cert.serialNumber,
  commonName: cert.commonName ?? cert.subject,
  notBefore: cert.notBefore.toISOString(),
  notAfter: cert.notAfter.toISOString(),
});

// ---------------------------------------------------------------------------------------------------------------
// Approval

/**
 * Only devices that exist in the registry (when configured) and belong to the rotation thing group may rotate
 * (CDF's whitelist). Refused: DEVICE_NOT_WHITELISTED; a registry failure: UNABLE_TO_CHECK_WHITELIST.
 */
export async function approveDevice(deps: RotationDeps, input: unknown): Promise<RotationRequest> {
  const request = parseRotationRequest(input);
  const { deviceId } = request;
  const { registry, config } = deps;
  if (config.requireRegisteredThing) {
    const thing = await step('UNABLE_TO_CHECK_WHITELIST', 'DescribeThing', () => registry.describeThing(deviceId));
    if (!thing) throw new RotationRejectedError('DEVICE_NOT_WHITELISTED', `no thing ${deviceId} in the registry`);
  }
  const groups = await step('UNABLE_TO_CHECK_WHITELIST', 'ListThingGroupsForThing', async () => {
    try {
      return await registry.listThingGroupsForThing(deviceId);
    } catch (error) {
      if (error instanceof NotFoundError) return [];
      throw error;
    }
  });
  if (!groups.includes(config.thingGroupName)) {
    throw new RotationRejectedError('DEVICE_NOT_WHITELISTED', `${deviceId} is not in ${config.thingGroupName}`);
  }
  return request;
}

// ---------------------------------------------------------------------------------------------------------------
// get

export type VendMode = 'csr' | 'package';

export interface VendResult {
  deviceId: string;
  action: 'get';
  mode: VendMode;
  certificateId: string;
  certificateArn: string;
  /**
   * whether this request made the certificate ACTIVE: always for a signed one; for a package only when it was not
   * ACTIVE already (a repeated get must not have its rollback cut off a device that uses the package's certificate)
   */
  newlyActivated: boolean;
  /** the `…/get/accepted` payload */
  reply:
    | { deviceId: string; action: 'get'; location: string }
    | {
        deviceId: string;
        action: 'get';
        certificateId: string;
        certificate: string;
      };
}

/** The pre-created package of a thing (CDF: `certificates/{thingName}.zip`). */
export const packageKey = (thingName: string): string => `certificates/${thingName}.zip`;

/** `get`: a CSR is signed; without one the pre-created package is vended. */
export async function vendCertificate(deps: RotationDeps, input: unknown): Promise<VendResult> {
  const request = parseRotationRequest(input, 'get');
  return request.csr !== undefined ? signCsr(deps, request, request.csr) : vendPackage(deps, request);
}

/**
 * Pre-created package: head the zip, its metadata `certificateid` names the certificate → UpdateCertificate ACTIVE →
 * AttachThingPrincipal → presign (300 s) → thing attribute status=active → `{ deviceId, action, location }`.
 * A failure after activation detaches the certificate and sets it INACTIVE again.
 */
async function vendPackage(deps: RotationDeps, request: RotationRequest): Promise<VendResult> {
  const { registry, objects, config } = deps;
  const thingName = request.deviceId;
  const key = packageKey(thingName);
  const head = await step('CERTIFICATE_NOT_FOUND', 'HeadObject', () => objects.head(key));
  if (!head) throw new RotationRejectedError('CERTIFICATE_NOT_FOUND', `no package ${key}`);
  const certificateId = head.metadata.certificateid;
  if (!certificateId) throw new RotationRejectedError('MISSING_CERTIFICATE_ID', `${key} names no certificateid`);
  const certificate = await step('CERTIFICATE_NOT_FOUND', 'DescribeCertificate', () =>
    registry.describeCertificate(certificateId),
  );
  if (!certificate) throw new RotationRejectedError('CERTIFICATE_NOT_FOUND', `no certificate ${certificateId}`);
  const arn = certificate.certificateArn;
  // vended before (the device asks again): nothing of it is undone here
  const newlyActivated = certificate.status !== 'ACTIVE';

  const undo = new UndoLog(deps.onUndoFailure);
  try {
    await step('UNABLE_TO_ACTIVATE_CERTIFICATE', 'UpdateCertificate', () =>
      registry.updateCertificateStatus(certificateId, 'ACTIVE'),
    );
    if (newlyActivated) {
      undo.push('UpdateCertificate INACTIVE', () => registry.updateCertificateStatus(certificateId, 'INACTIVE'));
    }
    await step('UNABLE_TO_ATTACH_CERTIFICATE', 'AttachThingPrincipal', () =>
      registry.attachThingPrincipal(thingName, arn),
    );
    if (newlyActivated) undo.push('DetachThingPrincipal', () => registry.detachThingPrincipal(thingName, arn));
    const location = await step('UNABLE_TO_PRESIGN_URL', 'presign', () =>
      objects.presignGet(key, config.presignSeconds),
    );
    await step('UNABLE_TO_UPDATE_ASSET_STATUS', 'UpdateThing', () =>
      registry.updateThingAttributes(thingName, { status: 'active' }),
    );
    return {
      deviceId: thingName,
      action: 'get',
      mode: 'package',
      certificateId,
      certificateArn: arn,
      newlyActivated,
      reply: { deviceId: thingName, action: 'get', location },
    };
  } catch (error) {
    await undo.run();
    throw error;
  }
}

function verifyCsr(pem: string, thingName: string): ParsedCsr {
  let csr: ParsedCsr;
  try {
    csr = parseCsr(pem);
  } catch (error) {
    if (isCertflowError(error)) {
      const code = (CSR_REASONS as readonly string[]).includes(error.code)
        ? (error.code as RotationReason)
        : 'INVALID_CSR';
      throw new RotationRejectedError(code, error.message, { cause: error });
    }
    throw new RotationRejectedError('INVALID_CSR', 'the CSR cannot be read', { cause: error });
  }
  if (csr.commonName !== thingName) {
    throw new RotationRejectedError(
      'CSR_CN_MISMATCH',
      `the CSR's common name ${JSON.stringify(csr.commonName ?? '')} is not the thing name ${thingName}`,
      { cause: new CsrRejectedError('CSR_CN_MISMATCH', 'common name mismatch') },
    );
  }
  return csr;
}

interface Signed {
  certificate: ParsedCertificate;
  caCertificatePem?: string;
  issuerId: string;
}

async function sign(deps: RotationDeps, csr: ParsedCsr, thingName: string): Promise<Signed> {
  const { config, signer } = deps;
  if (!signer) throw new RotationRejectedError('UNABLE_TO_FETCH_CA_KEY', 'no rotation CA is configured');
  // the CA first: one that cannot be reached is told apart from a signature that failed
  await step(
    signer.kind === 'acm-pca' ? 'UNABLE_TO_GET_CA_CERTIFICATE' : 'UNABLE_TO_FETCH_CA_KEY',
    signer.kind === 'acm-pca' ? 'DescribeCertificateAuthority' : `load CA ${signer.issuerId}`,
    () => signer.prepare(),
  );
  const signed = await step(
    'UNABLE_TO_ISSUE_CERTIFICATE',
    signer.kind === 'acm-pca' ? 'IssueCertificate' : 'sign',
    () =>
      signer.sign(csr, {
        validityDays: config.validityDays,
        now: deps.clock.now(),
        // never beyond the CA: a CA nearer its end than the configured validity still rotates its devices
        capAtCaEnd: true,
        // a retried step within ACM PCA's 5 minutes gets the same certificate back, not a second one
        idempotencyToken: createHash('sha256').update(`rotation:${thingName}:`).update(csr.der).digest('hex'),
      }),
  );
  if (signer.kind === 'acm-pca' && config.registerWithCa && !signed.caCertificatePem) {
    throw new RotationRejectedError('UNABLE_TO_GET_CA_CERTIFICATE', `ACM PCA ${signer.issuerId} returned no chain`);
  }
  return {
    certificate: signed.certificate,
    ...(signed.caCertificatePem ? { caCertificatePem: signed.caCertificatePem } : {}),
    issuerId: signer.issuerId,
  };
}

/**
 * CSR: verify it (proof of possession, key policy, CN = thing name) → the previous certificate's policies
 * (ListAttachedPolicies, after checking it is this thing's) or the configured policy → sign → RegisterCertificate
 * ACTIVE → AttachThingPrincipal → AttachPolicy … → thing attribute status=active → Certificate Issued →
 * `{ deviceId, action, certificateId, certificate }`. A failure after registration detaches, inactivates and
 * deletes the new certificate (CDF leaves it behind).
 */
async function signCsr(deps: RotationDeps, request: RotationRequest, csrPem: string): Promise<VendResult> {
  const { registry, config } = deps;
  const thingName = request.deviceId;
  const csr = verifyCsr(csrPem, thingName);

  let policies: string[];
  const previousId = request.previousCertificateId;
  if (previousId !== undefined) {
    const previous = await step('PREVIOUS_CERTIFICATE_NOT_FOUND', 'DescribeCertificate', () =>
      registry.describeCertificate(previousId),
    );
    if (!previous) throw new RotationRejectedError('PREVIOUS_CERTIFICATE_NOT_FOUND', `no certificate ${previousId}`);
    const holders = await step('PREVIOUS_CERTIFICATE_NOT_FOUND', 'ListPrincipalThings', () =>
      registry.listPrincipalThings(previous.certificateArn),
    );
    if (!holders.includes(thingName)) {
      throw new RotationRejectedError(
        'PREVIOUS_CERTIFICATE_NOT_ATTACHED',
        `certificate ${previousId} is not attached to ${thingName}`,
      );
    }
    policies = await step('UNABLE_TO_ATTACH_POLICY', 'ListAttachedPolicies', () =>
      registry.listAttachedPolicies(previous.certificateArn),
    );
  } else {
    policies = config.rotatedCertificatePolicyName ? [config.rotatedCertificatePolicyName] : [];
  }

  const signed = await sign(deps, csr, thingName);
  const { certificate } = signed;
  const undo = new UndoLog(deps.onUndoFailure);
  try {
    const registered = await step('UNABLE_TO_REGISTER_CERTIFICATE', 'RegisterCertificate', () =>
      registry.register({
        certificatePem: certificate.pem,
        ...(config.registerWithCa && signed.caCertificatePem ? { caCertificatePem: signed.caCertificatePem } : {}),
        status: 'ACTIVE',
      }),
    );
    const arn = registered.certificateArn;
    undo.push('DeleteCertificate', () => registry.deleteCertificate(registered.certificateId));
    undo.push('UpdateCertificate INACTIVE', () =>
      registry.updateCertificateStatus(registered.certificateId, 'INACTIVE'),
    );
    await step('UNABLE_TO_ATTACH_CERTIFICATE', 'AttachThingPrincipal', () =>
      registry.attachThingPrincipal(thingName, arn),
    );
    undo.push('DetachThingPrincipal', () => registry.detachThingPrincipal(thingName, arn));
    for (const policy of policies) {
      await step('UNABLE_TO_ATTACH_POLICY', `AttachPolicy ${policy}`, () => registry.attachPolicy(policy, arn));
      undo.push(`DetachPolicy ${policy}`, () => registry.detachPolicy(policy, arn));
    }
    await step('UNABLE_TO_UPDATE_ASSET_STATUS', 'UpdateThing', () =>
      registry.updateThingAttributes(thingName, { status: 'active' }),
    );
    await deps.events.publish([
      domainEvent('Certificate Issued', {
        issuerId: signed.issuerId,
        kind: 'device',
        origin: 'rotation',
        thingName,
        certificates: [issuedSummary(certificate)],
      }),
    ]);
    return {
      deviceId: thingName,
      action: 'get',
      mode: 'csr',
      certificateId: registered.certificateId,
      certificateArn: arn,
      newlyActivated: true,
      reply: {
        deviceId: thingName,
        action: 'get',
        certificateId: registered.certificateId,
        certificate: certificate.pem,
      },
    };
  } catch (error) {
    await undo.run();
    throw error;
  }
}

export const RollbackInput = z.object({
  deviceId: z.string().regex(THING_NAME),
  mode: z.enum(['csr', 'package']),
  certificateId: z.string().regex(CERTIFICATE_ID),
  certificateArn: z.string().min(1),
  /** false: the package's certificate was ACTIVE before this request, and stays as it was */
  newlyActivated: z.boolean().default(true),
});
export type RollbackInput = z.infer<typeof RollbackInput>;

/**
 * Undoes a vended certificate whose reply could not be published (the device never got it): a signed one is
 * detached from its policies and the thing, inactivated and deleted; a package's is detached and set INACTIVE again.
 * Steps whose work is already undone are skipped (a retried rollback finishes the job).
 */
export async function rollBackCertificate(
  deps: RotationDeps,
  input: unknown,
): Promise<{ deviceId: string; certificateId: string; rolledBack: boolean }> {
  const parsed = RollbackInput.safeParse(input);
  if (!parsed.success) throw new RotationRejectedError('INVALID_REQUEST', parsed.error.issues[0]!.message);
  const { deviceId, mode, certificateId, certificateArn, newlyActivated } = parsed.data;
  const { registry } = deps;
  if (!newlyActivated) return { deviceId, certificateId, rolledBack: false };
  const gone = (error: unknown) => {
    if (!(error instanceof NotFoundError)) throw error;
  };
  if (!(await registry.describeCertificate(certificateId))) return { deviceId, certificateId, rolledBack: true };
  if (mode === 'csr') {
    for (const policy of await registry.listAttachedPolicies(certificateArn)) {
      await registry.detachPolicy(policy, certificateArn).catch(gone);
    }
  }
  await registry.detachThingPrincipal(deviceId, certificateArn).catch(gone);
  await registry.updateCertificateStatus(certificateId, 'INACTIVE');
  if (mode === 'csr') await registry.deleteCertificate(certificateId).catch(gone);
  return { deviceId, certificateId, rolledBack: true };
}

// ---------------------------------------------------------------------------------------------------------------
// ack

export interface AckResult {
  deviceId: string;
  action: 'ack';
  previousCertificateIds: string[];
  deletedCertificateIds: string[];
  reply: { message: 'OK' };
}

/**
 * `ack`: when deletion is on, retire the previous certificate(s) — `previousCertificateId` when given, else every
 * other certificate of the thing than the one it acknowledged with — : DetachThingPrincipal, and when no thing holds
 * it any more, DetachPolicy for each, UpdateCertificate INACTIVE, DeleteCertificate. Then RemoveThingFromThingGroup
 * and `Certificate Rotated`. (CDF leaves the group first; certflow leaves it last, so that a retried ack is still
 * approved.)
 */
export async function acknowledgeRotation(deps: RotationDeps, input: unknown): Promise<AckResult> {
  const request = parseRotationRequest(input, 'ack');
  const { registry, config } = deps;
  const thingName = request.deviceId;
  const currentId = request.certId && CERTIFICATE_ID.test(request.certId) ? request.certId : undefined;
  const previous: string[] = [];
  const deleted: string[] = [];

  if (config.deletePreviousCertificate) {
    let targets: { arn: string; id: string }[];
    if (request.previousCertificateId !== undefined) {
      const previousId = request.previousCertificateId;
      if (previousId === currentId) {
        throw new RotationRejectedError('INVALID_REQUEST', 'previousCertificateId is the certificate in use');
      }
      const described = await step('UNABLE_TO_DELETE_PREVIOUS_CERTIFICATE', 'DescribeCertificate', () =>
        registry.describeCertificate(previousId),
      );
      // gone already (a retried ack, or deleted by hand): nothing left to retire
      targets = described ? [{ arn: described.certificateArn, id: previousId }] : [];
      if (described) {
        // only this thing's own certificate: never one of another thing, nor an unattached one (a package's)
        const holders = await step('UNABLE_TO_DELETE_PREVIOUS_CERTIFICATE', 'ListPrincipalThings', () =>
          registry.listPrincipalThings(described.certificateArn),
        );
        if (!holders.includes(thingName)) {
          throw new RotationRejectedError(
            'PREVIOUS_CERTIFICATE_NOT_ATTACHED',
            `certificate ${previousId} is not attached to ${thingName}`,
          );
        }
      }
    } else {
      if (!currentId) {
        throw new RotationRejectedError(
          'MISSING_CERTIFICATE_ID',
          'the ack names neither its certificate nor the previous one',
        );
      }
      const principals = await step('UNABLE_TO_DELETE_PREVIOUS_CERTIFICATE', 'ListThingPrincipals', () =>
        registry.listThingPrincipals(thingName),
      );
      // the thing's certificates (other principals, an IAM or Cognito identity, are not rotation's to retire)
      const certificates = principals.flatMap((arn) => {
        const id = certificateIdOfArnOrUndefined(arn);
        return id === undefined ? [] : [{ arn, id }];
      });
      if (!certificates.some((c) => c.id === currentId)) {
        throw new RotationRejectedError(
          'CERTIFICATE_NOT_ATTACHED',
          `the certificate ${currentId} the ack came with is not attached to ${thingName}`,
        );
      }
      targets = certificates.filter((c) => c.id !== currentId);
    }
    for (const { arn, id } of targets) {
      await step('UNABLE_TO_DELETE_PREVIOUS_CERTIFICATE', 'DetachThingPrincipal', () =>
        registry.detachThingPrincipal(thingName, arn).catch((e: unknown) => {
          if (!(e instanceof NotFoundError)) throw e;
        }),
      );
      previous.push(id);
      const holders = await step('UNABLE_TO_DELETE_PREVIOUS_CERTIFICATE', 'ListPrincipalThings', () =>
        registry.listPrincipalThings(arn),
      );
      if (holders.length > 0) continue; // another thing still uses it
      await step('UNABLE_TO_DELETE_PREVIOUS_CERTIFICATE', 'delete', async () => {
        for (const policy of await registry.listAttachedPolicies(arn)) await registry.detachPolicy(policy, arn);
        await registry.updateCertificateStatus(id, 'INACTIVE');
        await registry.deleteCertificate(id);
      });
      deleted.push(id);
    }
  }

  await step('UNABLE_TO_LEAVE_ROTATION_GROUP', 'RemoveThingFromThingGroup', () =>
    registry.removeThingFromThingGroup(thingName, config.thingGroupName),
  );
  await deps.events.publish([
    domainEvent('Certificate Rotated', {
      thingName,
      ...(currentId ? { certificateId: currentId } : {}),
      previousCertificateIds: previous,
      deletedCertificateIds: deleted,
      thingGroupName: config.thingGroupName,
      rotatedAt: deps.clock.now().toISOString(),
    }),
  ]);
  return {
    deviceId: thingName,
    action: 'ack',
    previousCertificateIds: previous,
    deletedCertificateIds: deleted,
    reply: { message: 'OK' },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// replies

export const ReplyInput = z.discriminatedUnion('outcome', [
  z.object({
    deviceId: z.string().regex(THING_NAME),
    action: z.enum(['get', 'ack']),
    outcome: z.literal('accepted'),
    reply: z.record(z.string(), z.unknown()),
  }),
  z.object({
    deviceId: z.string().regex(THING_NAME),
    action: z.enum(['get', 'ack']),
    outcome: z.literal('rejected'),
    /** what the Catch put in ResultPath: `{ Error, Cause }` */
    error: z.unknown(),
  }),
]);
export type ReplyInput = z.infer<typeof ReplyInput>;

/**
 * Publishes the answer (QoS 1) on `{prefix}/{thing}/{action}/accepted` or `…/rejected`; a rejection is
 * `{ message: REASON }`, the reason taken from the caught error.
 */
export async function publishReply(
  deps: Pick<RotationDeps, 'messaging' | 'config'>,
  input: unknown,
): Promise<{ topic: string; outcome: ReplyOutcome; message?: RotationReason }> {
  const parsed = ReplyInput.safeParse(input);
  if (!parsed.success) throw new RotationRejectedError('INVALID_REQUEST', parsed.error.issues[0]!.message);
  const reply = parsed.data;
  const topic = replyTopic(deps.config.topicPrefix, reply.deviceId, reply.action, reply.outcome);
  if (reply.outcome === 'accepted') {
    await deps.messaging.publish(topic, reply.reply);
    return { topic, outcome: 'accepted' };
  }
  const message = reasonOfFailure(reply.error);
  await deps.messaging.publish(topic, { message });
  return { topic, outcome: 'rejected', message };
}
