/**
 * The CA hierarchy: roots, intermediates ("cells", e.g. one per supplier or factory line), server and device
 * certificates, revocation and CRLs. CA keys go to the CA key store and are never returned; leaf private keys are
 * returned once, to the caller that asked for them, and stored nowhere.
 */
import { randomUUID } from 'node:crypto';
import { ConflictError, NotFoundError, ValidationError } from '../errors';
import { CERTIFICATES_PER_EVENT, domainEvent } from '../events';
import { pemBundle } from '../pki/chain';
import {
  createIntermediateCa,
  createRootCa,
  defaultValidity,
  issueFromCsr,
  issueLeaf,
  type Issuer,
  type ParsedCertificate,
  type Validity,
} from '../pki/certificate';
import { buildCrl, type RevocationReason, type RevokedEntry } from '../pki/crl';
import { parseCsr } from '../pki/csr';
import { parseKeyType, privateKeyToPem } from '../pki/keys';
import { toPem } from '../pki/pem';
import type {
  CaKeyStore,
  CaKeyWriter,
  CaRecord,
  CaStore,
  Clock,
  EventPublisher,
  Inventory,
  InventoryPage,
  InventoryRecord,
  ObjectStore,
  RotationGroup,
  WorkflowStarter,
} from '../ports';
import type {
  CreateCaBody,
  DeviceCertificateBody,
  ListCertificatesQuery,
  RevokeBody,
  ServerCertificateBody,
} from './requests';

export interface CaDeps {
  cas: CaStore;
  caKeys: CaKeyStore;
  keyWriter: CaKeyWriter;
  inventory: Inventory;
  events: EventPublisher;
  objects: ObjectStore;
  clock: Clock;
  rotation?: RotationGroup;
  /** hours until a CRL's nextUpdate (default 24) */
  crlValidityHours?: number;
  /** certificates a compromise response revokes per slice before handing the rest to its workflow (default 2,000) */
  revokeSliceSize?: number;
  /** starts the revoke-issued workflow for compromise responses larger than one slice */
  workflows?: WorkflowStarter;
}

export const certificateKey = (certificateId: string): string => `certificates/${certificateId}.pem`;
export const crlKey = (caId: string, format: 'der' | 'pem'): string =>
  `crls/${caId}.${format === 'der' ? 'crl' : 'crl.pem'}`;

export type CaView = Omit<CaRecord, 'crlNumber'> & { crlNumber: number };

export interface IssuedView {
  certificateId: string;
  serialNumber: string;
  commonName: string;
  issuerId: string;
  notBefore: string;
  notAfter: string;
  certificatePem: string;
  /** issuing CA first, root last */
  chainPem: string;
  /** PKCS#8, only when certflow made the key (never stored) */
  privateKeyPem?: string;
  thingName?: string;
}

async function activeCa(deps: CaDeps, caId: string): Promise<CaRecord> {
  const ca = await deps.cas.get(caId);
  if (!ca) throw new NotFoundError('CA_NOT_FOUND', `no CA ${caId}`);
  if (ca.status === 'revoked') throw new ConflictError('ISSUER_REVOKED', `CA ${caId} is revoked`);
  if (Date.parse(ca.notAfter) < deps.clock.now().getTime()) {
    throw new ConflictError('ISSUER_EXPIRED', `CA ${caId} expired on ${ca.notAfter}`);
  }
  return ca;
}

/** Keeps the certificate's PEM (`certificates/{id}.pem`) and sends `Certificate Issued` for it. */
export async function announceIssued(
  deps: Pick<CaDeps, 'objects' | 'events'>,
  cert: ParsedCertificate,
  kind: InventoryRecord['kind'],
  issuerId: string,
  thingName?: string,
  origin: 'api' | 'provisioning' = 'api',
): Promise<void> {
  await deps.objects.put(certificateKey(cert.id), cert.pem, { contentType: 'application/x-pem-file' });
  await deps.events.publish([
    domainEvent('Certificate Issued', {
      issuerId,
      kind,
      origin,
      ...(thingName ? { thingName } : {}),
      certificates: [
        {
          certificateId: cert.id,
          serialNumber: cert.serialNumber,
          commonName: cert.commonName ?? cert.subject,
          notBefore: cert.notBefore.toISOString(),
          notAfter: cert.notAfter.toISOString(),
        },
      ],
    }),
  ]);
}

function caRecord(
  cert: ParsedCertificate,
  kind: CaRecord['kind'],
  keyType: string,
  now: Date,
  parentId?: string,
): CaRecord {
  return {
    caId: cert.id,
    kind,
    ...(parentId ? { parentId } : {}),
    commonName: cert.commonName ?? cert.subject,
    subject: cert.subject,
    serialNumber: cert.serialNumber,
    keyType,
    status: 'active',
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
    ...(cert.pathLength !== undefined ? { pathLength: cert.pathLength } : {}),
    certificatePem: cert.pem,
    createdAt: now.toISOString(),
    crlNumber: 0,
  };
}

async function registerCa(deps: CaDeps, record: CaRecord, cert: ParsedCertificate): Promise<CaView> {
  await deps.cas.create(record);
  await deps.events.publish([
    domainEvent('CA Created', {
      caId: record.caId,
      kind: record.kind,
      ...(record.parentId ? { parentId: record.parentId } : {}),
      commonName: record.commonName,
      serialNumber: record.serialNumber,
      keyType: record.keyType,
      notBefore: record.notBefore,
      notAfter: record.notAfter,
    }),
  ]);
  await announceIssued(deps, cert, record.kind, record.parentId ?? record.caId);
  await publishCrl(deps, record.caId);
  return (await deps.cas.get(record.caId)) ?? record;
}

/** POST /cas/root: a self-signed root with a fresh key (default EC P-256, 10 years, pathLen unlimited). */
export async function createRoot(deps: CaDeps, body: CreateCaBody): Promise<CaView> {
  const now = deps.clock.now();
  const keyType = parseKeyType(body.keyType);
  const root = await createRootCa({
    subject: body.subject,
    keyType,
    validity: { days: body.validityDays ?? 3650 },
    now,
    ...(body.pathLength !== undefined ? { pathLength: body.pathLength } : {}),
  });
  await deps.keyWriter.save(root.certificate.id, { certificatePem: root.certificate.pem, privateKey: root.privateKey });
  return registerCa(deps, caRecord(root.certificate, 'root', keyType, now), root.certificate);
}

/** `validityDays` as asked (beyond the issuer: 400 VALIDITY_EXCEEDS_ISSUER), else the default capped at the issuer's end. */
const validityOf = (days: number | undefined, fallback: number, issuer: Issuer, now: Date): Validity =>
  days !== undefined ? { days } : defaultValidity(fallback, issuer.certificate, now);

/**
 * POST /cas/{caId}/intermediates: an intermediate under a root or another intermediate (default 5 years, capped at
 * the parent's end; pathLen 0).
 */
export async function createIntermediate(deps: CaDeps, parentId: string, body: CreateCaBody): Promise<CaView> {
  const now = deps.clock.now();
  await activeCa(deps, parentId);
  const parent = await deps.caKeys.load(parentId);
  const keyType = parseKeyType(body.keyType);
  const ca = await createIntermediateCa(parent.issuer, {
    subject: body.subject,
    keyType,
    validity: validityOf(body.validityDays, 1825, parent.issuer, now),
    now,
    ...(body.pathLength !== undefined ? { pathLength: body.pathLength } : {}),
  });
  await deps.keyWriter.save(ca.certificate.id, {
    certificatePem: ca.certificate.pem,
    chainPem: pemBundle(parent.chain),
    privateKey: ca.privateKey,
  });
  return registerCa(deps, caRecord(ca.certificate, 'intermediate', keyType, now, parentId), ca.certificate);
}

export async function listCas(deps: Pick<CaDeps, 'cas'>): Promise<CaView[]> {
  return (await deps.cas.list()).sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.caId.localeCompare(b.caId));
}

export async function getCa(deps: Pick<CaDeps, 'cas'>, caId: string): Promise<CaView> {
  const ca = await deps.cas.get(caId);
  if (!ca) throw new NotFoundError('CA_NOT_FOUND', `no CA ${caId}`);
  return ca;
}

async function leafView(
  deps: CaDeps,
  issuerId: string,
  cert: ParsedCertificate,
  privateKeyPem?: string,
  thingName?: string,
): Promise<IssuedView> {
  const issuer = await deps.caKeys.load(issuerId);
  return {
    certificateId: cert.id,
    serialNumber: cert.serialNumber,
    commonName: cert.commonName ?? cert.subject,
    issuerId,
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
    certificatePem: cert.pem,
    chainPem: pemBundle(issuer.chain),
    ...(privateKeyPem ? { privateKeyPem } : {}),
    ...(thingName ? { thingName } : {}),
  };
}

/** POST /certificates/server: FQDN (+ SANs), signed by an intermediate. */
export async function issueServer(deps: CaDeps, body: ServerCertificateBody): Promise<IssuedView> {
  const now = deps.clock.now();
  await activeCa(deps, body.issuerId);
  const ca = await deps.caKeys.load(body.issuerId);
  const { certificate, privateKey } = await issueLeaf(ca.issuer, {
    profile: 'server',
    subject: { ...(body.subject ?? {}), commonName: body.fqdn },
    ...(body.sans ? { sans: body.sans } : {}),
    keyType: parseKeyType(body.keyType),
    validity: validityOf(body.validityDays, 397, ca.issuer, now),
    now,
  });
  await announceIssued(deps, certificate, 'server', body.issuerId);
  return leafView(deps, body.issuerId, certificate, privateKeyToPem(privateKey));
}

/** POST /certificates/device: for a thing (named, or a generated UUID), from a fresh key or from a CSR. */
export async function issueDevice(deps: CaDeps, body: DeviceCertificateBody): Promise<IssuedView> {
  const now = deps.clock.now();
  await activeCa(deps, body.issuerId);
  const ca = await deps.caKeys.load(body.issuerId);
  const thingName = body.thingName ?? randomUUID();
  const validity = validityOf(body.validityDays, 365, ca.issuer, now);
  let certificate: ParsedCertificate;
  let privateKeyPem: string | undefined;
  if (body.csr) {
    const csr = parseCsr(body.csr);
    if (body.thingName && csr.commonName !== body.thingName) {
      throw new ValidationError('CSR_CN_MISMATCH', `the CSR's common name must be the thing name ${body.thingName}`, {
        details: { field: 'csr' },
      });
    }
    certificate = await issueFromCsr(ca.issuer, csr, { profile: 'device', validity, now });
  } else {
    const issued = await issueLeaf(ca.issuer, {
      profile: 'device',
      subject: { ...(body.subject ?? {}), commonName: thingName },
      keyType: parseKeyType(body.keyType),
      validity,
      now,
    });
    certificate = issued.certificate;
    privateKeyPem = privateKeyToPem(issued.privateKey);
  }
  await announceIssued(deps, certificate, 'device', body.issuerId, thingName);
  return leafView(deps, body.issuerId, certificate, privateKeyPem, thingName);
}

export interface CertificateView extends InventoryRecord {
  certificatePem?: string;
  chainPem?: string;
}

/** GET /certificates/{certificateId}: inventory metadata, with PEM and chain where certflow keeps them. */
export async function getCertificate(deps: CaDeps, certificateId: string): Promise<CertificateView> {
  const record = await deps.inventory.get(certificateId);
  if (!record) throw new NotFoundError('CERTIFICATE_NOT_FOUND', `no certificate ${certificateId} in the inventory`);
  // certificates of bulk batches live in their batch zip, not one object each
  const pem = await deps.objects.get(certificateKey(certificateId)).then(
    (b) => b.toString('utf8'),
    (e: unknown) => {
      if (e instanceof NotFoundError) return undefined;
      throw e;
    },
  );
  const chainPem = record.kind === 'root' ? undefined : await chainFromStore(deps, record.issuerId);
  return { ...record, ...(pem ? { certificatePem: pem } : {}), ...(chainPem ? { chainPem } : {}) };
}

/** The PEM chain of a certflow CA up to its root, from the CA store (no key is loaded); undefined for other issuers. */
async function chainFromStore(deps: Pick<CaDeps, 'cas'>, caId: string): Promise<string | undefined> {
  const pems: string[] = [];
  for (let id: string | undefined = caId; id && pems.length < 10;) {
    const ca: CaRecord | undefined = await deps.cas.get(id);
    if (!ca) return pems.length ? pems.join('') : undefined;
    pems.push(ca.certificatePem);
    id = ca.parentId;
  }
  return pems.join('');
}

/** GET /certificates?issuer=&status=&expiringBefore=&limit=&nextToken= */
export async function listCertificates(deps: CaDeps, query: ListCertificatesQuery): Promise<InventoryPage> {
  const page = {
    limit: query.limit ?? 100,
    ...(query.status ? { status: query.status } : {}),
    ...(query.nextToken ? { nextToken: query.nextToken } : {}),
  };
  if (query.issuer) {
    const items = await deps.inventory.listByIssuer(query.issuer, page);
    if (!query.expiringBefore) return items;
    return { ...items, items: items.items.filter((i) => i.notAfter < query.expiringBefore!) };
  }
  if (query.expiringBefore) return deps.inventory.listExpiring(new Date(query.expiringBefore).toISOString(), page);
  throw new ValidationError('INVALID_REQUEST', 'issuer or expiringBefore is required', {
    details: { field: 'issuer' },
  });
}

/** Re-signs and publishes the CA's CRL from the inventory's revoked certificates (DER and PEM under crls/). */
export async function publishCrl(deps: CaDeps, caId: string): Promise<{ crlNumber: number; entries: number }> {
  const ca = await deps.caKeys.load(caId);
  const entries: RevokedEntry[] = [];
  let nextToken: string | undefined;
  do {
    const page = await deps.inventory.listByIssuer(caId, {
      status: 'revoked',
      limit: 1000,
      ...(nextToken ? { nextToken } : {}),
    });
    for (const r of page.items) {
      if (r.certificateId === caId) continue; // a root lists itself as its own issuer
      entries.push({
        serialNumber: r.serialNumber,
        revokedAt: new Date(r.revokedAt ?? r.issuedAt),
        reason: (r.revocationReason ?? 'unspecified') as RevocationReason,
      });
    }
    nextToken = page.nextToken;
  } while (nextToken);
  const now = deps.clock.now();
  const crlNumber = await deps.cas.nextCrlNumber(caId);
  const crl = await buildCrl(ca.issuer, {
    entries,
    thisUpdate: new Date(now.getTime() - 60_000),
    nextUpdate: new Date(now.getTime() + (deps.crlValidityHours ?? 24) * 3_600_000),
    crlNumber,
  });
  await deps.objects.put(crlKey(caId, 'der'), crl.der, { contentType: 'application/pkix-crl' });
  await deps.objects.put(crlKey(caId, 'pem'), crl.pem, { contentType: 'application/x-pem-file' });
  return { crlNumber, entries: entries.length };
}

export async function getCrl(deps: CaDeps, caId: string, format: 'der' | 'pem'): Promise<Buffer> {
  await getCa(deps, caId);
  return deps.objects.get(crlKey(caId, format));
}

/** POST /certificates/{certificateId}/revoke: once (409 the second time); the issuer's CRL is re-published. */
export async function revokeCertificate(deps: CaDeps, certificateId: string, body: RevokeBody) {
  const record = await deps.inventory.get(certificateId);
  if (!record) throw new NotFoundError('CERTIFICATE_NOT_FOUND', `no certificate ${certificateId} in the inventory`);
  if (record.kind === 'root' || record.kind === 'intermediate') return revokeCa(deps, certificateId, body);
  const reason = body.reason ?? 'unspecified';
  const revokedAt = deps.clock.now().toISOString();
  const outcome = await deps.inventory.markRevoked(certificateId, revokedAt, reason);
  if (outcome === 'already')
    throw new ConflictError('ALREADY_REVOKED', `certificate ${certificateId} is revoked already`);
  if (outcome === 'missing') throw new NotFoundError('CERTIFICATE_NOT_FOUND', `no certificate ${certificateId}`);
  await deps.events.publish([revokedEvent(record, reason, revokedAt)]);
  const crl = (await deps.cas.get(record.issuerId)) ? await publishCrl(deps, record.issuerId) : undefined;
  return { certificateId, status: 'revoked' as const, reason, revokedAt, ...(crl ? { crlNumber: crl.crlNumber } : {}) };
}

const revokedEvent = (record: InventoryRecord, reason: string, revokedAt: string) =>
  domainEvent('Certificate Revoked', {
    certificateId: record.certificateId,
    serialNumber: record.serialNumber,
    issuerId: record.issuerId,
    kind: record.kind,
    reason,
    revokedAt,
    ...(record.thingName ? { thingName: record.thingName } : {}),
  });

/**
 * POST /cas/{caId}/revoke — compromise response: the CA is revoked (its parent's CRL says so), every certificate
 * it issued is marked revoked (all pages of the issuer index), `Certificate Revoked` is sent for each, the CA
 * publishes a CRL listing them, and the things that held them are added to the rotation group so they rotate to a
 * healthy CA. Returns how many were affected; beyond one slice (`revokeSliceSize`) the revoke-issued workflow
 * continues and `complete` is false.
 */
export async function revokeCa(deps: CaDeps, caId: string, body: RevokeBody) {
  const ca = await getCa(deps, caId);
  const reason = body.reason ?? 'cACompromise';
  const revokedAt = deps.clock.now().toISOString();
  if (!(await deps.cas.markRevoked(caId, revokedAt, reason))) {
    throw new ConflictError('ALREADY_REVOKED', `CA ${caId} is revoked already`);
  }
  const own = await deps.inventory.get(caId);
  if (own) {
    await deps.inventory.markRevoked(caId, revokedAt, reason);
    await deps.events.publish([revokedEvent(own, reason, revokedAt)]);
  }
  if (ca.parentId) await publishCrl(deps, ca.parentId);

  const slice = await revokeIssuedBy(deps, { caId, revokedAt });
  if (!slice.done) {
    if (!deps.workflows) throw new Error('more certificates than one slice and no workflow to continue');
    await deps.workflows.start(REVOKE_ISSUED_WORKFLOW, `revoke-${caId.slice(0, 16)}-${Date.parse(revokedAt)}`, {
      caId,
      revokedAt,
      nextToken: slice.nextToken,
    });
  }
  return {
    caId,
    status: 'revoked' as const,
    reason,
    revokedAt,
    certificatesRevoked: slice.revoked,
    thingsToRotate: slice.thingsToRotate,
    /** false: the rest is revoked by the revoke-issued workflow (Certificate Revoked events, then a new CRL) */
    complete: slice.done,
    ...(slice.crlNumber !== undefined ? { crlNumber: slice.crlNumber } : {}),
  };
}

export const REVOKE_ISSUED_WORKFLOW = 'revoke-issued';

export interface RevokeIssuedInput {
  caId: string;
  revokedAt: string;
  nextToken?: string | null;
}

export interface RevokeIssuedResult {
  caId: string;
  revokedAt: string;
  revoked: number;
  thingsToRotate: number;
  nextToken: string | null;
  done: boolean;
  crlNumber?: number;
}

/**
 * One slice of a compromise response: marks up to `revokeSliceSize` active certificates of the CA revoked, sends
 * `Certificate Revoked` for each, adds their things to the rotation group; on the last slice the CA publishes a
 * CRL listing them all. Re-running a slice is harmless (already revoked certificates are skipped).
 */
export async function revokeIssuedBy(deps: CaDeps, input: RevokeIssuedInput): Promise<RevokeIssuedResult> {
  const budget = deps.revokeSliceSize ?? 2000;
  let revoked = 0;
  const things = new Set<string>();
  let nextToken = input.nextToken ?? undefined;
  let examined = 0;
  do {
    const page = await deps.inventory.listByIssuer(input.caId, {
      status: 'active',
      limit: Math.min(CERTIFICATES_PER_EVENT, budget),
      ...(nextToken ? { nextToken } : {}),
    });
    const events = [];
    for (const record of page.items) {
      examined++;
      if (record.certificateId === input.caId) continue;
      if ((await deps.inventory.markRevoked(record.certificateId, input.revokedAt, 'cACompromise')) !== 'revoked')
        continue;
      revoked++;
      if (record.thingName) things.add(record.thingName);
      events.push(revokedEvent(record, 'cACompromise', input.revokedAt));
    }
    await deps.events.publish(events);
    nextToken = page.nextToken;
  } while (nextToken && examined < budget);
  if (deps.rotation && things.size > 0) await deps.rotation.add([...things]);
  const done = !nextToken;
  const crl = done ? await publishCrl(deps, input.caId) : undefined;
  return {
    caId: input.caId,
    revokedAt: input.revokedAt,
    revoked,
    thingsToRotate: things.size,
    nextToken: nextToken ?? null,
    done,
    ...(crl ? { crlNumber: crl.crlNumber } : {}),
  };
}

/** GET /cas/{caId}/crl as PEM text (Accept: application/x-pem-file) or DER. */
export const crlPem = (der: Buffer): string => toPem('X509 CRL', der);
