import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  ScanCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { ConflictError, NotFoundError, ValidationError } from '../../core/errors';
import { parseCertificate } from '../../core/pki';
import {
  systemClock,
  type CertificateRegistry,
  type Clock,
  type DeviceRegistry,
  type RegisteredCertificate,
  type RegistryCertificateStatus,
  type RotationGroup,
  type ThingRecord,
} from '../../core/ports';
import { certificateIdOfArn } from '../../core/naming/certificate-arn';
import { DEFAULT_ROTATION_THING_GROUP } from '../../core/rotation/topics';
import { DOCUMENT_CLIENT_CONFIG } from '../aws/dynamo-task-store';
import { isAwsError } from '../aws/sdk-errors';
import type { TableDefinition } from '../aws/tables';

/**
 * The local registry table (dynalite), one item per thing, certificate and policy:
 * - `thing#{thingName}`: thingName, thingArn, thingTypeName?, attributes (map), principals (string set of
 *   certificate ARNs), groups (string set of thing group names)
 * - `cert#{certificateId}`: certificateArn, status, certificatePem, caCertificateId?, registeredAt, things (string
 *   set of thing names), policies (string set of policy names)
 * - `policy#{policyName}`: policyArn, document
 */
export const REGISTRY_TABLE: TableDefinition = {
  tableName: 'certflow-registry',
  partitionKey: { name: 'pk', type: 'S' },
};

/** ARNs in the form AWS IoT gives them, in a fixed local account and region. */
/** The region and account of the local registry's ARNs. */
export const LOCAL_IOT_REGION = 'local';
export const LOCAL_IOT_ACCOUNT = '000000000000';
const ARN_PREFIX = `arn:aws:iot:${LOCAL_IOT_REGION}:${LOCAL_IOT_ACCOUNT}:`;
export const localCertificateArn = (certificateId: string): string => `${ARN_PREFIX}cert/${certificateId}`;
export const localThingArn = (thingName: string): string => `${ARN_PREFIX}thing/${thingName}`;
export const localPolicyArn = (policyName: string): string => `${ARN_PREFIX}policy/${policyName}`;

const thingPk = (thingName: string): string => `thing#${thingName}`;
const certPk = (certificateId: string): string => `cert#${certificateId}`;
const policyPk = (policyName: string): string => `policy#${policyName}`;

const thingNotFound = (thingName: string, cause?: unknown): NotFoundError =>
  new NotFoundError('THING_NOT_FOUND', `thing ${thingName} not found`, {
    ...(cause !== undefined ? { cause } : {}),
    details: { thingName },
  });
const certificateNotFound = (certificateId: string, cause?: unknown): NotFoundError =>
  new NotFoundError('CERTIFICATE_NOT_FOUND', `certificate ${certificateId} not found`, {
    ...(cause !== undefined ? { cause } : {}),
    details: { certificateId },
  });
const policyNotFound = (policyName: string): NotFoundError =>
  new NotFoundError('POLICY_NOT_FOUND', `policy ${policyName} not found`, { details: { policyName } });

interface ThingItem {
  pk: string;
  thingName: string;
  thingArn: string;
  thingTypeName?: string;
  attributes: Record<string, string>;
  principals?: Set<string>;
  groups?: Set<string>;
}

interface CertificateItem {
  pk: string;
  certificateArn: string;
  status: RegistryCertificateStatus;
  certificatePem: string;
  caCertificateId?: string;
  registeredAt: string;
  things?: Set<string>;
  policies?: Set<string>;
}

const sorted = (set: Set<string> | undefined): string[] => [...(set ?? [])].sort();

/**
 * The local stand-in for the AWS IoT registry (DeviceRegistry, CertificateRegistry, and the rotation thing group as
 * RotationGroup), kept in dynalite in REGISTRY_TABLE. The local MQTT broker consults it to admit a device.
 *
 * dynalite has no transactions, so every call writes single items, each with one conditional update, and the calls
 * that touch two items (attaching a certificate to a thing, a policy to a certificate) write them in an order that
 * fails closed: the certificate's `things` is written before the thing's `principals` on attach and after it on
 * detach, so a thing never lists a principal whose certificate does not list the thing, and a certificate that lists
 * no thing is held by none (deleteCertificate checks that, in its condition). Group memberships live on the thing
 * item only (`groups`), so adding, removing and listing them are single-item operations.
 */
export class LocalDeviceRegistry implements DeviceRegistry, CertificateRegistry, RotationGroup {
  private readonly doc: DynamoDBDocumentClient;

  readonly tableName: string;
  /** the rotation thing group that `add` and `members` use (CDF's `cdfRotateCertificates`) */
  readonly groupName: string;
  private readonly clock: Clock;
  private readonly certificateListeners: ((certificateId: string) => unknown)[] = [];

  constructor(client: DynamoDBClient, options: { tableName?: string; rotationGroupName?: string; clock?: Clock } = {}) {
    this.doc = DynamoDBDocumentClient.from(client, DOCUMENT_CLIENT_CONFIG);
    this.tableName = options.tableName ?? REGISTRY_TABLE.tableName;
    this.groupName = options.rotationGroupName ?? DEFAULT_ROTATION_THING_GROUP;
    this.clock = options.clock ?? systemClock;
  }

  /**
   * Calls `listener` after a certificate's status changed or it was deleted (the local broker disconnects clients
   * whose certificate is no longer admitted, as AWS IoT does). A failing listener does not fail the registry call.
   */
  onCertificateChange(listener: (certificateId: string) => unknown): void {
    this.certificateListeners.push(listener);
  }

  private certificateChanged(certificateId: string): void {
    for (const listener of this.certificateListeners) {
      Promise.resolve()
        .then(() => listener(certificateId))
        .catch(() => undefined);
    }
  }

  // ------------------------------------------------------------------------------------------------ certificates

  /** Registers a certificate (AWS IoT RegisterCertificate); a certificate registered before keeps its registration. */
  async register(input: { certificatePem: string; caCertificatePem?: string; status: 'ACTIVE' | 'INACTIVE' }) {
    const cert = parseCertificate(input.certificatePem);
    const caId = input.caCertificatePem ? parseCertificate(input.caCertificatePem).id : undefined;
    const certificateArn = localCertificateArn(cert.id);
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            pk: certPk(cert.id),
            certificateArn,
            status: input.status,
            certificatePem: cert.pem,
            ...(caId ? { caCertificateId: caId } : {}),
            registeredAt: this.clock.now().toISOString(),
          },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
    } catch (error) {
      if (!isAwsError(error, 'ConditionalCheckFailedException')) throw error;
    }
    return { certificateId: cert.id, certificateArn };
  }

  async describeCertificate(certificateId: string): Promise<RegisteredCertificate | undefined> {
    const item = await this.certificateItem(certificateId);
    if (!item) return undefined;
    return {
      certificateId,
      certificateArn: item.certificateArn,
      status: item.status,
      certificatePem: item.certificatePem,
      ...(item.caCertificateId ? { caCertificateId: item.caCertificateId } : {}),
    };
  }

  async updateCertificateStatus(certificateId: string, status: RegistryCertificateStatus): Promise<void> {
    await this.updateExisting(
      certPk(certificateId),
      'SET #status = :status',
      { '#status': 'status' },
      {
        ':status': status,
      },
    ).catch((error: unknown) => {
      throw isAwsError(error, 'ConditionalCheckFailedException') ? certificateNotFound(certificateId, error) : error;
    });
    this.certificateChanged(certificateId);
  }

  /** Deletes an INACTIVE certificate that no thing and no policy holds (one conditional delete). */
  async deleteCertificate(certificateId: string): Promise<void> {
    try {
      await this.doc.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: { pk: certPk(certificateId) },
          ConditionExpression:
            'attribute_exists(pk) AND #status = :inactive AND attribute_not_exists(things) AND attribute_not_exists(policies)',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':inactive': 'INACTIVE' },
        }),
      );
      this.certificateChanged(certificateId);
    } catch (error) {
      if (!isAwsError(error, 'ConditionalCheckFailedException')) throw error;
      const item = await this.certificateItem(certificateId);
      if (!item) throw certificateNotFound(certificateId, error);
      if (item.status !== 'INACTIVE') {
        throw new ConflictError('CERTIFICATE_NOT_INACTIVE', `certificate ${certificateId} is ${item.status}`, {
          cause: error,
          details: { certificateId, status: item.status },
        });
      }
      throw new ConflictError('CERTIFICATE_IN_USE', `certificate ${certificateId} is attached to things or policies`, {
        cause: error,
        details: { certificateId, things: sorted(item.things), policies: sorted(item.policies) },
      });
    }
  }

  // ------------------------------------------------------------------------------------------------------ things

  async describeThing(thingName: string): Promise<ThingRecord | undefined> {
    const item = await this.thingItem(thingName);
    return item ? thingRecord(item) : undefined;
  }

  async createThing(input: {
    thingName: string;
    thingTypeName?: string;
    attributes?: Record<string, string>;
  }): Promise<ThingRecord> {
    if (!/^[a-zA-Z0-9:_-]{1,128}$/.test(input.thingName)) {
      throw new ValidationError('INVALID_THING_NAME', `thing name ${input.thingName} is not valid in AWS IoT`, {
        details: { thingName: input.thingName },
      });
    }
    const item: ThingItem = {
      pk: thingPk(input.thingName),
      thingName: input.thingName,
      thingArn: localThingArn(input.thingName),
      ...(input.thingTypeName ? { thingTypeName: input.thingTypeName } : {}),
      attributes: input.attributes ?? {},
    };
    try {
      await this.doc.send(
        new PutCommand({ TableName: this.tableName, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }),
      );
      return thingRecord(item);
    } catch (error) {
      if (!isAwsError(error, 'ConditionalCheckFailedException')) throw error;
    }
    const existing = await this.thingItem(input.thingName);
    if (!existing) throw thingNotFound(input.thingName);
    if (existing.thingTypeName !== input.thingTypeName) {
      throw new ConflictError('THING_EXISTS', `thing ${input.thingName} exists with another thing type`, {
        details: { thingName: input.thingName, thingTypeName: existing.thingTypeName },
      });
    }
    if (input.attributes && Object.keys(input.attributes).length > 0) {
      await this.updateThingAttributes(input.thingName, input.attributes);
    }
    return thingRecord((await this.thingItem(input.thingName)) ?? existing);
  }

  /** Merges attributes (one update); an empty value removes the attribute, as in AWS IoT UpdateThing. */
  async updateThingAttributes(thingName: string, attributes: Record<string, string>): Promise<void> {
    const entries = Object.entries(attributes);
    if (entries.length === 0) {
      if (!(await this.thingItem(thingName))) throw thingNotFound(thingName);
      return;
    }
    const names: Record<string, string> = { '#attributes': 'attributes' };
    const values: Record<string, unknown> = {};
    const set: string[] = [];
    const remove: string[] = [];
    entries.forEach(([key, value], i) => {
      names[`#a${i}`] = key;
      if (value === '') remove.push(`#attributes.#a${i}`);
      else {
        values[`:a${i}`] = value;
        set.push(`#attributes.#a${i} = :a${i}`);
      }
    });
    const expression = [set.length ? `SET ${set.join(', ')}` : '', remove.length ? `REMOVE ${remove.join(', ')}` : '']
      .filter(Boolean)
      .join(' ');
    await this.updateExisting(thingPk(thingName), expression, names, values).catch((error: unknown) => {
      throw isAwsError(error, 'ConditionalCheckFailedException') ? thingNotFound(thingName, error) : error;
    });
  }

  // ------------------------------------------------------------------------------------------------ thing groups

  async listThingGroupsForThing(thingName: string): Promise<string[]> {
    const item = await this.thingItem(thingName);
    if (!item) throw thingNotFound(thingName);
    return sorted(item.groups);
  }

  async addThingToThingGroup(thingName: string, groupName: string): Promise<void> {
    await this.updateThingSet(thingName, 'ADD', 'groups', groupName);
  }

  async removeThingFromThingGroup(thingName: string, groupName: string): Promise<void> {
    await this.updateThingSet(thingName, 'DELETE', 'groups', groupName);
  }

  /**
   * RotationGroup: adds things to the rotation group. A thing that is not in the registry is skipped, as on AWS
   * (IotRotationGroup): a certificate whose thing was never registered or was deleted has nothing to rotate.
   */
  async add(thingNames: string[]): Promise<void> {
    for (const thingName of new Set(thingNames)) {
      try {
        await this.addThingToThingGroup(thingName, this.groupName);
      } catch (error) {
        if (!(error instanceof NotFoundError)) throw error;
      }
    }
  }

  /** the things in the rotation group, sorted (a Scan: tests and the console) */
  async members(groupName: string = this.groupName): Promise<string[]> {
    const out: string[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.doc.send(
        new ScanCommand({
          TableName: this.tableName,
          ConsistentRead: true,
          FilterExpression: 'begins_with(pk, :thing) AND contains(#groups, :group)',
          ExpressionAttributeNames: { '#groups': 'groups' },
          ExpressionAttributeValues: { ':thing': 'thing#', ':group': groupName },
          ...(start !== undefined ? { ExclusiveStartKey: start } : {}),
        }),
      );
      out.push(...(page.Items ?? []).map((i) => (i as ThingItem).thingName));
      start = page.LastEvaluatedKey;
    } while (start !== undefined);
    return out.sort();
  }

  // -------------------------------------------------------------------------------------------------- principals

  async attachThingPrincipal(thingName: string, principalArn: string): Promise<void> {
    const certificateId = certificateIdOfArn(principalArn);
    if (!(await this.thingItem(thingName))) throw thingNotFound(thingName);
    // the certificate first: a thing lists a principal only once the certificate lists the thing
    await this.updateCertificateSet(certificateId, 'ADD', 'things', thingName);
    await this.updateThingSet(thingName, 'ADD', 'principals', principalArn);
  }

  async detachThingPrincipal(thingName: string, principalArn: string): Promise<void> {
    const certificateId = certificateIdOfArn(principalArn);
    // the thing first (the reverse of attach)
    await this.updateThingSet(thingName, 'DELETE', 'principals', principalArn);
    await this.updateCertificateSet(certificateId, 'DELETE', 'things', thingName);
  }

  async listThingPrincipals(thingName: string): Promise<string[]> {
    const item = await this.thingItem(thingName);
    if (!item) throw thingNotFound(thingName);
    return sorted(item.principals);
  }

  async listPrincipalThings(principalArn: string): Promise<string[]> {
    const certificateId = certificateIdOfArn(principalArn);
    const item = await this.certificateItem(certificateId);
    if (!item) throw certificateNotFound(certificateId);
    return sorted(item.things);
  }

  // ---------------------------------------------------------------------------------------------------- policies

  async listAttachedPolicies(principalArn: string): Promise<string[]> {
    const certificateId = certificateIdOfArn(principalArn);
    const item = await this.certificateItem(certificateId);
    if (!item) throw certificateNotFound(certificateId);
    return sorted(item.policies);
  }

  async attachPolicy(policyName: string, principalArn: string): Promise<void> {
    const certificateId = certificateIdOfArn(principalArn);
    if (!(await this.getPolicy(policyName))) throw policyNotFound(policyName);
    await this.updateCertificateSet(certificateId, 'ADD', 'policies', policyName);
  }

  async detachPolicy(policyName: string, principalArn: string): Promise<void> {
    const certificateId = certificateIdOfArn(principalArn);
    await this.updateCertificateSet(certificateId, 'DELETE', 'policies', policyName);
  }

  async getPolicy(policyName: string) {
    const item = await this.item<{ policyArn: string; document: string }>(policyPk(policyName));
    if (!item) return undefined;
    return { policyName, policyArn: item.policyArn, document: item.document };
  }

  async createPolicy(policyName: string, document: string): Promise<{ policyName: string; policyArn: string }> {
    try {
      JSON.parse(document);
    } catch (error) {
      throw new ValidationError('MALFORMED_POLICY', `policy ${policyName} is not JSON`, {
        cause: error,
        details: { policyName },
      });
    }
    const policyArn = localPolicyArn(policyName);
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { pk: policyPk(policyName), policyName, policyArn, document },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return { policyName, policyArn };
    } catch (error) {
      if (!isAwsError(error, 'ConditionalCheckFailedException')) throw error;
    }
    const existing = await this.getPolicy(policyName);
    if (existing?.document !== document) {
      throw new ConflictError('POLICY_EXISTS', `policy ${policyName} exists with another document`, {
        details: { policyName },
      });
    }
    return { policyName, policyArn };
  }

  // ----------------------------------------------------------------------------------------------------- helpers

  private thingItem(thingName: string): Promise<ThingItem | undefined> {
    return this.item<ThingItem>(thingPk(thingName));
  }

  private certificateItem(certificateId: string): Promise<CertificateItem | undefined> {
    return this.item<CertificateItem>(certPk(certificateId));
  }

  private async item<T>(pk: string): Promise<T | undefined> {
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { pk }, ConsistentRead: true }),
    );
    return Item as T | undefined;
  }

  /** one UpdateItem on an item that must exist (ConditionalCheckFailedException otherwise) */
  private async updateExisting(
    pk: string,
    expression: string,
    names: Record<string, string>,
    values: Record<string, unknown>,
  ): Promise<void> {
    await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { pk },
        UpdateExpression: expression,
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeNames: names,
        ...(Object.keys(values).length > 0 ? { ExpressionAttributeValues: values } : {}),
      }),
    );
  }

  /** ADD or DELETE one member of a string set (DynamoDB drops a set that becomes empty) */
  private updateSet(pk: string, op: 'ADD' | 'DELETE', attribute: string, member: string): Promise<void> {
    return this.updateExisting(pk, `${op} #set :member`, { '#set': attribute }, { ':member': new Set([member]) });
  }

  private updateThingSet(thingName: string, op: 'ADD' | 'DELETE', attribute: 'principals' | 'groups', member: string) {
    return this.updateSet(thingPk(thingName), op, attribute, member).catch((error: unknown) => {
      throw isAwsError(error, 'ConditionalCheckFailedException') ? thingNotFound(thingName, error) : error;
    });
  }

  private updateCertificateSet(
    certificateId: string,
    op: 'ADD' | 'DELETE',
    attribute: 'things' | 'policies',
    member: string,
  ) {
    return this.updateSet(certPk(certificateId), op, attribute, member).catch((error: unknown) => {
      throw isAwsError(error, 'ConditionalCheckFailedException') ? certificateNotFound(certificateId, error) : error;
    });
  }
}

function thingRecord(item: ThingItem): ThingRecord {
  return {
    thingName: item.thingName,
    thingArn: item.thingArn,
    ...(item.thingTypeName ? { thingTypeName: item.thingTypeName } : {}),
    attributes: { ...item.attributes },
  };
}
