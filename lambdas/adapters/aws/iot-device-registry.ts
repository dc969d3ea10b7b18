import {
  AddThingToThingGroupCommand,
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreatePolicyCommand,
  CreateThingCommand,
  DeleteCertificateCommand,
  DescribeCertificateCommand,
  DescribeThingCommand,
  DetachPolicyCommand,
  DetachThingPrincipalCommand,
  GetPolicyCommand,
  type IoTClient,
  ListAttachedPoliciesCommand,
  ListPrincipalThingsCommand,
  ListThingGroupsForThingCommand,
  ListThingPrincipalsCommand,
  RemoveThingFromThingGroupCommand,
  UpdateCertificateCommand,
  UpdateThingCommand,
} from '@aws-sdk/client-iot';
import { ConflictError, NotFoundError } from '../../core/errors';
import type {
  CertificateRegistry,
  DeviceRegistry,
  RegisteredCertificate,
  RegistryCertificateStatus,
  ThingRecord,
} from '../../core/ports';
import { type Pace, unpaced } from '../../core/pacing';
import { IotCertificateRegistry } from './iot-certificate-registry';
import { isAwsError } from './sdk-errors';

/** AWS IoT answers ResourceNotFoundException; the port's callers see NotFoundError (code `${what}_NOT_FOUND`). */
async function orNotFound<T>(
  what: 'THING' | 'CERTIFICATE' | 'POLICY' | 'THING_GROUP',
  name: string,
  call: () => Promise<T>,
): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (!isAwsError(error, 'ResourceNotFoundException')) throw error;
    throw new NotFoundError(`${what}_NOT_FOUND`, `${what.toLowerCase().replace('_', ' ')} ${name} not found`, {
      cause: error,
    });
  }
}

/** Every page of a paginated AWS IoT list: `call(token)` answers the page's items and the next token. */
async function allPages<T>(call: (token: string | undefined) => Promise<{ items: T[]; next?: string }>): Promise<T[]> {
  const items: T[] = [];
  let token: string | undefined;
  do {
    const page = await call(token);
    items.push(...page.items);
    token = page.next;
  } while (token);
  return items;
}

async function orUndefined<T>(call: () => Promise<T>): Promise<T | undefined> {
  try {
    return await call();
  } catch (error) {
    if (isAwsError(error, 'ResourceNotFoundException')) return undefined;
    throw error;
  }
}

/**
 * DeviceRegistry on the AWS IoT registry: one AWS IoT call per method (one per page for the lists), so that handler
 * tests can assert CDF's call order. Registration reuses IotCertificateRegistry (idempotent). With a Pace the
 * quota-bound calls (RegisterCertificate(WithoutCA), CreateThing, AttachThingPrincipal, AttachPolicy) take their slot
 * of the shared rate first and throttling answers are retried with jittered backoff; other service errors (and
 * throttling of the other calls, after the SDK's own retries) propagate unchanged, with their SDK `name`.
 */
export class IotDeviceRegistry implements DeviceRegistry {
  private readonly certificates: CertificateRegistry;

  constructor(
    private readonly iot: IoTClient,
    /** the quota-bound calls (registration, CreateThing, AttachThingPrincipal, AttachPolicy) at the shared rates */
    private readonly pace: Pace = unpaced,
  ) {
    this.certificates = new IotCertificateRegistry(iot, pace);
  }

  register(input: Parameters<CertificateRegistry['register']>[0]) {
    return this.certificates.register(input);
  }

  async describeThing(thingName: string): Promise<ThingRecord | undefined> {
    const out = await orUndefined(() => this.iot.send(new DescribeThingCommand({ thingName })));
    if (!out) return undefined;
    return {
      thingName: out.thingName ?? thingName,
      thingArn: out.thingArn ?? '',
      ...(out.thingTypeName ? { thingTypeName: out.thingTypeName } : {}),
      attributes: out.attributes ?? {},
    };
  }

  async createThing(input: {
    thingName: string;
    thingTypeName?: string;
    attributes?: Record<string, string>;
  }): Promise<ThingRecord> {
    const { thingName, thingTypeName, attributes = {} } = input;
    try {
      const out = await this.pace('iot:CreateThing', () =>
        this.iot.send(
          new CreateThingCommand({
            thingName,
            ...(thingTypeName ? { thingTypeName } : {}),
            attributePayload: { attributes },
          }),
        ),
      );
      return {
        thingName,
        thingArn: out.thingArn ?? '',
        ...(thingTypeName ? { thingTypeName } : {}),
        attributes,
      };
    } catch (error) {
      if (!isAwsError(error, 'ResourceAlreadyExistsException')) throw error;
      // exists with other attributes or another type: merge the attributes when the type is the same
      const existing = await this.describeThing(thingName);
      if (!existing) throw error;
      if ((existing.thingTypeName ?? undefined) !== thingTypeName) {
        throw new ConflictError('THING_EXISTS', `thing ${thingName} exists with another thing type`, { cause: error });
      }
      if (Object.keys(attributes).length > 0) await this.updateThingAttributes(thingName, attributes);
      return { ...existing, attributes: { ...existing.attributes, ...attributes } };
    }
  }

  async updateThingAttributes(thingName: string, attributes: Record<string, string>): Promise<void> {
    await orNotFound('THING', thingName, () =>
      this.iot.send(new UpdateThingCommand({ thingName, attributePayload: { attributes, merge: true } })),
    );
  }

  listThingGroupsForThing(thingName: string): Promise<string[]> {
    return allPages(async (nextToken) => {
      const page = await orNotFound('THING', thingName, () =>
        this.iot.send(new ListThingGroupsForThingCommand({ thingName, ...(nextToken ? { nextToken } : {}) })),
      );
      return {
        items: (page.thingGroups ?? []).flatMap((g) => (g.groupName ? [g.groupName] : [])),
        next: page.nextToken,
      };
    });
  }

  async addThingToThingGroup(thingName: string, groupName: string): Promise<void> {
    await orNotFound('THING_GROUP', `${groupName} or thing ${thingName}`, () =>
      this.iot.send(new AddThingToThingGroupCommand({ thingName, thingGroupName: groupName })),
    );
  }

  async removeThingFromThingGroup(thingName: string, groupName: string): Promise<void> {
    await orNotFound('THING_GROUP', `${groupName} or thing ${thingName}`, () =>
      this.iot.send(new RemoveThingFromThingGroupCommand({ thingName, thingGroupName: groupName })),
    );
  }

  async describeCertificate(certificateId: string): Promise<RegisteredCertificate | undefined> {
    const out = await orUndefined(() => this.iot.send(new DescribeCertificateCommand({ certificateId })));
    const d = out?.certificateDescription;
    if (!d) return undefined;
    return {
      certificateId: d.certificateId ?? certificateId,
      certificateArn: d.certificateArn ?? '',
      status: (d.status ?? 'INACTIVE') as RegistryCertificateStatus,
      ...(d.certificatePem ? { certificatePem: d.certificatePem } : {}),
      ...(d.caCertificateId ? { caCertificateId: d.caCertificateId } : {}),
    };
  }

  async updateCertificateStatus(certificateId: string, status: RegistryCertificateStatus): Promise<void> {
    await orNotFound('CERTIFICATE', certificateId, () =>
      this.iot.send(new UpdateCertificateCommand({ certificateId, newStatus: status })),
    );
  }

  async deleteCertificate(certificateId: string): Promise<void> {
    await orNotFound('CERTIFICATE', certificateId, () =>
      this.iot.send(new DeleteCertificateCommand({ certificateId, forceDelete: false })),
    );
  }

  async attachThingPrincipal(thingName: string, principalArn: string): Promise<void> {
    await orNotFound('THING', thingName, () =>
      this.pace('iot:AttachThingPrincipal', () =>
        this.iot.send(new AttachThingPrincipalCommand({ thingName, principal: principalArn })),
      ),
    );
  }

  async detachThingPrincipal(thingName: string, principalArn: string): Promise<void> {
    await orNotFound('THING', thingName, () =>
      this.iot.send(new DetachThingPrincipalCommand({ thingName, principal: principalArn })),
    );
  }

  listThingPrincipals(thingName: string): Promise<string[]> {
    return allPages(async (nextToken) => {
      const page = await orNotFound('THING', thingName, () =>
        this.iot.send(new ListThingPrincipalsCommand({ thingName, ...(nextToken ? { nextToken } : {}) })),
      );
      return { items: page.principals ?? [], next: page.nextToken };
    });
  }

  listPrincipalThings(principalArn: string): Promise<string[]> {
    return allPages(async (nextToken) => {
      const page = await orNotFound('CERTIFICATE', principalArn, () =>
        this.iot.send(new ListPrincipalThingsCommand({ principal: principalArn, ...(nextToken ? { nextToken } : {}) })),
      );
      return { items: page.things ?? [], next: page.nextToken };
    });
  }

  listAttachedPolicies(principalArn: string): Promise<string[]> {
    return allPages(async (marker) => {
      const page = await orNotFound('CERTIFICATE', principalArn, () =>
        this.iot.send(
          new ListAttachedPoliciesCommand({ target: principalArn, recursive: false, ...(marker ? { marker } : {}) }),
        ),
      );
      return {
        items: (page.policies ?? []).flatMap((p) => (p.policyName ? [p.policyName] : [])),
        next: page.nextMarker,
      };
    });
  }

  async attachPolicy(policyName: string, principalArn: string): Promise<void> {
    await orNotFound('POLICY', policyName, () =>
      this.pace('iot:AttachPolicy', () => this.iot.send(new AttachPolicyCommand({ policyName, target: principalArn }))),
    );
  }

  async detachPolicy(policyName: string, principalArn: string): Promise<void> {
    await orNotFound('POLICY', policyName, () =>
      this.iot.send(new DetachPolicyCommand({ policyName, target: principalArn })),
    );
  }

  async getPolicy(
    policyName: string,
  ): Promise<{ policyName: string; policyArn: string; document: string } | undefined> {
    const out = await orUndefined(() => this.iot.send(new GetPolicyCommand({ policyName })));
    if (!out) return undefined;
    return { policyName, policyArn: out.policyArn ?? '', document: out.policyDocument ?? '' };
  }

  async createPolicy(policyName: string, document: string): Promise<{ policyName: string; policyArn: string }> {
    try {
      const out = await this.iot.send(new CreatePolicyCommand({ policyName, policyDocument: document }));
      return { policyName, policyArn: out.policyArn ?? '' };
    } catch (error) {
      if (!isAwsError(error, 'ResourceAlreadyExistsException')) throw error;
      const existing = await this.getPolicy(policyName);
      if (!existing) throw error;
      if (!sameJson(existing.document, document)) {
        throw new ConflictError('POLICY_EXISTS', `policy ${policyName} exists with another document`, {
          cause: error,
        });
      }
      return { policyName, policyArn: existing.policyArn };
    }
  }
}

/** Two policy documents are the same when their JSON is (AWS IoT may re-format the text). */
function sameJson(a: string, b: string): boolean {
  try {
    return JSON.stringify(JSON.parse(a)) === JSON.stringify(JSON.parse(b));
  } catch {
    return a === b;
  }
}
