/**
 * LocalDeviceRegistry against a real dynalite (in memory, 127.0.0.1): things, attributes, groups, certificates with
 * their status, principals and policies, with the AWS IoT semantics the rotation and provisioning flows rely on.
 */
import { GetCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  LocalDeviceRegistry,
  REGISTRY_TABLE,
  localCertificateArn,
} from '../../../lambdas/adapters/local/local-device-registry';
import { certificateIdOfArn } from '../../../lambdas/core/naming/certificate-arn';
import { ConflictError, NotFoundError, ValidationError } from '../../../lambdas/core/errors';
import { createRootCa, issueLeaf, type ParsedCertificate } from '../../../lambdas/core/pki';
import type { LocalServer } from '../../../local/runtime/types';
import { createLocalDynamoDbClient, ensureTable, startDynamoDb } from '../../../local/runtime/dynamodb-server';

let server: LocalServer;
let client: DynamoDBClient;
let registry: LocalDeviceRegistry;
let ca: ParsedCertificate;
const certs: ParsedCertificate[] = [];
const now = new Date();

beforeAll(async () => {
  server = await startDynamoDb({ createTableMs: 0 });
  client = createLocalDynamoDbClient(server.endpoint);
  await ensureTable(client, REGISTRY_TABLE);
  registry = new LocalDeviceRegistry(client);
  const root = await createRootCa({ subject: { commonName: 'Registry Test Root' }, validity: { days: 30 }, now });
  ca = root.certificate;
  for (let i = 0; i < 4; i++) {
    const leaf = await issueLeaf(root.issuer, {
      profile: 'device',
      subject: { commonName: `thing-${i}` },
      validity: { days: 30 },
      now,
    });
    certs.push(leaf.certificate);
  }
});
afterAll(async () => {
  client?.destroy();
  await server?.close();
});

const cert = (i: number): ParsedCertificate => certs[i]!;

describe('LocalDeviceRegistry', () => {
  describe('certificates', () => {
    it('registers a certificate with its status, CA and ARN, and answers a second registration unchanged', async () => {
      const first = await registry.register({
        certificatePem: cert(0).pem,
        caCertificatePem: ca.pem,
        status: 'ACTIVE',
      });
      expect(first).toEqual({ certificateId: cert(0).id, certificateArn: localCertificateArn(cert(0).id) });
      const again = await registry.register({ certificatePem: cert(0).pem, status: 'INACTIVE' });
      expect(again).toEqual(first);
      expect(await registry.describeCertificate(cert(0).id)).toEqual({
        certificateId: cert(0).id,
        certificateArn: first.certificateArn,
        status: 'ACTIVE',
        certificatePem: cert(0).pem,
        caCertificateId: ca.id,
      });
      expect(certificateIdOfArn(first.certificateArn)).toBe(cert(0).id);
    });

    it('describes an unknown certificate as undefined, and refuses to update one (NotFoundError)', async () => {
      expect(await registry.describeCertificate('0'.repeat(64))).toBeUndefined();
      await expect(registry.updateCertificateStatus('0'.repeat(64), 'INACTIVE')).rejects.toMatchObject({
        name: 'NotFoundError',
        code: 'CERTIFICATE_NOT_FOUND',
      });
    });

    it('updates a certificate status', async () => {
      await registry.register({ certificatePem: cert(3).pem, status: 'INACTIVE' });
      await registry.updateCertificateStatus(cert(3).id, 'ACTIVE');
      expect((await registry.describeCertificate(cert(3).id))?.status).toBe('ACTIVE');
      await registry.updateCertificateStatus(cert(3).id, 'REVOKED');
      expect((await registry.describeCertificate(cert(3).id))?.status).toBe('REVOKED');
    });

    it('tells its listeners after a status change or a deletion, not after a refused update', async () => {
      const watched = new LocalDeviceRegistry(client);
      const seen: string[] = [];
      watched.onCertificateChange((id) => void seen.push(id));
      watched.onCertificateChange(() => {
        throw new Error('a failing listener does not fail the registry call');
      });
      await watched.register({ certificatePem: cert(3).pem, status: 'ACTIVE' });
      await watched.updateCertificateStatus(cert(3).id, 'REVOKED');
      await expect(watched.updateCertificateStatus('ab'.repeat(32), 'REVOKED')).rejects.toBeInstanceOf(NotFoundError);
      await watched.updateCertificateStatus(cert(3).id, 'INACTIVE');
      await watched.deleteCertificate(cert(3).id);
      await new Promise((resolve) => setImmediate(resolve));
      expect(seen).toEqual([cert(3).id, cert(3).id, cert(3).id]);
    });

    it('rejects a principal that is not a certificate ARN', async () => {
      await expect(registry.listPrincipalThings('arn:aws:iot:local:000000000000:thing/x')).rejects.toBeInstanceOf(
        ValidationError,
      );
    });
  });

  describe('things', () => {
    it('creates a thing with type and attributes; creating it again merges attributes', async () => {
      const created = await registry.createThing({
        thingName: 'thing-0',
        thingTypeName: 'sensor',
        attributes: { model: 'a1', status: 'new' },
      });
      expect(created).toEqual({
        thingName: 'thing-0',
        thingArn: 'arn:aws:iot:local:000000000000:thing/thing-0',
        thingTypeName: 'sensor',
        attributes: { model: 'a1', status: 'new' },
      });
      const again = await registry.createThing({
        thingName: 'thing-0',
        thingTypeName: 'sensor',
        attributes: { site: 'x' },
      });
      expect(again.attributes).toEqual({ model: 'a1', status: 'new', site: 'x' });
    });

    it('refuses to recreate a thing with another type (409) and a name AWS IoT refuses (400)', async () => {
      await expect(registry.createThing({ thingName: 'thing-0', thingTypeName: 'gateway' })).rejects.toMatchObject({
        name: 'ConflictError',
        code: 'THING_EXISTS',
      });
      await expect(registry.createThing({ thingName: 'bad/name' })).rejects.toMatchObject({
        code: 'INVALID_THING_NAME',
      });
    });

    it('merges attributes and removes those set to the empty string', async () => {
      await registry.updateThingAttributes('thing-0', { status: 'active', site: '' });
      expect((await registry.describeThing('thing-0'))?.attributes).toEqual({ model: 'a1', status: 'active' });
    });

    it('describes an unknown thing as undefined; updates and lists on it are NotFoundError', async () => {
      expect(await registry.describeThing('nobody')).toBeUndefined();
      await expect(registry.updateThingAttributes('nobody', { a: 'b' })).rejects.toMatchObject({
        code: 'THING_NOT_FOUND',
      });
      await expect(registry.listThingPrincipals('nobody')).rejects.toBeInstanceOf(NotFoundError);
      await expect(registry.listThingGroupsForThing('nobody')).rejects.toBeInstanceOf(NotFoundError);
      await expect(registry.addThingToThingGroup('nobody', 'g')).rejects.toBeInstanceOf(NotFoundError);
    });
  });

  describe('thing groups', () => {
    it('adds and removes a thing from groups; adding twice is a no-op', async () => {
      await registry.createThing({ thingName: 'thing-1' });
      await registry.addThingToThingGroup('thing-1', 'cdfRotateCertificates');
      await registry.addThingToThingGroup('thing-1', 'cdfRotateCertificates');
      await registry.addThingToThingGroup('thing-1', 'fleet-a');
      expect(await registry.listThingGroupsForThing('thing-1')).toEqual(['cdfRotateCertificates', 'fleet-a']);
      await registry.removeThingFromThingGroup('thing-1', 'cdfRotateCertificates');
      await registry.removeThingFromThingGroup('thing-1', 'cdfRotateCertificates');
      expect(await registry.listThingGroupsForThing('thing-1')).toEqual(['fleet-a']);
      await registry.removeThingFromThingGroup('thing-1', 'fleet-a');
      expect(await registry.listThingGroupsForThing('thing-1')).toEqual([]);
    });

    it('as the rotation group: adds registered things, skips unknown ones, and lists its members', async () => {
      await registry.createThing({ thingName: 'thing-2' });
      await registry.add(['thing-2', 'thing-0', 'never-registered', 'thing-2']);
      expect(await registry.members()).toEqual(['thing-0', 'thing-2']);
      expect(await registry.listThingGroupsForThing('thing-2')).toEqual(['cdfRotateCertificates']);
      expect(await registry.members('fleet-a')).toEqual([]);
      await registry.removeThingFromThingGroup('thing-0', 'cdfRotateCertificates');
      await registry.removeThingFromThingGroup('thing-2', 'cdfRotateCertificates');
      expect(await registry.members()).toEqual([]);
    });

    it('uses the configured rotation group name', async () => {
      const other = new LocalDeviceRegistry(client, { rotationGroupName: 'rotateNow' });
      await other.add(['thing-2']);
      expect(await other.members()).toEqual(['thing-2']);
      expect(await registry.members()).toEqual([]);
      await registry.removeThingFromThingGroup('thing-2', 'rotateNow');
    });
  });

  describe('principals and policies', () => {
    it('attaches a certificate to a thing both ways, and detaches it both ways', async () => {
      const { certificateArn } = await registry.register({ certificatePem: cert(1).pem, status: 'ACTIVE' });
      await registry.attachThingPrincipal('thing-1', certificateArn);
      await registry.attachThingPrincipal('thing-1', certificateArn);
      await registry.attachThingPrincipal('thing-0', certificateArn);
      expect(await registry.listThingPrincipals('thing-1')).toEqual([certificateArn]);
      expect(await registry.listPrincipalThings(certificateArn)).toEqual(['thing-0', 'thing-1']);
      await registry.detachThingPrincipal('thing-0', certificateArn);
      expect(await registry.listPrincipalThings(certificateArn)).toEqual(['thing-1']);
      expect(await registry.listThingPrincipals('thing-0')).toEqual([]);
    });

    it('refuses to attach an unknown certificate, or to an unknown thing, without writing half an attachment', async () => {
      const unknown = localCertificateArn('f'.repeat(64));
      await expect(registry.attachThingPrincipal('thing-1', unknown)).rejects.toMatchObject({
        code: 'CERTIFICATE_NOT_FOUND',
      });
      expect(await registry.listThingPrincipals('thing-1')).not.toContain(unknown);
      const arn = localCertificateArn(cert(1).id);
      await expect(registry.attachThingPrincipal('nobody', arn)).rejects.toMatchObject({ code: 'THING_NOT_FOUND' });
      expect(await registry.listPrincipalThings(arn)).toEqual(['thing-1']);
    });

    it('creates policies idempotently, refuses another document under the same name, attaches and detaches', async () => {
      const document = JSON.stringify({ Version: '2012-10-17', Statement: [] });
      const created = await registry.createPolicy('rotated', document);
      expect(created).toEqual({ policyName: 'rotated', policyArn: 'arn:aws:iot:local:000000000000:policy/rotated' });
      expect(await registry.createPolicy('rotated', document)).toEqual(created);
      await expect(registry.createPolicy('rotated', '{}')).rejects.toBeInstanceOf(ConflictError);
      await expect(registry.createPolicy('broken', '{')).rejects.toMatchObject({ code: 'MALFORMED_POLICY' });
      expect(await registry.getPolicy('rotated')).toEqual({ ...created, document });
      expect(await registry.getPolicy('absent')).toBeUndefined();

      const arn = localCertificateArn(cert(1).id);
      await expect(registry.attachPolicy('absent', arn)).rejects.toMatchObject({ code: 'POLICY_NOT_FOUND' });
      await registry.attachPolicy('rotated', arn);
      expect(await registry.listAttachedPolicies(arn)).toEqual(['rotated']);
    });

    it('deletes a certificate only once it is INACTIVE and neither a thing nor a policy holds it', async () => {
      const arn = localCertificateArn(cert(1).id);
      await expect(registry.deleteCertificate(cert(1).id)).rejects.toMatchObject({ code: 'CERTIFICATE_NOT_INACTIVE' });
      await registry.updateCertificateStatus(cert(1).id, 'INACTIVE');
      await expect(registry.deleteCertificate(cert(1).id)).rejects.toMatchObject({
        code: 'CERTIFICATE_IN_USE',
        details: { things: ['thing-1'], policies: ['rotated'] },
      });
      await registry.detachThingPrincipal('thing-1', arn);
      await expect(registry.deleteCertificate(cert(1).id)).rejects.toMatchObject({ code: 'CERTIFICATE_IN_USE' });
      await registry.detachPolicy('rotated', arn);
      await registry.deleteCertificate(cert(1).id);
      expect(await registry.describeCertificate(cert(1).id)).toBeUndefined();
      await expect(registry.deleteCertificate(cert(1).id)).rejects.toMatchObject({ code: 'CERTIFICATE_NOT_FOUND' });
      expect(await registry.listThingPrincipals('thing-1')).toEqual([]);
    });

    it('keeps one item per thing and certificate, with emptied sets dropped', async () => {
      const doc = DynamoDBDocumentClient.from(client);
      const { Item } = await doc.send(
        new GetCommand({ TableName: REGISTRY_TABLE.tableName, Key: { pk: 'thing#thing-1' } }),
      );
      expect(Item).toMatchObject({ thingName: 'thing-1' });
      expect(Item).not.toHaveProperty('principals');
      expect(Item).not.toHaveProperty('groups');
    });
  });
});
