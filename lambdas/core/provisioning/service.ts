/**
 * Device provisioning (CDF's provisioning module): templates in the object store under `templates/{id}.json`, and
 * `provisionThing`, which runs one template for one device — the CDF pre-step (certificate made by a certflow CA,
 * registered without a CA, or signed by ACM PCA), then the template's resources through the DeviceRegistry port
 * (or AWS IoT's RegisterThing where the template needs nothing certflow-specific), then the CDF post-steps.
 * Private keys are returned to the caller only; they are never stored, logged or put in events.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { ConflictError, InvalidTemplateError, NotFoundError, ValidationError } from '../errors';
import { fromZodError } from '../bulk/request';
import { announceIssued } from '../ca/service';
import {
  buildCsr,
  deviceKeyFromPem,
  encodeName,
  generateDeviceKey,
  issueFromCsr,
  issueLeaf,
  parseCertificate,
  parseCsr,
  parseKeyType,
  privateKeyPem,
  privateKeyToPem,
  publicKeyPem,
  publicKeyToPem,
  toPem,
  type ParsedCertificate,
} from '../pki';
import type {
  CaKeyStore,
  CaStore,
  Clock,
  DeviceRegistry,
  EventPublisher,
  IotCaDirectory,
  ObjectStore,
  ThingRegistrar,
} from '../ports';
import type { CsrSigner } from '../signing/csr-signer';
import {
  parseCdfSection,
  parsePreStepParams,
  resolveCaRef,
  type CaAliases,
  type CdfExtensions,
  type DeviceCertInfo,
} from './cdf';
import {
  instantiate,
  parseTemplate,
  type ProvisioningTemplate,
  type ResolvedCertificate,
  type ResolvedPolicy,
  type ResolvedThing,
} from './template';

export interface ProvisioningDeps {
  objects: ObjectStore;
  registry: DeviceRegistry;
  caKeys: CaKeyStore;
  /** when given, a certflow CA that is revoked or expired is refused before its key is loaded */
  cas?: CaStore;
  events: EventPublisher;
  clock: Clock;
  aliases: CaAliases;
  /** certInfo.daysExpiry default */
  defaultDaysExpiry: number;
  /**
   * The shared CSR signer of an ACM Private CA by its ARN (AWS only: IdempotencyToken, GetCertificate polling,
   * paced); absent: the acmpca extension answers 400 ACM_PCA_UNAVAILABLE
   */
  pca?: (caArn: string) => CsrSigner;
  /** AWS IoT's registered CAs, for acmpca REGISTER_WITH_CA */
  iotCas?: IotCaDirectory;
  /** AWS IoT RegisterThing (AWS only): used for templates that need nothing certflow-specific */
  registrar?: ThingRegistrar;
  /** a certflow CA that signs a template's CertificateSigningRequest where RegisterThing does not run */
  csrCaId?: string;
  region?: string;
  accountId?: string;
}

export const TEMPLATES_PREFIX = 'templates/';
export const templateKey = (templateId: string): string => `${TEMPLATES_PREFIX}${templateId}.json`;
export const TEMPLATE_ID_RE = /^[A-Za-z0-9_.-]{1,128}$/;

/** A template as certflow uses it: checked, with its CDF extensions. */
export interface LoadedTemplate {
  templateId: string;
  template: ProvisioningTemplate;
  cdf: CdfExtensions;
}

export function checkTemplateId(templateId: string | undefined, field = 'templateId'): string {
  if (!templateId || !TEMPLATE_ID_RE.test(templateId)) {
    throw new ValidationError('INVALID_REQUEST', `${field}: 1–128 of A–Z a–z 0–9 _ . -`, { details: { field } });
  }
  return templateId;
}

/** Every check a template passes before it is stored or used (400 InvalidTemplateError with the path otherwise). */
export function validateTemplate(templateId: string, body: unknown): LoadedTemplate {
  const template = parseTemplate(body);
  const cdf = parseCdfSection(template);
  if (!Object.values(template.resources).some((r) => r.Type === 'AWS::IoT::Thing')) {
    throw new InvalidTemplateError('INVALID_TEMPLATE', 'Resources', 'the template provisions no AWS::IoT::Thing');
  }
  return { templateId, template, cdf };
}

export interface TemplateSummary {
  templateId: string;
  parameters: Record<string, { type: string; default?: string | number }>;
  resources: Record<string, string>;
  cdf: string[];
}

const summary = (loaded: LoadedTemplate): TemplateSummary => ({
  templateId: loaded.templateId,
  parameters: Object.fromEntries(
    Object.entries(loaded.template.parameters).map(([k, p]) => [
      k,
      { type: p.Type, ...(p.Default !== undefined ? { default: p.Default } : {}) },
    ]),
  ),
  resources: Object.fromEntries(Object.entries(loaded.template.resources).map(([k, r]) => [k, r.Type])),
  cdf: Object.keys(loaded.cdf.section),
});

/** PUT /templates/{templateId}: validated, then stored as `templates/{id}.json`. */
export async function putTemplate(
  deps: Pick<ProvisioningDeps, 'objects'>,
  templateId: string,
  body: unknown,
): Promise<{ created: boolean; template: TemplateSummary }> {
  const loaded = validateTemplate(checkTemplateId(templateId), body);
  const existed = (await deps.objects.head(templateKey(templateId))) !== undefined;
  await deps.objects.put(templateKey(templateId), JSON.stringify(body, null, 2), { contentType: 'application/json' });
  return { created: !existed, template: summary(loaded) };
}

async function readTemplate(deps: Pick<ProvisioningDeps, 'objects'>, templateId: string): Promise<unknown> {
  const bytes = await deps.objects.get(templateKey(checkTemplateId(templateId))).catch((e: unknown) => {
    if (e instanceof NotFoundError) {
      throw new NotFoundError('TEMPLATE_NOT_FOUND', `no provisioning template ${templateId}`, {
        details: { templateId },
      });
    }
    throw e;
  });
  return JSON.parse(bytes.toString('utf8')) as unknown;
}

/** GET /templates/{templateId}: the document as uploaded. */
export const getTemplate = (deps: Pick<ProvisioningDeps, 'objects'>, templateId: string): Promise<unknown> =>
  readTemplate(deps, templateId);

/** The stored template, checked again (a template stored by hand is held to the same rules). */
export async function loadTemplate(
  deps: Pick<ProvisioningDeps, 'objects'>,
  templateId: string,
): Promise<LoadedTemplate> {
  return validateTemplate(templateId, await readTemplate(deps, templateId));
}

/** GET /templates: the ids of the stored templates, sorted. */
export async function listTemplates(
  deps: Pick<ProvisioningDeps, 'objects'>,
): Promise<{ templates: { templateId: string }[] }> {
  const keys = await deps.objects.list(TEMPLATES_PREFIX);
  const ids = keys
    .filter((k) => k.endsWith('.json'))
    .map((k) => k.slice(TEMPLATES_PREFIX.length, -'.json'.length))
    .filter((id) => TEMPLATE_ID_RE.test(id))
    .sort();
  return { templates: ids.map((templateId) => ({ templateId })) };
}

const ParameterValue = z.union([z.string(), z.number(), z.boolean(), z.array(z.string())]);

/** Body of POST /things (CDF's ProvisionThingRequest). */
export const ProvisionThingBodySchema = z
  .object({
    provisioningTemplateId: z.string().regex(TEMPLATE_ID_RE, 'a template id (1–128 of A–Z a–z 0–9 _ . -)'),
    parameters: z.record(z.string(), ParameterValue).optional(),
    cdfProvisioningParameters: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type ProvisionThingBody = z.infer<typeof ProvisionThingBodySchema>;

export interface ProvisionResult {
  thingName: string;
  /** thing, certificate, and each policy by its logical name, as RegisterThing answers */
  resourceArns: Record<string, string>;
  certificateId: string;
  certificatePem: string;
  /** PKCS#8, only when certflow made the key */
  privateKey?: string;
  publicKey?: string;
}

/** What an attempt saved for one item of a bulk task, so that a re-run neither bills ACM PCA again nor loses a key. */
export interface ItemProgress {
  /** the device key certflow made (PKCS#8 PEM), saved before ACM PCA is asked to sign it */
  privateKeyPem?: string;
  /** the certificate ACM PCA signed for it, and the CA's chain */
  certificatePem?: string;
  chainPem?: string;
}

/** One item of a bulk task (a parameter set), the same on every attempt of its chunk. */
export interface ProvisionItem {
  /** ACM PCA's IdempotencyToken: from the task id and the item's index, so a replayed chunk is billed once */
  idempotencyToken: string;
  /** what an earlier attempt saved for the item */
  load(): Promise<ItemProgress | undefined>;
  save(progress: ItemProgress): Promise<void>;
}

interface Material {
  privateKey?: string;
  publicKey?: string;
  /** a certificate signed for this request: announced as `Certificate Issued` */
  issued?: { certificate: ParsedCertificate; issuerId: string };
  registered?: { certificateId: string; certificateArn: string };
  certificatePem?: string;
}

function subjectOf(certInfo: DeviceCertInfo, parameters: Record<string, unknown>) {
  const { daysExpiry: _days, commonName, ...subject } = certInfo;
  void _days;
  const cn = commonName ?? (typeof parameters.ThingName === 'string' ? parameters.ThingName : undefined);
  if (!cn) {
    throw new ValidationError(
      'INVALID_REQUEST',
      'cdfProvisioningParameters.certInfo.commonName: required (or a ThingName parameter)',
      {
        details: { field: 'cdfProvisioningParameters.certInfo.commonName' },
      },
    );
  }
  return { ...subject, commonName: cn };
}

async function usableCa(deps: ProvisioningDeps, caId: string) {
  if (deps.cas) {
    const ca = await deps.cas.get(caId);
    if (!ca) throw new NotFoundError('CA_NOT_FOUND', `no CA ${caId}`, { details: { caId } });
    if (ca.status === 'revoked') throw new ConflictError('ISSUER_REVOKED', `CA ${caId} is revoked`);
  }
  return deps.caKeys.load(caId);
}

/** The CDF pre-step: makes or registers the certificate and sets the parameters the template reads. */
async function runPreStep(
  deps: ProvisioningDeps,
  loaded: LoadedTemplate,
  cdfParams: unknown,
  parameters: Record<string, unknown>,
  item: ProvisionItem | undefined,
): Promise<Material> {
  const pre = parsePreStepParams(loaded.cdf.preStep, cdfParams);
  if (!pre) return {};
  const now = deps.clock.now();
  switch (pre.step) {
    case 'createDeviceCertificate': {
      const { caId, certInfo, keyType } = pre.params;
      const ca = await usableCa(deps, caId);
      const { certificate, privateKey, publicKey } = await issueLeaf(ca.issuer, {
        profile: 'device',
        subject: subjectOf(certInfo, parameters),
        keyType: parseKeyType(keyType),
        validity: { days: certInfo.daysExpiry ?? deps.defaultDaysExpiry },
        now,
      });
      parameters.CertificatePem = certificate.pem;
      parameters.CaCertificatePem = ca.issuer.certificate.pem;
      return {
        privateKey: privateKeyToPem(privateKey),
        publicKey: publicKeyToPem(publicKey),
        issued: { certificate, issuerId: caId },
        certificatePem: certificate.pem,
      };
    }
    case 'registerDeviceCertificateWithoutCA': {
      const certificate = parseCertificate(pre.params.certificatePem);
      const registered = await deps.registry.register({
        certificatePem: certificate.pem,
        status: pre.params.certificateStatus ?? 'ACTIVE',
      });
      parameters.CertificateId = registered.certificateId;
      parameters.CertificateArn = registered.certificateArn;
      return { registered, certificatePem: certificate.pem };
    }
    case 'acmpca': {
      if (!deps.pca) {
        throw new ValidationError(
          'ACM_PCA_UNAVAILABLE',
          'this runtime cannot reach ACM Private CA (the acmpca extension)',
        );
      }
      const p = pre.params;
      const caArn = resolveCaRef('pca', p.acmpcaCaArn, p.acmpcaCaAlias, deps.aliases);
      const material: Material = {};
      const saved = item ? await item.load() : undefined;
      let csrPem = p.csr;
      if (csrPem === undefined) {
        // a key an earlier attempt saved is signed again (same token, same certificate); a new one is saved first
        const key = saved?.privateKeyPem
          ? deviceKeyFromPem(saved.privateKeyPem)
          : generateDeviceKey(parseKeyType(p.keyType));
        if (item && !saved?.privateKeyPem) await item.save({ privateKeyPem: privateKeyPem(key) });
        csrPem = toPem('CERTIFICATE REQUEST', buildCsr(encodeName(subjectOf(p.certInfo, parameters)), key));
        material.privateKey = privateKeyPem(key);
        material.publicKey = publicKeyPem(key);
      }
      // a CSR whose signature does not verify is refused before ACM PCA bills for it
      const csr = parseCsr(csrPem);
      let signed: { certificatePem: string; chainPem: string };
      if (saved?.certificatePem && parseCertificate(saved.certificatePem).spki.equals(csr.spki)) {
        signed = { certificatePem: saved.certificatePem, chainPem: saved.chainPem ?? '' };
      } else {
        const signer = deps.pca(caArn);
        const result = await signer.sign(csr, {
          validityDays: p.certInfo.daysExpiry ?? deps.defaultDaysExpiry,
          now,
          ...(item ? { idempotencyToken: item.idempotencyToken } : {}),
        });
        signed = { certificatePem: result.certificate.pem, chainPem: result.chainPem ?? '' };
        if (item) {
          await item.save({
            ...(material.privateKey ? { privateKeyPem: material.privateKey } : {}),
            ...signed,
          });
        }
      }
      const certificate = parseCertificate(signed.certificatePem);
      let caCertificatePem: string | undefined;
      if (loaded.cdf.acmpcaMode === 'REGISTER_WITH_CA') {
        if (!deps.iotCas) throw new ValidationError('IOT_CA_UNAVAILABLE', 'this runtime has no AWS IoT CA registry');
        caCertificatePem = await deps.iotCas.certificatePem(
          resolveCaRef('ca', p.awsiotCaArn, p.awsiotCaAlias, deps.aliases),
        );
      }
      const registered = await deps.registry.register({
        certificatePem: certificate.pem,
        ...(caCertificatePem ? { caCertificatePem } : {}),
        status: 'ACTIVE',
      });
      parameters.CertificateId = registered.certificateId;
      return {
        ...material,
        registered,
        issued: { certificate, issuerId: caArn },
        // as CDF: the certificate followed by ACM PCA's chain
        certificatePem: signed.chainPem ? `${certificate.pem}${signed.chainPem.trim()}\n` : certificate.pem,
      };
    }
  }
}

const hash = (text: string, length: number): string => createHash('sha256').update(text).digest('hex').slice(0, length);

/** The policy that lets a certificate connect only with its thing's name as MQTT client id. */
export const CLIENT_ID_POLICY_NAME = 'certflow-ClientIdMustMatchThingName';
export const clientIdPolicyDocument = (): string =>
  JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Action: ['iot:Connect'],
        Resource: ['arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}'],
        Condition: { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } },
      },
    ],
  });

/** Registers the template's certificate resource (or finds it); answers its id and ARN. */
async function provisionCertificate(
  deps: ProvisioningDeps,
  resource: ResolvedCertificate,
  material: Material,
): Promise<{ certificateId: string; certificateArn: string }> {
  const status = resource.status === 'INACTIVE' ? 'INACTIVE' : 'ACTIVE';
  const source = resource.source;
  if (source.kind === 'id') {
    if (material.registered?.certificateId === source.certificateId) return material.registered;
    const found = await deps.registry.describeCertificate(source.certificateId);
    if (!found) {
      throw new NotFoundError('CERTIFICATE_NOT_FOUND', `no registered certificate ${source.certificateId}`, {
        details: { path: `Resources.${resource.logicalId}.Properties.CertificateId` },
      });
    }
    return found;
  }
  let certificatePem: string;
  let caCertificatePem: string | undefined;
  if (source.kind === 'csr') {
    if (!deps.csrCaId) {
      throw new ValidationError(
        'CSR_SIGNER_UNAVAILABLE',
        `Resources.${resource.logicalId}.Properties.CertificateSigningRequest: no CA signs template CSRs here`,
        { details: { path: `Resources.${resource.logicalId}.Properties.CertificateSigningRequest` } },
      );
    }
    const ca = await usableCa(deps, deps.csrCaId);
    const csr = parseCsr(source.csr);
    const certificate = await issueFromCsr(ca.issuer, csr, {
      profile: 'device',
      validity: { days: deps.defaultDaysExpiry },
      now: deps.clock.now(),
    });
    material.issued = { certificate, issuerId: deps.csrCaId };
    certificatePem = certificate.pem;
    caCertificatePem = ca.issuer.certificate.pem;
  } else {
    certificatePem = parseCertificate(source.certificatePem).pem;
    caCertificatePem = source.caCertificatePem;
  }
  material.certificatePem ??= certificatePem;
  const registered = await deps.registry.register({
    certificatePem,
    ...(caCertificatePem ? { caCertificatePem } : {}),
    status,
  });
  if (resource.status === 'PENDING_ACTIVATION') {
    await deps.registry.updateCertificateStatus(registered.certificateId, 'PENDING_ACTIVATION');
  }
  return registered;
}

async function provisionPolicy(deps: ProvisioningDeps, resource: ResolvedPolicy) {
  if (resource.policyDocument !== undefined) {
    const name = resource.policyName ?? `${resource.logicalId}-${hash(resource.policyDocument, 16)}`;
    return deps.registry.createPolicy(name, resource.policyDocument);
  }
  const found = await deps.registry.getPolicy(resource.policyName!);
  if (!found) {
    throw new NotFoundError('POLICY_NOT_FOUND', `no policy ${resource.policyName}`, {
      details: { path: `Resources.${resource.logicalId}.Properties.PolicyName` },
    });
  }
  return found;
}

async function provisionThingResource(deps: ProvisioningDeps, resource: ResolvedThing) {
  const overrides = resource.overrideSettings;
  // the thing as it is matters only to override settings other than AWS IoT's defaults (merge, replace groups)
  const existing =
    Object.keys(overrides).length > 0 ? await deps.registry.describeThing(resource.thingName) : undefined;
  if (existing) {
    if (overrides.ThingTypeName === 'FAIL' && existing.thingTypeName !== resource.thingTypeName) {
      throw new ConflictError('THING_EXISTS', `thing ${resource.thingName} exists with another thing type`);
    }
    if (
      overrides.AttributePayload === 'FAIL' &&
      Object.entries(resource.attributes).some(([k, v]) => existing.attributes[k] !== v)
    ) {
      throw new ConflictError('THING_EXISTS', `thing ${resource.thingName} exists with other attributes`);
    }
  }
  const keepAttributes = existing && overrides.AttributePayload === 'DO_NOTHING';
  const thing = await deps.registry.createThing({
    thingName: resource.thingName,
    ...(resource.thingTypeName ? { thingTypeName: resource.thingTypeName } : {}),
    ...(keepAttributes ? {} : { attributes: resource.attributes }),
  });
  if (!(existing && overrides.ThingGroups === 'DO_NOTHING')) {
    const current = existing ? await deps.registry.listThingGroupsForThing(resource.thingName) : [];
    for (const group of resource.thingGroups) {
      if (!current.includes(group)) await deps.registry.addThingToThingGroup(resource.thingName, group);
    }
  }
  return thing;
}

/** Whether AWS IoT's RegisterThing can run this template for this request as it is. */
function canRegisterWithAws(
  deps: ProvisioningDeps,
  loaded: LoadedTemplate,
): deps is ProvisioningDeps & {
  registrar: ThingRegistrar;
} {
  return deps.registrar !== undefined && loaded.template.certflowOnly.length === 0;
}

/** POST /things: one thing from a template (CDF's provision). */
export async function provisionThing(
  deps: ProvisioningDeps,
  body: unknown,
  preloaded?: LoadedTemplate,
  /** the bulk task's item this request is (its idempotency token and saved progress); absent for POST /things */
  item?: ProvisionItem,
): Promise<ProvisionResult> {
  const parsed = ProvisionThingBodySchema.safeParse(body ?? {});
  if (!parsed.success) throw fromZodError(parsed.error);
  const request = parsed.data;
  const loaded = preloaded ?? (await loadTemplate(deps, request.provisioningTemplateId));
  const parameters: Record<string, unknown> = { ...(request.parameters ?? {}) };
  // the template is applied once before the pre-step, so that a missing parameter costs no certificate
  const setByPreStep =
    loaded.cdf.preStep === 'createDeviceCertificate'
      ? { CertificatePem: '', CaCertificatePem: '' }
      : loaded.cdf.preStep
        ? { CertificateId: '0'.repeat(64), CertificateArn: '' }
        : {};
  instantiate(loaded.template, { ...setByPreStep, ...parameters });
  const material = await runPreStep(deps, loaded, request.cdfProvisioningParameters, parameters, item);
  const instance = instantiate(loaded.template, parameters, {
    ...(deps.region ? { region: deps.region } : {}),
    ...(deps.accountId ? { accountId: deps.accountId } : {}),
  });

  let thingName: string;
  let certificate: { certificateId: string; certificateArn: string } | undefined;
  const resourceArns: Record<string, string> = {};
  if (canRegisterWithAws(deps, loaded)) {
    const thingId = instance.order.find((id) => loaded.template.resources[id]!.Type === 'AWS::IoT::Thing')!;
    thingName = (instance.resolve(thingId, {}) as ResolvedThing).thingName;
    const { CDF: _cdf, ...awsTemplate } = loaded.template.body;
    void _cdf;
    const strings = Object.fromEntries(
      Object.keys(loaded.template.parameters).map((k) => [k, String(instance.values[k])]),
    );
    const registered = await deps.registrar.registerThing(JSON.stringify(awsTemplate), strings);
    Object.assign(resourceArns, registered.resourceArns);
    const certificateArn = registered.resourceArns.certificate;
    if (certificateArn) certificate = { certificateArn, certificateId: certificateArn.split('/').pop()! };
    if (registered.certificatePem && !material.certificatePem) {
      material.certificatePem = registered.certificatePem;
      // AWS IoT signed the template's CSR
      material.issued = { certificate: parseCertificate(registered.certificatePem), issuerId: 'aws-iot' };
    }
  } else {
    const physicalIds: Record<string, string> = {};
    const policies: string[] = [];
    let thing: string | undefined;
    for (const logicalId of instance.order) {
      const resource = instance.resolve(logicalId, physicalIds);
      if (resource.type === 'AWS::IoT::Certificate') {
        certificate = await provisionCertificate(deps, resource, material);
        physicalIds[logicalId] = certificate.certificateId;
        resourceArns.certificate = certificate.certificateArn;
      } else if (resource.type === 'AWS::IoT::Policy') {
        const policy = await provisionPolicy(deps, resource);
        physicalIds[logicalId] = policy.policyName;
        resourceArns[logicalId] = policy.policyArn;
        policies.push(policy.policyName);
      } else {
        const created = await provisionThingResource(deps, resource);
        physicalIds[logicalId] = created.thingName;
        resourceArns.thing = created.thingArn;
        thing = created.thingName;
      }
    }
    thingName = thing!;
    if (certificate) {
      await deps.registry.attachThingPrincipal(thingName, certificate.certificateArn);
      for (const policy of policies) await deps.registry.attachPolicy(policy, certificate.certificateArn);
    }
  }

  // ---- CDF post-steps
  const section = loaded.cdf.section;
  const needsCertificate = (section.attachAdditionalPolicies?.length ?? 0) > 0 || section.clientIdMustMatchThingName;
  if (needsCertificate && !certificate) {
    throw new InvalidTemplateError(
      'INVALID_CDF_EXTENSION',
      'CDF',
      'policies are attached to a certificate: the template provisions none',
    );
  }
  for (const p of section.attachAdditionalPolicies ?? []) {
    let policyName = p.name;
    if (p.document !== undefined) {
      policyName = `${p.name}_${hash(p.document, 8)}`;
      await deps.registry.createPolicy(policyName, p.document);
    } else if (!(await deps.registry.getPolicy(policyName))) {
      throw new NotFoundError('POLICY_NOT_FOUND', `no policy ${policyName}`, {
        details: { path: 'CDF.attachAdditionalPolicies' },
      });
    }
    await deps.registry.attachPolicy(policyName, certificate!.certificateArn);
  }
  if (section.clientIdMustMatchThingName) {
    await deps.registry.createPolicy(CLIENT_ID_POLICY_NAME, clientIdPolicyDocument());
    await deps.registry.attachPolicy(CLIENT_ID_POLICY_NAME, certificate!.certificateArn);
  }
  for (const group of section.thingGroups ?? []) await deps.registry.addThingToThingGroup(thingName, group);

  if (material.issued) {
    const { certificate, issuerId } = material.issued;
    await announceIssued(deps, certificate, 'device', issuerId, thingName, 'provisioning');
  }

  const certificatePem =
    material.certificatePem ??
    (certificate ? (await deps.registry.describeCertificate(certificate.certificateId))?.certificatePem : undefined);
  return {
    thingName,
    resourceArns,
    certificateId: certificate?.certificateId ?? '',
    certificatePem: certificatePem ?? '',
    ...(material.privateKey ? { privateKey: material.privateKey } : {}),
    ...(material.publicKey ? { publicKey: material.publicKey } : {}),
  };
}
