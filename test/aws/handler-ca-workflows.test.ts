/**
 * The Step Functions task Lambdas of the CA hierarchy — sfn-record-inventory (inventory workflow), sfn-expiry-sweep
 * (expiry sweep) and sfn-revoke-issued (compromise response) — on AWS adapters over real SDK clients whose `send` is
 * mocked: the exact DynamoDB, EventBridge, AWS IoT, SSM and S3 commands and inputs of each step, and each module's
 * Lambda `handler` built from the environment alone.
 *
 * The inventory and CA tables are in memory behind the DynamoDB mock, so that a replayed event meets what the first
 * delivery wrote; the fake knows only the expressions the adapters send and throws on any other.
 */
import 'aws-sdk-client-mock-jest';
import { createHash } from 'node:crypto';
import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { AddThingToThingGroupCommand, IoTClient } from '@aws-sdk/client-iot';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { GetParameterCommand, ParameterNotFound, SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { Context } from 'aws-lambda';
import { awsCaDeps } from '../../lambdas/adapters/aws/ca-deps';
import { DynamoInventory, EXPIRY_SHARDS, inventoryItem } from '../../lambdas/adapters/aws/dynamo-inventory';
import { EventBridgePublisher } from '../../lambdas/adapters/aws/eventbridge-publisher';
import { ValidationError } from '../../lambdas/core/errors';
import { CertificateIssuedDetail } from '../../lambdas/core/events';
import { type CreatedCa, createRootCa, createIntermediateCa, privateKeyToPem } from '../../lambdas/core/pki';
import { x509 } from '../../lambdas/core/pki/setup';
import type { Clock, InventoryRecord } from '../../lambdas/core/ports';
import { CaEnv, readEnv } from '../../lambdas/handlers/env';
import * as expirySweep from '../../lambdas/handlers/sfn-expiry-sweep';
import * as recordInventory from '../../lambdas/handlers/sfn-record-inventory';
import * as revokeIssued from '../../lambdas/handlers/sfn-revoke-issued';
import { testClients, US_EAST_1_CONFIG } from './aws-clients';
import {
  BY_EXPIRY,
  BY_ISSUER,
  CRL_NUMBER_UPDATE,
  EXPIRY_NOTICE,
  FakeTables,
  type Item,
  NOTIFY_CONDITION,
  NOTIFY_UPDATE,
  REVOKE,
  REVOKE_UPDATE,
} from './dynamo-fake';
import { callSequence, cmd, sentEvents, type CommandClass, type InputOf, mockSdk } from './sdk-mock';

const INVENTORY_TABLE = 'certflow-inventory';
const CA_TABLE = 'certflow-cas';
const BUCKET = 'certflow-objects';
const BUS = 'certflow-bus';
const ROTATION_GROUP = 'acme-rotate-certificates';

const docMock = mockSdk(DynamoDBDocumentClient);
const ebMock = mockSdk(EventBridgeClient);
const iotMock = mockSdk(IoTClient);
const ssmMock = mockSdk(SSMClient);
const s3Mock = mockSdk(S3Client);
const MOCKS = { DynamoDB: docMock, EventBridge: ebMock, IoT: iotMock, SSM: ssmMock, S3: s3Mock };

const clients = () => testClients(US_EAST_1_CONFIG);

// ---------------------------------------------------------------------------------------------------------------
// The tables behind the DynamoDB mock

/** The CA and inventory tables: the workflows query byIssuer and byExpiry, count CRLs, revoke and note expiries. */
const tables = new FakeTables(docMock, {
  keys: { [CA_TABLE]: 'caId', [INVENTORY_TABLE]: 'certificateId' },
  indexes: { ...BY_ISSUER, ...BY_EXPIRY },
  updates: [CRL_NUMBER_UPDATE, REVOKE, EXPIRY_NOTICE],
});
const table = (name: string) => tables.table(name);
const KEY_ATTRIBUTE = tables.keys;

/** The inputs of one DynamoDB command, in order. */
const dynamoInputs = <C extends CommandClass>(command: C): InputOf<C>[] =>
  docMock.commandCalls(cmd(command)).map((c) => c.args[0].input);

/** Every SDK call in order, as `Service.Operation`, with `×N` when a PutEvents sends more than one entry. */
const sequence = (): string[] =>
  callSequence(MOCKS, (service, operation, input) => {
    const entries = (input.Entries ?? []) as PutEventsRequestEntry[];
    return entries.length > 1 ? `${service}.${operation} ×${entries.length}` : `${service}.${operation}`;
  });

const events = () => sentEvents(ebMock);

const id = (n: number): string => createHash('sha256').update(`certificate-${n}`).digest('hex');
/** An id in the given expiry shard (its first hex digit). */
const idInShard = (shard: string, n: number): string => {
  for (let i = 0; ; i++) {
    const candidate = id(n * 1000 + i);
    if (candidate.startsWith(shard)) return candidate;
  }
};

const DAY = 86_400_000;
const ASOF = '2026-06-01T00:00:00.000Z';
const at = (days: number): string => new Date(Date.parse(ASOF) + days * DAY).toISOString();
const fixedClock: Clock = { now: () => new Date(ASOF) };

/** An inventory record; undefined fields are left out. */
const record = (n: number, fields: Partial<InventoryRecord> = {}): InventoryRecord =>
  Object.fromEntries(
    Object.entries({
      certificateId: id(n),
      kind: 'device',
      commonName: `thing-${n}`,
      issuerId: 'a'.repeat(64),
      serialNumber: `5c00${n.toString(16).padStart(4, '0')}`,
      notBefore: '2026-01-01T00:00:00.000Z',
      notAfter: '2027-01-01T00:00:00.000Z',
      status: 'active',
      issuedAt: new Date(Date.parse('2026-01-01T00:00:00.000Z') + n * 1000).toISOString(),
      origin: 'bulk',
      thingName: `thing-${n}`,
      ...fields,
    }).filter(([, value]) => value !== undefined),
  ) as unknown as InventoryRecord;

const seedInventory = (...records: InventoryRecord[]): void =>
  tables.put(INVENTORY_TABLE, ...records.map(inventoryItem));

const stored = (certificateId: string): Item | undefined => table(INVENTORY_TABLE).rows.get(certificateId);

const context = {
  functionName: 'certflow-task',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:111122223333:function:certflow-task',
  memoryLimitInMB: '512',
  awsRequestId: 'c6af9ac6-7b61-11e6-9a41-93e812345678',
  logGroupName: '/aws/lambda/certflow-task',
  logStreamName: '2026/06/01/[$LATEST]abcdef',
  callbackWaitsForEmptyEventLoop: true,
  getRemainingTimeInMillis: () => 60_000,
} as unknown as Context;

/** Sets process.env for one test and restores it after. */
function withEnvironment(variables: Record<string, string>): void {
  const saved: Record<string, string | undefined> = {};
  beforeEach(() => {
    for (const [name, value] of Object.entries(variables)) {
      saved[name] = process.env[name];
      process.env[name] = value;
    }
  });
  afterEach(() => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });
}

beforeEach(() => {
  for (const mock of Object.values(MOCKS)) mock.reset();
  tables.clear();
  tables.install();
  ebMock.on(cmd(PutEventsCommand)).resolves({ FailedEntryCount: 0, Entries: [] });
  iotMock.on(cmd(AddThingToThingGroupCommand)).resolves({});
  s3Mock.on(cmd(PutObjectCommand)).resolves({ ETag: '"etag"' });
});

// ---------------------------------------------------------------------------------------------------------------

describe('sfn-record-inventory', () => {
  const recorder = () =>
    recordInventory.createHandler({ inventory: new DynamoInventory(clients().dynamodb, INVENTORY_TABLE) });

  /** As the EventBridge rule delivers it to the workflow, which passes it on as the task's payload. */
  const envelope = (detailType: string, detail: unknown) => ({
    version: '0',
    id: '6a7e8feb-b491-4cf7-a9f1-bf3703467718',
    'detail-type': detailType,
    source: 'certflow',
    account: '111122223333',
    time: '2026-05-01T10:00:00Z',
    region: 'us-east-1',
    resources: [],
    detail,
  });
  const ISSUER = 'b'.repeat(64);
  const certificates = [1, 2].map((n) => ({
    certificateId: id(n),
    serialNumber: `5c0${n}`,
    commonName: `acme-A${n}`,
    notBefore: '2026-05-01T09:59:00.000Z',
    notAfter: '2027-05-01T10:00:00.000Z',
  }));
  const issued = envelope('Certificate Issued', {
    issuerId: ISSUER,
    kind: 'device',
    origin: 'bulk',
    taskId: 'task-7',
    chunk: 0,
    supplierId: 'acme',
    certificates,
  });

  it('puts one item per certificate, each only if absent (attribute_not_exists(certificateId))', async () => {
    await expect(recorder()(issued)).resolves.toEqual({ recorded: 2, detailType: 'Certificate Issued' });

    expect(sequence()).toEqual(['DynamoDB.Put', 'DynamoDB.Put']);
    expect(dynamoInputs(PutCommand)).toEqual(
      certificates.map((c) => ({
        TableName: INVENTORY_TABLE,
        Item: {
          certificateId: c.certificateId,
          kind: 'device',
          commonName: c.commonName,
          issuerId: ISSUER,
          serialNumber: c.serialNumber,
          notBefore: c.notBefore,
          notAfter: c.notAfter,
          status: 'active',
          issuedAt: '2026-05-01T10:00:00Z',
          origin: 'bulk',
          batchId: 'task-7',
          supplierId: 'acme',
          issuedKey: `2026-05-01T10:00:00.000Z#${c.certificateId}`,
          expiryBucket: `exp#${c.certificateId[0]}`,
          expiryKey: `${c.notAfter}#${c.certificateId}`,
        },
        ConditionExpression: 'attribute_not_exists(certificateId)',
      })),
    );
  });

  it('swallows the ConditionalCheckFailed of a replayed event and changes nothing (a revocation stays)', async () => {
    await recorder()(issued);
    table(INVENTORY_TABLE).rows.get(id(1))!.status = 'revoked';
    docMock.resetHistory();

    await expect(recorder()(issued)).resolves.toEqual({ recorded: 2, detailType: 'Certificate Issued' });

    expect(sequence()).toEqual(['DynamoDB.Put', 'DynamoDB.Put']); // both refused by their condition
    expect(stored(id(1))).toMatchObject({ status: 'revoked' });
    expect(stored(id(2))).toMatchObject({ status: 'active' });
  });

  it('records a root as its own issuer', async () => {
    const root = certificates[0]!;
    const event = envelope('Certificate Issued', {
      issuerId: root.certificateId,
      kind: 'root',
      origin: 'api',
      certificates: [root],
    });
    await recorder()(event);
    expect(dynamoInputs(PutCommand)[0]?.Item).toMatchObject({
      certificateId: root.certificateId,
      kind: 'root',
      issuerId: root.certificateId,
      origin: 'api',
    });
  });

  it('lets a throttling error through with its name, for the workflow to retry', async () => {
    const throttled = Object.assign(new Error('Rate exceeded'), {
      name: 'ProvisionedThroughputExceededException',
      $metadata: { httpStatusCode: 400 },
    });
    docMock.on(cmd(PutCommand)).rejects(throttled);
    await expect(recorder()(issued)).rejects.toMatchObject({ name: 'ProvisionedThroughputExceededException' });
  });

  it('marks a certificate revoked once on Certificate Revoked (conditional UpdateItem); a replay records nothing', async () => {
    seedInventory(record(3, { issuerId: ISSUER }));
    const revoked = envelope('Certificate Revoked', {
      certificateId: id(3),
      serialNumber: '5c000003',
      issuerId: ISSUER,
      kind: 'device',
      reason: 'keyCompromise',
      revokedAt: '2026-05-02T08:00:00.000Z',
      thingName: 'thing-3',
    });

    await expect(recorder()(revoked)).resolves.toEqual({ recorded: 1, detailType: 'Certificate Revoked' });

    expect(sequence()).toEqual(['DynamoDB.Update']);
    expect(dynamoInputs(UpdateCommand)).toEqual([
      {
        TableName: INVENTORY_TABLE,
        Key: { certificateId: id(3) },
        UpdateExpression: REVOKE_UPDATE,
        ConditionExpression: 'attribute_exists(certificateId) AND #status <> :revoked',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: {
          ':revoked': 'revoked',
          ':at': '2026-05-02T08:00:00.000Z',
          ':reason': 'keyCompromise',
        },
      },
    ]);
    expect(stored(id(3))).toMatchObject({ status: 'revoked', revocationReason: 'keyCompromise' });

    docMock.resetHistory();
    await expect(recorder()(revoked)).resolves.toEqual({ recorded: 0, detailType: 'Certificate Revoked' });
    expect(sequence()).toEqual(['DynamoDB.Update', 'DynamoDB.Get']);
    expect(dynamoInputs(GetCommand)).toEqual([
      { TableName: INVENTORY_TABLE, Key: { certificateId: id(3) }, ConsistentRead: true },
    ]);
  });

  it("records exactly the Certificate Issued details that the event's schema accepts (the fast check and zod agree)", async () => {
    const detail = issued.detail as Record<string, unknown>;
    const cert = certificates[0]!;
    const withCert = (c: unknown) => ({ ...detail, certificates: [c, certificates[1]] });
    const variants: [string, unknown][] = [
      ['as sent', detail],
      ['no optional fields', { issuerId: ISSUER, kind: 'root', origin: 'api', certificates }],
      ['an optional field undefined', { ...detail, thingName: undefined }],
      ['an unknown field', { ...detail, extra: 1 }],
      ['no issuerId', { ...detail, issuerId: undefined }],
      ['a kind outside the enum', { ...detail, kind: 'leaf' }],
      ['an origin outside the enum', { ...detail, origin: 'import' }],
      ['a fractional chunk', { ...detail, chunk: 1.5 }],
      ['a chunk as text', { ...detail, chunk: '0' }],
      ['a taskId that is a number', { ...detail, taskId: 7 }],
      ['no certificates', { ...detail, certificates: [] }],
      ['certificates that are not a list', { ...detail, certificates: {} }],
      ['a certificate with an unknown field', withCert({ ...cert, extra: 'x' })],
      ['a certificate without its common name', withCert({ ...cert, commonName: undefined })],
      ['an upper-case certificate id', withCert({ ...cert, certificateId: cert.certificateId.toUpperCase() })],
      ['a short certificate id', withCert({ ...cert, certificateId: cert.certificateId.slice(1) })],
      ['a serial that is not hex', withCert({ ...cert, serialNumber: 'xyz' })],
      ['an empty serial', withCert({ ...cert, serialNumber: '' })],
      ['a notAfter that is a number', withCert({ ...cert, notAfter: 1 })],
      ['a certificate that is null', withCert(null)],
      ['a detail that is a list', [detail]],
      ['a detail without a prototype', Object.assign(Object.create(null) as object, detail)],
    ];
    for (const [name, variant] of variants) {
      const accepted = CertificateIssuedDetail.safeParse(variant).success;
      const outcome = await recorder()(envelope('Certificate Issued', variant)).then(
        () => 'recorded',
        () => 'refused',
      );
      expect([name, outcome]).toEqual([name, accepted ? 'recorded' : 'refused']);
    }
  });

  it('refuses an event that is not an inventory event (INVALID_EVENT) without writing', async () => {
    const error = await recorder()(envelope('Batch Completed', {})).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect(error).toMatchObject({ code: 'INVALID_EVENT' });
    expect(sequence()).toEqual([]);
  });

  describe('Lambda handler', () => {
    withEnvironment({ INVENTORY_TABLE_NAME: 'prod-inventory', AWS_REGION: 'us-east-1' });

    it('builds its inventory from INVENTORY_TABLE_NAME alone', async () => {
      KEY_ATTRIBUTE['prod-inventory'] = 'certificateId';
      try {
        await expect(recordInventory.handler(issued, context)).resolves.toEqual({
          recorded: 2,
          detailType: 'Certificate Issued',
        });
        expect(dynamoInputs(PutCommand).map((p) => p.TableName)).toEqual(['prod-inventory', 'prod-inventory']);
      } finally {
        delete KEY_ATTRIBUTE['prod-inventory'];
      }
    });
  });
});

describe('sfn-expiry-sweep', () => {
  const sweep = () =>
    expirySweep.createHandler(
      {
        inventory: new DynamoInventory(clients().dynamodb, INVENTORY_TABLE),
        events: new EventBridgePublisher(clients().eventBridge, BUS),
        clock: fixedClock,
      },
      30,
    );
  const BEFORE = at(30);

  /** One query per shard of byExpiry, active certificates whose expiryKey is before the window's end. */
  const shardQuery = (shard: string) => ({
    TableName: INVENTORY_TABLE,
    IndexName: 'byExpiry',
    KeyConditionExpression: 'expiryBucket = :bucket AND expiryKey < :before',
    ExpressionAttributeValues: { ':bucket': `exp#${shard}`, ':before': BEFORE, ':status': 'active' },
    FilterExpression: '#status = :status',
    ExpressionAttributeNames: { '#status': 'status' },
    Limit: 100,
  });

  const expiring = record(0, { certificateId: idInShard('a', 1), notAfter: at(10), issuerId: 'c'.repeat(64) });
  const expired = record(0, { certificateId: idInShard('3', 2), notAfter: at(-1) });
  const revoked = record(0, { certificateId: idInShard('5', 3), notAfter: at(5), status: 'revoked' });
  const later = record(0, { certificateId: idInShard('7', 4), notAfter: at(40) });
  const notified = record(0, { certificateId: idInShard('a', 5), notAfter: at(20), thingName: undefined });

  beforeEach(() => {
    seedInventory(expiring, expired, revoked, later, notified);
    table(INVENTORY_TABLE).rows.get(notified.certificateId)!.expiringNotified = new Set(['30d']);
  });

  it('queries the 16 expiry shards, marks each expiring certificate notified once, sends Certificate Expiring once', async () => {
    const result = await sweep()({});

    expect(result).toEqual({ windowDays: 30, asOf: ASOF, examined: 3, notified: 1, nextToken: null, done: true });
    expect(dynamoInputs(QueryCommand)).toEqual(EXPIRY_SHARDS.map(shardQuery));
    expect(dynamoInputs(UpdateCommand)).toEqual(
      [expiring, notified].map((r) => ({
        TableName: INVENTORY_TABLE,
        Key: { certificateId: r.certificateId },
        UpdateExpression: NOTIFY_UPDATE,
        ConditionExpression: NOTIFY_CONDITION,
        ExpressionAttributeValues: { ':window': '30d', ':windows': new Set(['30d']) },
      })),
    ); // the expired one is not "expiring"; the second was notified for this window before
    expect(events()).toEqual([
      {
        entry: {
          Source: 'certflow',
          DetailType: 'Certificate Expiring',
          Detail: expect.any(String),
          EventBusName: BUS,
        },
        detail: {
          certificateId: expiring.certificateId,
          serialNumber: expiring.serialNumber,
          issuerId: expiring.issuerId,
          kind: 'device',
          commonName: expiring.commonName,
          notAfter: expiring.notAfter,
          windowDays: 30,
          thingName: expiring.thingName,
        },
      },
    ]);
    expect(sequence()).toEqual([
      ...EXPIRY_SHARDS.map(() => 'DynamoDB.Query'),
      'DynamoDB.Update',
      'DynamoDB.Update', // ConditionalCheckFailed: notified before
      'EventBridge.PutEvents',
    ]);
    expect(stored(expiring.certificateId)).toMatchObject({ expiringNotified: new Set(['30d']) });
  });

  it('sends nothing the second time the same window is swept', async () => {
    await sweep()({});
    for (const mock of Object.values(MOCKS)) mock.resetHistory();

    const result = await sweep()({ windowDays: 30, asOf: ASOF });

    expect(result).toMatchObject({ examined: 3, notified: 0, nextToken: null, done: true });
    expect(ebMock).not.toHaveReceivedCommand(cmd(PutEventsCommand));
  });

  it('slices: 2,000 certificates per call, then a token that the next call resumes from, done with a null token', async () => {
    tables.clear();
    const many = Array.from({ length: 2001 }, (_, n) => record(100 + n, { notAfter: at(1 + (n % 28)) }));
    seedInventory(...many);

    const first = await sweep()({ windowDays: 30 });

    expect(first).toEqual({
      windowDays: 30,
      asOf: ASOF,
      examined: 2000,
      notified: 2000,
      nextToken: expect.stringMatching(/^[A-Za-z0-9_-]+$/),
      done: false,
    });
    expect(events()).toHaveLength(2000);
    for (const mock of Object.values(MOCKS)) mock.resetHistory();

    // what the workflow's ResultSelector hands to the next iteration
    const second = await sweep()({ windowDays: 30, asOf: first.asOf, nextToken: first.nextToken, done: false });

    expect(second).toEqual({ windowDays: 30, asOf: ASOF, examined: 1, notified: 1, nextToken: null, done: true });
    // soonest first: the second slice holds the certificate that expires last
    const expiryKey = (r: InventoryRecord) => `${r.notAfter}#${r.certificateId}`;
    const last = [...many].sort((a, b) => expiryKey(a).localeCompare(expiryKey(b))).at(-1)!;
    expect(events().map((e) => e.detail.certificateId)).toEqual([last.certificateId]);
    expect(many.every((r) => (stored(r.certificateId)?.expiringNotified as Set<string>).has('30d'))).toBe(true);
  });

  // Regression: `expiringNotified` once held only the last window, so a 7-day sweep re-armed the 30-day notice.
  it('sends the 30-day notice once even when a 7-day sweep ran in between', async () => {
    const urgent = record(0, { certificateId: idInShard('c', 6), notAfter: at(3) });
    seedInventory(urgent);
    await sweep()({ windowDays: 30 });
    await sweep()({ windowDays: 7 });
    expect(stored(urgent.certificateId)).toMatchObject({ expiringNotified: new Set(['30d', '7d']) });
    for (const mock of Object.values(MOCKS)) mock.resetHistory();

    await sweep()({ windowDays: 30 });

    expect(events()).toEqual([]);
  });

  it('refuses a window outside 1 … 3650 days without querying', async () => {
    await expect(sweep()({ windowDays: 0 })).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    expect(sequence()).toEqual([]);
  });

  describe('Lambda handler', () => {
    withEnvironment({
      INVENTORY_TABLE_NAME: 'prod-inventory',
      EVENT_BUS_NAME: 'prod-bus',
      EXPIRY_WINDOW_DAYS: '14',
      AWS_REGION: 'us-east-1',
    });

    it('builds its inventory, publisher and window from the environment alone', async () => {
      KEY_ATTRIBUTE['prod-inventory'] = 'certificateId';
      try {
        const soon = record(7, { notAfter: new Date(Date.now() + 3 * DAY).toISOString() });
        table('prod-inventory').rows.set(soon.certificateId, inventoryItem(soon));

        const result = await expirySweep.handler({}, context);

        expect(result).toMatchObject({ windowDays: 14, examined: 1, notified: 1, nextToken: null, done: true });
        expect(new Set(dynamoInputs(QueryCommand).map((q) => q.TableName))).toEqual(new Set(['prod-inventory']));
        expect(dynamoInputs(UpdateCommand)[0]?.ExpressionAttributeValues).toEqual({
          ':window': '14d',
          ':windows': new Set(['14d']),
        });
        expect(events().map((e) => [e.entry.EventBusName, e.detail.windowDays])).toEqual([['prod-bus', 14]]);
      } finally {
        delete KEY_ATTRIBUTE['prod-inventory'];
      }
    });
  });
});

describe('sfn-revoke-issued', () => {
  let ROOT: CreatedCa;
  let INT: CreatedCa;
  let caId: string;
  const REVOKED_AT = '2026-06-01T08:00:00.000Z';

  const env = readEnv(CaEnv, {
    INVENTORY_TABLE_NAME: INVENTORY_TABLE,
    CA_TABLE_NAME: CA_TABLE,
    BUCKET_NAME: BUCKET,
    EVENT_BUS_NAME: BUS,
    ROTATION_THING_GROUP: ROTATION_GROUP,
  });
  /** AWS deps with a slice of 2 certificates (the default is 2,000). */
  const revoke = () => revokeIssued.createHandler({ ...awsCaDeps(env, clients()), revokeSliceSize: 2 });

  beforeAll(async () => {
    const now = new Date();
    ROOT = await createRootCa({ subject: { commonName: 'Acme Root CA' }, validity: { days: 3650 }, now });
    INT = await createIntermediateCa(ROOT.issuer, {
      subject: { commonName: 'Acme Devices CA' },
      validity: { days: 1825 },
      now,
    });
    caId = INT.certificate.id;
  });

  /** The CA's key, certificate and chain in SSM (the CA is revoked: the workflow runs after POST /cas/{id}/revoke). */
  function seedCa(tableName = CA_TABLE): void {
    const parameters: Record<string, string> = {
      [`cdf-ca-key-${caId}`]: privateKeyToPem(INT.privateKey),
      [`cdf-ca-cert-${caId}`]: INT.certificate.pem,
      [`cdf-ca-chain-${caId}`]: ROOT.certificate.pem,
    };
    ssmMock.on(cmd(GetParameterCommand)).callsFake(async (input: { Name?: string }) => {
      const value = parameters[input.Name ?? ''];
      if (value === undefined) throw new ParameterNotFound({ message: 'parameter not found', $metadata: {} });
      return { Parameter: { Name: input.Name, Value: value } };
    });
    table(tableName).rows.set(caId, { caId, kind: 'intermediate', status: 'revoked', crlNumber: 4 });
  }

  const devices = () => [1, 2, 3].map((n) => record(n, { issuerId: caId }));

  beforeEach(() => {
    seedCa();
    seedInventory(
      ...devices(),
      record(9, { issuerId: caId, status: 'revoked', revokedAt: '2026-05-01T00:00:00.000Z' }),
    );
  });

  it('revokes one slice and returns a token while more remain (done: false, no CRL yet)', async () => {
    const result = await revoke()({ caId, revokedAt: REVOKED_AT, nextToken: null });

    expect(result).toEqual({
      caId,
      revokedAt: REVOKED_AT,
      revoked: 2,
      thingsToRotate: 2,
      nextToken: expect.stringMatching(/^[A-Za-z0-9_-]+$/),
      done: false,
    });
    expect(sequence()).toEqual([
      'DynamoDB.Query',
      'DynamoDB.Update',
      'DynamoDB.Update',
      'EventBridge.PutEvents ×2',
      'IoT.AddThingToThingGroup',
      'IoT.AddThingToThingGroup',
    ]);
    expect(dynamoInputs(QueryCommand)).toEqual([
      {
        TableName: INVENTORY_TABLE,
        IndexName: 'byIssuer',
        KeyConditionExpression: 'issuerId = :issuerId',
        ExpressionAttributeValues: { ':issuerId': caId, ':status': 'active' },
        FilterExpression: '#status = :status',
        ExpressionAttributeNames: { '#status': 'status' },
        Limit: 100,
      },
    ]);
    expect(dynamoInputs(UpdateCommand)).toEqual(
      devices()
        .slice(0, 2)
        .map((d) => ({
          TableName: INVENTORY_TABLE,
          Key: { certificateId: d.certificateId },
          UpdateExpression: REVOKE_UPDATE,
          ConditionExpression: 'attribute_exists(certificateId) AND #status <> :revoked',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':revoked': 'revoked', ':at': REVOKED_AT, ':reason': 'cACompromise' },
        })),
    );
    expect(events().map((e) => e.detail)).toEqual(
      devices()
        .slice(0, 2)
        .map((d) => ({
          certificateId: d.certificateId,
          serialNumber: d.serialNumber,
          issuerId: caId,
          kind: 'device',
          reason: 'cACompromise',
          revokedAt: REVOKED_AT,
          thingName: d.thingName,
        })),
    );
    expect(iotMock.commandCalls(cmd(AddThingToThingGroupCommand)).map((c) => c.args[0].input)).toEqual([
      { thingGroupName: ROTATION_GROUP, thingName: 'thing-1' },
      { thingGroupName: ROTATION_GROUP, thingName: 'thing-2' },
    ]);
    expect(s3Mock).not.toHaveReceivedCommand(cmd(PutObjectCommand));
  });

  it('resumes from the token and, on the last slice, publishes the CA’s CRL listing every revoked certificate', async () => {
    const first = await revoke()({ caId, revokedAt: REVOKED_AT, nextToken: null });
    for (const mock of Object.values(MOCKS)) mock.resetHistory();

    // what the workflow's ResultSelector hands to the next iteration
    const result = await revoke()({ caId, revokedAt: REVOKED_AT, nextToken: first.nextToken, done: false });

    expect(result).toEqual({
      caId,
      revokedAt: REVOKED_AT,
      revoked: 1,
      thingsToRotate: 1,
      nextToken: null,
      done: true,
      crlNumber: 5,
    });
    expect(sequence()).toEqual([
      'DynamoDB.Query',
      'DynamoDB.Update',
      'EventBridge.PutEvents',
      'IoT.AddThingToThingGroup',
      'SSM.GetParameter',
      'SSM.GetParameter',
      'SSM.GetParameter',
      'DynamoDB.Query',
      'DynamoDB.Update',
      'S3.PutObject',
      'S3.PutObject',
    ]);
    const second = devices()[1]!;
    expect(dynamoInputs(QueryCommand)[0]?.ExclusiveStartKey).toEqual({
      certificateId: second.certificateId,
      issuerId: caId,
      issuedKey: `${second.issuedAt}#${second.certificateId}`,
    });
    expect(dynamoInputs(UpdateCommand)[1]).toEqual({
      TableName: CA_TABLE,
      Key: { caId },
      UpdateExpression: 'ADD crlNumber :one',
      ConditionExpression: 'attribute_exists(caId)',
      ExpressionAttributeValues: { ':one': 1 },
      ReturnValues: 'UPDATED_NEW',
    });
    const [der, pem] = s3Mock.commandCalls(cmd(PutObjectCommand)).map((c) => c.args[0].input);
    expect(der).toEqual({
      Bucket: BUCKET,
      Key: `crls/${caId}.crl`,
      Body: expect.any(Buffer),
      ContentType: 'application/pkix-crl',
    });
    expect(pem).toEqual({
      Bucket: BUCKET,
      Key: `crls/${caId}.crl.pem`,
      Body: expect.stringMatching(/^-----BEGIN X509 CRL-----\n/),
      ContentType: 'application/x-pem-file',
    });
    const crl = new x509.X509Crl(der!.Body as Buffer);
    expect(
      await crl.verify({ publicKey: await new x509.X509Certificate(INT.certificate.pem).publicKey.export() }),
    ).toBe(true);
    expect(crl.entries.map((e) => e.serialNumber.toLowerCase()).sort()).toEqual(
      [...devices(), record(9)].map((d) => d.serialNumber).sort(),
    );
  });

  it('refuses an input without a certflow CA id', async () => {
    await expect(revoke()({ caId: 'acme', revokedAt: REVOKED_AT })).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    expect(sequence()).toEqual([]);
  });

  describe('Lambda handler', () => {
    withEnvironment({
      INVENTORY_TABLE_NAME: 'prod-inventory',
      CA_TABLE_NAME: 'prod-cas',
      BUCKET_NAME: 'prod-bucket',
      EVENT_BUS_NAME: 'prod-bus',
      AWS_REGION: 'us-east-1',
    });

    it('builds its CA deps from CaEnv alone (default rotation group cdfRotateCertificates)', async () => {
      KEY_ATTRIBUTE['prod-inventory'] = 'certificateId';
      KEY_ATTRIBUTE['prod-cas'] = 'caId';
      try {
        seedCa('prod-cas');
        const device = record(4, { issuerId: caId });
        table('prod-inventory').rows.set(device.certificateId, inventoryItem(device));

        const result = await revokeIssued.handler({ caId, revokedAt: REVOKED_AT }, context);

        expect(result).toMatchObject({ revoked: 1, thingsToRotate: 1, nextToken: null, done: true, crlNumber: 5 });
        expect(new Set(docMock.calls().map((c) => (c.args[0].input as { TableName?: string }).TableName))).toEqual(
          new Set(['prod-inventory', 'prod-cas']),
        );
        expect(events().map((e) => e.entry.EventBusName)).toEqual(['prod-bus']);
        expect(iotMock.commandCalls(cmd(AddThingToThingGroupCommand)).map((c) => c.args[0].input)).toEqual([
          { thingGroupName: 'cdfRotateCertificates', thingName: 'thing-4' },
        ]);
        expect(s3Mock.commandCalls(cmd(PutObjectCommand)).map((c) => c.args[0].input.Bucket)).toEqual([
          'prod-bucket',
          'prod-bucket',
        ]);
      } finally {
        delete KEY_ATTRIBUTE['prod-inventory'];
        delete KEY_ATTRIBUTE['prod-cas'];
      }
    });
  });
});
