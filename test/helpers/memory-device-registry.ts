import { ConflictError, NotFoundError } from '../../lambdas/core/errors';
import { parseCertificate } from '../../lambdas/core/pki';
import type {
  DeviceMessaging,
  DeviceRegistry,
  RegisteredCertificate,
  RegistryCertificateStatus,
  ThingRecord,
} from '../../lambdas/core/ports';

/**
 * A DeviceRegistry in memory for tests of the rotation workflows (the local one, LocalDeviceRegistry on dynalite,
 * comes from the mqtt branch). It keeps AWS IoT's rules that matter to rotation: a certificate is deleted only when
 * INACTIVE and held by no thing and no policy; `calls` records every method call in order.
 */
export class MemoryDeviceRegistry implements DeviceRegistry {
  readonly things = new Map<string, ThingRecord>();
  readonly groups = new Map<string, Set<string>>();
  readonly certificates = new Map<string, RegisteredCertificate & { caCertificatePem?: string }>();
  /** certificate ARN → thing names */
  readonly principalThings = new Map<string, Set<string>>();
  /** certificate ARN → policy names */
  readonly principalPolicies = new Map<string, Set<string>>();
  readonly policies = new Map<string, { policyName: string; policyArn: string; document: string }>();
  readonly calls: string[] = [];
  /** method name → error to throw once on its next call (fault injection) */
  readonly failNext = new Map<string, Error>();

  private record(call: string): void {
    this.calls.push(call);
    const method = call.split(' ')[0]!;
    const failure = this.failNext.get(method);
    if (failure) {
      this.failNext.delete(method);
      throw failure;
    }
  }

  static arnOf(certificateId: string): string {
    return `arn:aws:iot:local:000000000000:cert/${certificateId}`;
  }

  addThing(thingName: string, groups: string[] = []): void {
    this.things.set(thingName, {
      thingName,
      thingArn: `arn:aws:iot:local:000000000000:thing/${thingName}`,
      attributes: {},
    });
    for (const g of groups) this.membersOf(g).add(thingName);
  }

  private membersOf(group: string): Set<string> {
    let members = this.groups.get(group);
    if (!members) this.groups.set(group, (members = new Set()));
    return members;
  }

  private thing(thingName: string): ThingRecord {
    const thing = this.things.get(thingName);
    if (!thing) throw new NotFoundError('THING_NOT_FOUND', `thing ${thingName} not found`);
    return thing;
  }

  private certificateByArn(arn: string) {
    const cert = [...this.certificates.values()].find((c) => c.certificateArn === arn);
    if (!cert) throw new NotFoundError('CERTIFICATE_NOT_FOUND', `certificate ${arn} not found`);
    return cert;
  }

  async register(input: { certificatePem: string; caCertificatePem?: string; status: 'ACTIVE' | 'INACTIVE' }) {
    this.record(`register ${input.status}${input.caCertificatePem ? ' withCa' : ''}`);
    const cert = parseCertificate(input.certificatePem);
    const certificateArn = MemoryDeviceRegistry.arnOf(cert.id);
    if (!this.certificates.has(cert.id)) {
      this.certificates.set(cert.id, {
        certificateId: cert.id,
        certificateArn,
        status: input.status,
        certificatePem: cert.pem,
        ...(input.caCertificatePem
          ? {
              caCertificatePem: input.caCertificatePem,
              caCertificateId: parseCertificate(input.caCertificatePem).id,
            }
          : {}),
      });
    }
    return { certificateId: cert.id, certificateArn };
  }

  async describeThing(thingName: string) {
    this.record(`describeThing ${thingName}`);
    return this.things.get(thingName);
  }

  async createThing(input: { thingName: string; thingTypeName?: string; attributes?: Record<string, string> }) {
    this.record(`createThing ${input.thingName}`);
    const existing = this.things.get(input.thingName);
    if (existing && existing.thingTypeName !== input.thingTypeName) {
      throw new ConflictError('THING_EXISTS', 'another type');
    }
    const thing: ThingRecord = {
      thingName: input.thingName,
      thingArn: `arn:aws:iot:local:000000000000:thing/${input.thingName}`,
      ...(input.thingTypeName ? { thingTypeName: input.thingTypeName } : {}),
      attributes: { ...(existing?.attributes ?? {}), ...(input.attributes ?? {}) },
    };
    this.things.set(input.thingName, thing);
    return thing;
  }

  async updateThingAttributes(thingName: string, attributes: Record<string, string>) {
    this.record(`updateThingAttributes ${thingName} ${JSON.stringify(attributes)}`);
    const thing = this.thing(thingName);
    thing.attributes = { ...thing.attributes, ...attributes };
  }

  async listThingGroupsForThing(thingName: string) {
    this.record(`listThingGroupsForThing ${thingName}`);
    this.thing(thingName);
    return [...this.groups].filter(([, members]) => members.has(thingName)).map(([g]) => g);
  }

  async addThingToThingGroup(thingName: string, groupName: string) {
    this.record(`addThingToThingGroup ${thingName} ${groupName}`);
    this.thing(thingName);
    this.membersOf(groupName).add(thingName);
  }

  async removeThingFromThingGroup(thingName: string, groupName: string) {
    this.record(`removeThingFromThingGroup ${thingName} ${groupName}`);
    this.thing(thingName);
    this.membersOf(groupName).delete(thingName);
  }

  async describeCertificate(certificateId: string) {
    this.record(`describeCertificate ${certificateId.slice(0, 8)}`);
    const cert = this.certificates.get(certificateId);
    if (!cert) return undefined;
    const described: RegisteredCertificate = { ...cert };
    delete (described as { caCertificatePem?: string }).caCertificatePem;
    return described;
  }

  async updateCertificateStatus(certificateId: string, status: RegistryCertificateStatus) {
    this.record(`updateCertificateStatus ${certificateId.slice(0, 8)} ${status}`);
    const cert = this.certificates.get(certificateId);
    if (!cert) throw new NotFoundError('CERTIFICATE_NOT_FOUND', certificateId);
    cert.status = status;
  }

  async deleteCertificate(certificateId: string) {
    this.record(`deleteCertificate ${certificateId.slice(0, 8)}`);
    const cert = this.certificates.get(certificateId);
    if (!cert) throw new NotFoundError('CERTIFICATE_NOT_FOUND', certificateId);
    if (cert.status === 'ACTIVE') throw new ConflictError('CERTIFICATE_ACTIVE', 'deactivate it first');
    if (this.principalThings.get(cert.certificateArn)?.size || this.principalPolicies.get(cert.certificateArn)?.size) {
      throw new ConflictError('CERTIFICATE_IN_USE', 'detach it first');
    }
    this.certificates.delete(certificateId);
  }

  async attachThingPrincipal(thingName: string, principalArn: string) {
    this.record(`attachThingPrincipal ${thingName} ${certShort(principalArn)}`);
    this.thing(thingName);
    this.certificateByArn(principalArn);
    this.setOf(this.principalThings, principalArn).add(thingName);
  }

  async detachThingPrincipal(thingName: string, principalArn: string) {
    this.record(`detachThingPrincipal ${thingName} ${certShort(principalArn)}`);
    this.thing(thingName);
    this.principalThings.get(principalArn)?.delete(thingName);
  }

  async listThingPrincipals(thingName: string) {
    this.record(`listThingPrincipals ${thingName}`);
    this.thing(thingName);
    return [...this.principalThings].filter(([, things]) => things.has(thingName)).map(([arn]) => arn);
  }

  async listPrincipalThings(principalArn: string) {
    this.record(`listPrincipalThings ${certShort(principalArn)}`);
    this.certificateByArn(principalArn);
    return [...(this.principalThings.get(principalArn) ?? [])];
  }

  async listAttachedPolicies(principalArn: string) {
    this.record(`listAttachedPolicies ${certShort(principalArn)}`);
    this.certificateByArn(principalArn);
    return [...(this.principalPolicies.get(principalArn) ?? [])];
  }

  async attachPolicy(policyName: string, principalArn: string) {
    this.record(`attachPolicy ${policyName} ${certShort(principalArn)}`);
    if (!this.policies.has(policyName)) throw new NotFoundError('POLICY_NOT_FOUND', policyName);
    this.certificateByArn(principalArn);
    this.setOf(this.principalPolicies, principalArn).add(policyName);
  }

  async detachPolicy(policyName: string, principalArn: string) {
    this.record(`detachPolicy ${policyName} ${certShort(principalArn)}`);
    this.principalPolicies.get(principalArn)?.delete(policyName);
  }

  async getPolicy(policyName: string) {
    this.record(`getPolicy ${policyName}`);
    return this.policies.get(policyName);
  }

  async createPolicy(policyName: string, document: string) {
    this.record(`createPolicy ${policyName}`);
    const policy = { policyName, policyArn: `arn:aws:iot:local:000000000000:policy/${policyName}`, document };
    if (!this.policies.has(policyName)) this.policies.set(policyName, policy);
    return { policyName, policyArn: policy.policyArn };
  }

  private setOf(map: Map<string, Set<string>>, key: string): Set<string> {
    let set = map.get(key);
    if (!set) map.set(key, (set = new Set()));
    return set;
  }
}

const certShort = (arn: string): string => arn.slice(arn.lastIndexOf('/') + 1, arn.lastIndexOf('/') + 9);

/** A DeviceMessaging that records what it would publish. */
export class RecordedDeviceMessaging implements DeviceMessaging {
  readonly published: { topic: string; payload: Record<string, unknown> }[] = [];
  /** errors thrown by the next publishes, in order */
  readonly failures: Error[] = [];

  async publish(topic: string, payload: Record<string, unknown>): Promise<void> {
    const failure = this.failures.shift();
    if (failure) throw failure;
    this.published.push({ topic, payload: JSON.parse(JSON.stringify(payload)) as Record<string, unknown> });
  }
}
