/**
 * The CA hierarchy routes of the REST API Lambda (api-bulk-certificates serves bulk issuance and the CA routes) on
 * AWS deps built by awsBatchDeps + awsCaDeps from real SDK clients whose `send` is mocked: the exact SSM, DynamoDB,
 * S3, EventBridge and AWS IoT commands and inputs behind each response, and their order.
 *
 * The mocks keep state so that a request reads back what it wrote (a new CA is loaded from the parameters its
 * creation put): SSM parameters, the S3 bucket and the CA and inventory tables are in memory behind the mocks. The
 * DynamoDB fake knows only the expressions the adapters send and throws on any other, so a changed expression fails
 * here as well as in the input assertions.
 */
import 'aws-sdk-client-mock-jest';
import { createHash, createPrivateKey, createPublicKey, randomUUID, X509Certificate } from 'node:crypto';
import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { AddThingToThingGroupCommand, IoTClient } from '@aws-sdk/client-iot';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import {
  GetParameterCommand,
  ParameterAlreadyExists,
  ParameterNotFound,
  PutParameterCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyResult, Context } from 'aws-lambda';
import { awsBatchDeps } from '../../lambdas/adapters/aws/bulk-deps';
import { awsCaDeps } from '../../lambdas/adapters/aws/ca-deps';
import { inventoryItem } from '../../lambdas/adapters/aws/dynamo-inventory';
import {
  buildCrl,
  buildCsr,
  type CreatedCa,
  createIntermediateCa,
  createRootCa,
  encodeName,
  generateDeviceKey,
  issueLeaf,
  parseCertificate,
  privateKeyToPem,
  spkiDer,
  toPem,
} from '../../lambdas/core/pki';
import { x509 } from '../../lambdas/core/pki/setup';
import type { Clock, InventoryRecord } from '../../lambdas/core/ports';
import { createCaRoutes } from '../../lambdas/handlers/api-cas';
import { createHandler, handler } from '../../lambdas/handlers/api-bulk-certificates';
import { ApiEnv, readEnv } from '../../lambdas/handlers/env';
import { type ApiEventOptions, apiEvent as apiGatewayEvent } from './api-events';
import { testClients, US_EAST_1_CONFIG } from './aws-clients';
import { BY_ISSUER, CRL_NUMBER_UPDATE, FakeTables, type Item, REVOKE, REVOKE_UPDATE } from './dynamo-fake';
import { installBucket, type StoredObject } from './s3-fake';
import { callSequence, cmd, sentEvents, type CommandClass, type InputOf, mockSdk } from './sdk-mock';

const TASK_TABLE = 'certflow-tasks';
const CA_TABLE = 'certflow-cas';
const INVENTORY_TABLE = 'certflow-inventory';
const BUCKET = 'certflow-objects';
const BUS = 'certflow-bus';
const KMS_KEY = 'arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const ROTATION_GROUP = 'acme-rotate-certificates';
const STATE_MACHINE = 'arn:aws:states:us-east-1:111122223333:stateMachine:certflow-bulk-issuance';
const HEX64 = /^[0-9a-f]{64}$/;

const ssmMock = mockSdk(SSMClient);
const docMock = mockSdk(DynamoDBDocumentClient);
const s3Mock = mockSdk(S3Client);
const ebMock = mockSdk(EventBridgeClient);
const iotMock = mockSdk(IoTClient);
const sfnMock = mockSdk(SFNClient);
const MOCKS = { SSM: ssmMock, DynamoDB: docMock, S3: s3Mock, EventBridge: ebMock, IoT: iotMock, SFN: sfnMock };

const clients = () => testClients(US_EAST_1_CONFIG);

/** What the stack sets on the API function (ApiEnv = bulk API + CA hierarchy). */
const API_VARIABLES = {
  TASK_TABLE_NAME: TASK_TABLE,
  BUCKET_NAME: BUCKET,
  EVENT_BUS_NAME: BUS,
  BULK_STATE_MACHINE_ARN: STATE_MACHINE,
  REVOKE_ISSUED_STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:111122223333:stateMachine:certflow-revoke-issued',
  INVENTORY_TABLE_NAME: INVENTORY_TABLE,
  CA_TABLE_NAME: CA_TABLE,
  CA_KEY_KMS_KEY_ID: KMS_KEY,
  ROTATION_THING_GROUP: ROTATION_GROUP,
  CRL_VALIDITY_HOURS: '12',
};
const env = readEnv(ApiEnv, API_VARIABLES);

/** A fresh Lambda container: the handler as the module builds it, with these clients (no cache between tests). */
function api(apiEnv: ApiEnv = env, clock?: Clock) {
  const c = clients();
  const caDeps = awsCaDeps(apiEnv, c);
  return createHandler(awsBatchDeps(apiEnv, c, {}), undefined, [createCaRoutes(clock ? { ...caDeps, clock } : caDeps)]);
}

const DAY = 86_400_000;
/** A fake clock: `ms` after the test CAs were made (beforeAll), whatever time the run takes. */
const at = (ms: number): Clock => ({ now: () => new Date(caTime.getTime() + ms) });

// ---------------------------------------------------------------------------------------------------------------
// State behind the mocks

const parameters = new Map<string, { value: string; type: string; keyId?: string }>();
const bucket = new Map<string, StoredObject>();
/** The CA, inventory and task tables: the CA routes query byIssuer, scan the CAs, count CRLs and revoke. */
const tables = new FakeTables(docMock, {
  keys: { [CA_TABLE]: 'caId', [INVENTORY_TABLE]: 'certificateId', [TASK_TABLE]: 'pk' },
  indexes: BY_ISSUER,
  updates: [CRL_NUMBER_UPDATE, REVOKE],
  scan: true,
});
const table = (name: string) => tables.table(name);
const KEY_ATTRIBUTE = tables.keys;

interface ParameterInput {
  Name?: string;
  Value?: string;
  Type?: string;
  Overwrite?: boolean;
  KeyId?: string;
  WithDecryption?: boolean;
}

function installSsm(): void {
  ssmMock.on(cmd(PutParameterCommand)).callsFake(async (input: ParameterInput) => {
    if (parameters.has(input.Name!) && !input.Overwrite) {
      throw new ParameterAlreadyExists({ message: 'The parameter already exists.', $metadata: {} });
    }
    parameters.set(input.Name!, {
      value: input.Value!,
      type: input.Type!,
      ...(input.KeyId !== undefined ? { keyId: input.KeyId } : {}),
    });
    return { Version: 1, Tier: 'Standard' };
  });
  ssmMock.on(cmd(GetParameterCommand)).callsFake(async (input: ParameterInput) => {
    const parameter = parameters.get(input.Name!);
    if (!parameter) throw new ParameterNotFound({ message: 'parameter not found', $metadata: {} });
    // as SSM does: a SecureString read without decryption is its ciphertext
    const value = parameter.type === 'SecureString' && !input.WithDecryption ? 'AQICAHh…ciphertext' : parameter.value;
    return { Parameter: { Name: input.Name, Type: parameter.type, Value: value } };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Call log: every SDK call in order, labelled with what it touched (ids by alias)

const aliases = new Map<string, string>();
const alias = (text: string): string => text.replace(/[0-9a-f]{64}/g, (id) => aliases.get(id) ?? '{id}');

function label(service: string, operation: string, input: Record<string, unknown>): string {
  switch (service) {
    case 'SSM':
      return `SSM.${operation} ${alias(String(input.Name))}`;
    case 'DynamoDB':
      return `DynamoDB.${operation} ${String(input.TableName ?? Object.keys((input.RequestItems as object | undefined) ?? {}).join(', '))}`;
    case 'S3':
      return `S3.${operation} ${alias(String(input.Key))}`;
    case 'EventBridge': {
      const entries = (input.Entries ?? []) as PutEventsRequestEntry[];
      const types = [...new Set(entries.map((e) => e.DetailType))].join(', ');
      return `EventBridge.${operation} ${types}${entries.length > 1 ? ` ×${entries.length}` : ''}`;
    }
    case 'IoT':
      return `IoT.${operation} ${String(input.thingName)}`;
    default:
      return `${service}.${operation}`;
  }
}

const sequence = (): string[] => callSequence(MOCKS, label);

const ssmPuts = () => ssmMock.commandCalls(cmd(PutParameterCommand)).map((c) => c.args[0].input);
const ssmGets = () => ssmMock.commandCalls(cmd(GetParameterCommand)).map((c) => c.args[0].input);
const s3Puts = () => s3Mock.commandCalls(cmd(PutObjectCommand)).map((c) => c.args[0].input);
/** The inputs of one DynamoDB command on one table, in order. */
const dynamoInputs = <C extends CommandClass>(command: C, tableName: string): InputOf<C>[] =>
  docMock
    .commandCalls(cmd(command))
    .map((c) => c.args[0].input)
    .filter((i) => (i as { TableName?: string }).TableName === tableName);

const events = () => sentEvents(ebMock);

// ---------------------------------------------------------------------------------------------------------------
// API Gateway events

/** An API Gateway event; a body goes with `content-type: application/json`. */
const apiEvent = (method: string, resource: string, path: string, options: ApiEventOptions = {}) =>
  apiGatewayEvent(
    method,
    resource,
    path,
    options.body === undefined
      ? options
      : { ...options, headers: { 'content-type': 'application/json', ...options.headers } },
  );

const postIntermediate = (caId: string, body: unknown) =>
  apiEvent('POST', '/cas/{caId}/intermediates', `/cas/${caId}/intermediates`, { pathParameters: { caId }, body });
const revokeCertificateEvent = (certificateId: string, body: unknown = {}) =>
  // API Gateway allows one variable name per level: under /certificates it is CDF's {taskId}
  apiEvent('POST', '/certificates/{taskId}/revoke', `/certificates/${certificateId}/revoke`, {
    pathParameters: { taskId: certificateId },
    body,
  });
const revokeCaEvent = (caId: string, body: unknown = {}) =>
  apiEvent('POST', '/cas/{caId}/revoke', `/cas/${caId}/revoke`, { pathParameters: { caId }, body });
const getCertificateEvent = (taskId: string) =>
  apiEvent('GET', '/certificates/{taskId}', `/certificates/${taskId}`, { pathParameters: { taskId } });
const getCrlEvent = (caId: string, headers: Record<string, string> = {}) =>
  apiEvent('GET', '/cas/{caId}/crl', `/cas/${caId}/crl`, { pathParameters: { caId }, headers });

const bodyOf = (result: APIGatewayProxyResult): Record<string, unknown> =>
  JSON.parse(result.body) as Record<string, unknown>;

// ---------------------------------------------------------------------------------------------------------------
// The existing hierarchy: a root and an intermediate that may sign one more level (pathLength 1)

let ROOT: CreatedCa;
let INT: CreatedCa;
let rootId: string;
let intId: string;
/** when ROOT (10 years) and INT (5 years, the intermediate default) were made */
let caTime: Date;

const caItem = (ca: CreatedCa, kind: 'root' | 'intermediate', createdAt: string, fields: Item = {}): Item => ({
  caId: ca.certificate.id,
  kind,
  ...(kind === 'intermediate' ? { parentId: rootId } : {}),
  commonName: ca.certificate.commonName,
  subject: ca.certificate.subject,
  serialNumber: ca.certificate.serialNumber,
  keyType: 'ec-p256',
  status: 'active',
  notBefore: ca.certificate.notBefore.toISOString(),
  notAfter: ca.certificate.notAfter.toISOString(),
  ...(ca.certificate.pathLength !== undefined ? { pathLength: ca.certificate.pathLength } : {}),
  certificatePem: ca.certificate.pem,
  createdAt,
  crlNumber: 0,
  ...fields,
});

/** An inventory record as the inventory workflow writes it (serial numbers are hex); undefined fields are left out. */
const record = (n: number, fields: Partial<InventoryRecord> = {}): InventoryRecord =>
  Object.fromEntries(
    Object.entries({
      certificateId: createHash('sha256').update(`certificate-${n}`).digest('hex'),
      kind: 'device',
      commonName: `thing-${n}`,
      issuerId: intId,
      serialNumber: `4a0b${n.toString(16).padStart(4, '0')}`,
      notBefore: '2026-01-01T00:00:00.000Z',
      notAfter: '2027-01-01T00:00:00.000Z',
      status: 'active',
      issuedAt: new Date(Date.parse('2026-01-01T00:00:00.000Z') + n * 1000).toISOString(),
      origin: 'api',
      thingName: `thing-${n}`,
      ...fields,
    }).filter(([, value]) => value !== undefined),
  ) as unknown as InventoryRecord;

const seedInventory = (...records: InventoryRecord[]): void =>
  tables.put(INVENTORY_TABLE, ...records.map(inventoryItem));

const seedCa = (item: Item): void => tables.put(CA_TABLE, item);

function seedParameters(ca: CreatedCa, chainPem?: string): void {
  const id = ca.certificate.id;
  parameters.set(`cdf-ca-key-${id}`, { value: privateKeyToPem(ca.privateKey), type: 'SecureString', keyId: KMS_KEY });
  parameters.set(`cdf-ca-cert-${id}`, { value: ca.certificate.pem, type: 'String' });
  if (chainPem) parameters.set(`cdf-ca-chain-${id}`, { value: chainPem, type: 'String' });
}

/** The CRL the bucket holds for a CA, parsed and checked against the CA's key. */
async function storedCrl(ca: CreatedCa | { certificatePem: string }) {
  const pem = 'certificate' in ca ? ca.certificate.pem : ca.certificatePem;
  const id = parseCertificate(pem).id;
  const der = bucket.get(`crls/${id}.crl`)?.body;
  expect(der).toBeDefined();
  expect(bucket.get(`crls/${id}.crl.pem`)?.body.toString()).toBe(toPem('X509 CRL', der!));
  const crl = new x509.X509Crl(der!);
  const publicKey = await new x509.X509Certificate(pem).publicKey.export();
  expect(await crl.verify({ publicKey })).toBe(true);
  const number = crl.getExtension('2.5.29.20');
  return {
    crl,
    crlNumber: number ? Number.parseInt(Buffer.from(number.value).subarray(2).toString('hex'), 16) : undefined,
    serials: crl.entries.map((e) => e.serialNumber.toLowerCase().replace(/^0+/, '')).sort(),
  };
}

const noPrivateKey = (text: string | undefined) => expect(text ?? '').not.toMatch(/PRIVATE KEY/);

beforeAll(async () => {
  const now = new Date();
  caTime = now;
  ROOT = await createRootCa({
    subject: { commonName: 'Acme Root CA', organization: 'Acme' },
    validity: { days: 3650 },
    now,
  });
  INT = await createIntermediateCa(ROOT.issuer, {
    subject: { commonName: 'Acme Devices CA', organization: 'Acme' },
    // as long as a child CA's default: a child created later is capped at its end (the tests run on a fake clock)
    validity: { days: 1825 },
    now,
    pathLength: 1,
  });
  rootId = ROOT.certificate.id;
  intId = INT.certificate.id;
});

beforeEach(() => {
  for (const mock of Object.values(MOCKS)) mock.reset();
  parameters.clear();
  bucket.clear();
  tables.clear();
  aliases.clear();
  aliases.set(rootId, 'ROOT').set(intId, 'INT');
  tables.install();
  installSsm();
  installBucket(s3Mock, bucket);
  ebMock.on(cmd(PutEventsCommand)).resolves({ FailedEntryCount: 0, Entries: [] });
  iotMock.on(cmd(AddThingToThingGroupCommand)).resolves({});
  seedParameters(ROOT);
  seedParameters(INT, ROOT.certificate.pem);
  // the intermediate first: GET /cas sorts by createdAt
  seedCa(caItem(INT, 'intermediate', '2026-01-02T00:00:00.000Z'));
  seedCa(caItem(ROOT, 'root', '2026-01-01T00:00:00.000Z'));
});

// ---------------------------------------------------------------------------------------------------------------

describe('POST /cas/root', () => {
  const BODY = { subject: { commonName: 'Globex Root CA', organization: 'Globex' } };

  it('puts the certificate then the key (SecureString, CA key KMS key, no overwrite), registers the CA, announces it, publishes its first CRL', async () => {
    const result = await api()(apiEvent('POST', '/cas/root', '/cas/root', { body: BODY }));

    expect(result.statusCode).toBe(201);
    expect(result.headers).toEqual({ 'content-type': 'application/json' });
    noPrivateKey(result.body);
    const view = bodyOf(result);
    const caId = String(view.caId);
    expect(caId).toMatch(HEX64);
    aliases.set(caId, 'NEW');
    expect(sequence()).toEqual([
      'SSM.PutParameter cdf-ca-cert-NEW',
      'SSM.PutParameter cdf-ca-key-NEW',
      'DynamoDB.Put certflow-cas',
      'EventBridge.PutEvents CA Created',
      'S3.PutObject certificates/NEW.pem',
      'EventBridge.PutEvents Certificate Issued',
      // the CRL: the new CA is loaded from what was just put, its revoked certificates listed, a number drawn
      'SSM.GetParameter cdf-ca-key-NEW',
      'SSM.GetParameter cdf-ca-cert-NEW',
      'SSM.GetParameter cdf-ca-chain-NEW',
      'DynamoDB.Query certflow-inventory',
      'DynamoDB.Update certflow-cas',
      'S3.PutObject crls/NEW.crl',
      'S3.PutObject crls/NEW.crl.pem',
      'DynamoDB.Get certflow-cas',
    ]);

    const certificate = parseCertificate(String(view.certificatePem));
    expect(certificate.id).toBe(caId);
    expect(certificate.isCa).toBe(true);
    expect(certificate.subject).toBe('O=Globex, CN=Globex Root CA');
    expect(ssmPuts()).toEqual([
      {
        Name: `cdf-ca-cert-${caId}`,
        Value: certificate.pem,
        Type: 'String',
        Overwrite: true,
        Tier: 'Standard',
      },
      {
        Name: `cdf-ca-key-${caId}`,
        Value: expect.stringMatching(/^-----BEGIN PRIVATE KEY-----\n/),
        Type: 'SecureString',
        Overwrite: false,
        Tier: 'Standard',
        KeyId: KMS_KEY,
      },
    ]);
    const keyPem = String(ssmPuts()[1]!.Value);
    expect(spkiDer(createPublicKey(createPrivateKey(keyPem))).equals(certificate.spki)).toBe(true);
    expect(result.body).not.toContain(keyPem.split('\n')[1]);

    const item = {
      caId,
      kind: 'root',
      commonName: 'Globex Root CA',
      subject: 'O=Globex, CN=Globex Root CA',
      serialNumber: certificate.serialNumber,
      keyType: 'ec-p256',
      status: 'active',
      notBefore: certificate.notBefore.toISOString(),
      notAfter: certificate.notAfter.toISOString(),
      certificatePem: certificate.pem,
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      crlNumber: 0,
    };
    expect(dynamoInputs(PutCommand, CA_TABLE)).toEqual([
      { TableName: CA_TABLE, Item: item, ConditionExpression: 'attribute_not_exists(caId)' },
    ]);
    // 10 years by default
    expect(Math.round((certificate.notAfter.getTime() - certificate.notBefore.getTime()) / 86_400_000)).toBe(3650);

    expect(events().map((e) => e.entry)).toEqual([
      { Source: 'certflow', DetailType: 'CA Created', Detail: expect.any(String), EventBusName: BUS },
      { Source: 'certflow', DetailType: 'Certificate Issued', Detail: expect.any(String), EventBusName: BUS },
    ]);
    for (const e of events()) noPrivateKey(e.entry.Detail);
    expect(events().map((e) => e.detail)).toEqual([
      {
        caId,
        kind: 'root',
        commonName: 'Globex Root CA',
        serialNumber: certificate.serialNumber,
        keyType: 'ec-p256',
        notBefore: item.notBefore,
        notAfter: item.notAfter,
      },
      {
        issuerId: caId,
        kind: 'root',
        origin: 'api',
        certificates: [
          {
            certificateId: caId,
            serialNumber: certificate.serialNumber,
            commonName: 'Globex Root CA',
            notBefore: item.notBefore,
            notAfter: item.notAfter,
          },
        ],
      },
    ]);

    expect(s3Puts()).toEqual([
      { Bucket: BUCKET, Key: `certificates/${caId}.pem`, Body: certificate.pem, ContentType: 'application/x-pem-file' },
      { Bucket: BUCKET, Key: `crls/${caId}.crl`, Body: expect.any(Buffer), ContentType: 'application/pkix-crl' },
      {
        Bucket: BUCKET,
        Key: `crls/${caId}.crl.pem`,
        Body: expect.stringMatching(/^-----BEGIN X509 CRL-----\n/),
        ContentType: 'application/x-pem-file',
      },
    ]);
    expect(ssmGets()).toEqual([
      { Name: `cdf-ca-key-${caId}`, WithDecryption: true },
      { Name: `cdf-ca-cert-${caId}` },
      { Name: `cdf-ca-chain-${caId}` },
    ]);
    expect(dynamoInputs(QueryCommand, INVENTORY_TABLE)).toEqual([
      {
        TableName: INVENTORY_TABLE,
        IndexName: 'byIssuer',
        KeyConditionExpression: 'issuerId = :issuerId',
        ExpressionAttributeValues: { ':issuerId': caId, ':status': 'revoked' },
        FilterExpression: '#status = :status',
        ExpressionAttributeNames: { '#status': 'status' },
        Limit: 1001,
      },
    ]);
    expect(dynamoInputs(UpdateCommand, CA_TABLE)).toEqual([
      {
        TableName: CA_TABLE,
        Key: { caId },
        UpdateExpression: 'ADD crlNumber :one',
        ConditionExpression: 'attribute_exists(caId)',
        ExpressionAttributeValues: { ':one': 1 },
        ReturnValues: 'UPDATED_NEW',
      },
    ]);
    expect(dynamoInputs(GetCommand, CA_TABLE)).toEqual([{ TableName: CA_TABLE, Key: { caId }, ConsistentRead: true }]);

    const { crl, crlNumber, serials } = await storedCrl({ certificatePem: certificate.pem });
    expect(crlNumber).toBe(1);
    expect(serials).toEqual([]);
    expect(crl.issuer).toBe('O=Globex, CN=Globex Root CA');
    // CRL_VALIDITY_HOURS=12, thisUpdate one minute back
    expect(crl.nextUpdate!.getTime() - crl.thisUpdate.getTime()).toBe(12 * 3_600_000 + 60_000);

    expect(view).toEqual({ ...item, createdAt: expect.any(String), crlNumber: 1 });
  });

  it('leaves KeyId out (the account’s aws/ssm key) when CA_KEY_KMS_KEY_ID is not set', async () => {
    const variables: Record<string, string> = { ...API_VARIABLES };
    delete variables.CA_KEY_KMS_KEY_ID;
    const result = await api(readEnv(ApiEnv, variables))(apiEvent('POST', '/cas/root', '/cas/root', { body: BODY }));

    expect(result.statusCode).toBe(201);
    const keyPut = ssmPuts().find((p) => p.Type === 'SecureString');
    expect(keyPut).toEqual({
      Name: `cdf-ca-key-${String(bodyOf(result).caId)}`,
      Value: expect.any(String),
      Type: 'SecureString',
      Overwrite: false,
      Tier: 'Standard',
    });
  });

  it('answers 400 INVALID_REQUEST to a body without a subject, without calling AWS', async () => {
    const result = await api()(apiEvent('POST', '/cas/root', '/cas/root', { body: { keyType: 'ec-p256' } }));
    expect(result.statusCode).toBe(400);
    expect(bodyOf(result)).toMatchObject({ code: 'INVALID_REQUEST', details: { field: 'subject' } });
    expect(sequence()).toEqual([]);
  });
});

describe('POST /cas/{caId}/intermediates', () => {
  const BODY = { subject: { commonName: 'Acme Line 7 CA', organization: 'Acme' } };

  it('loads the parent’s key, certificate and chain, saves the child’s certificate, chain (the parent’s chain) and key', async () => {
    // a day after INT was made with the same 5-year default: the child's default ends with INT, not after it
    const result = await api(env, at(DAY))(postIntermediate(intId, BODY));

    expect(result.statusCode).toBe(201);
    noPrivateKey(result.body);
    const view = bodyOf(result);
    const caId = String(view.caId);
    aliases.set(caId, 'NEW');
    expect(sequence()).toEqual([
      'DynamoDB.Get certflow-cas', // the parent is active
      'SSM.GetParameter cdf-ca-key-INT',
      'SSM.GetParameter cdf-ca-cert-INT',
      'SSM.GetParameter cdf-ca-chain-INT',
      'SSM.PutParameter cdf-ca-cert-NEW',
      'SSM.PutParameter cdf-ca-chain-NEW',
      'SSM.PutParameter cdf-ca-key-NEW',
      'DynamoDB.Put certflow-cas',
      'EventBridge.PutEvents CA Created',
      'S3.PutObject certificates/NEW.pem',
      'EventBridge.PutEvents Certificate Issued',
      'SSM.GetParameter cdf-ca-key-NEW',
      'SSM.GetParameter cdf-ca-cert-NEW',
      'SSM.GetParameter cdf-ca-chain-NEW',
      'DynamoDB.Query certflow-inventory',
      'DynamoDB.Update certflow-cas',
      'S3.PutObject crls/NEW.crl',
      'S3.PutObject crls/NEW.crl.pem',
      'DynamoDB.Get certflow-cas',
    ]);
    expect(dynamoInputs(GetCommand, CA_TABLE)[0]).toEqual({
      TableName: CA_TABLE,
      Key: { caId: intId },
      ConsistentRead: true,
    });
    expect(ssmGets().slice(0, 3)).toEqual([
      { Name: `cdf-ca-key-${intId}`, WithDecryption: true },
      { Name: `cdf-ca-cert-${intId}` },
      { Name: `cdf-ca-chain-${intId}` },
    ]);

    const certificate = parseCertificate(String(view.certificatePem));
    expect(new X509Certificate(certificate.der).verify(createPublicKey(INT.privateKey))).toBe(true);
    expect(certificate.pathLength).toBe(0);
    expect(ssmPuts()).toEqual([
      { Name: `cdf-ca-cert-${caId}`, Value: certificate.pem, Type: 'String', Overwrite: true, Tier: 'Standard' },
      {
        Name: `cdf-ca-chain-${caId}`,
        Value: INT.certificate.pem + ROOT.certificate.pem,
        Type: 'String',
        Overwrite: true,
        Tier: 'Standard',
      },
      {
        Name: `cdf-ca-key-${caId}`,
        Value: expect.stringMatching(/^-----BEGIN PRIVATE KEY-----\n/),
        Type: 'SecureString',
        Overwrite: false,
        Tier: 'Standard',
        KeyId: KMS_KEY,
      },
    ]);
    expect(dynamoInputs(PutCommand, CA_TABLE)[0]?.Item).toMatchObject({
      caId,
      kind: 'intermediate',
      parentId: intId,
      pathLength: 0,
    });
    expect(events().map((e) => [e.entry.DetailType, e.detail.kind, e.detail.parentId ?? e.detail.issuerId])).toEqual([
      ['CA Created', 'intermediate', intId],
      ['Certificate Issued', 'intermediate', intId],
    ]);
    for (const e of events()) noPrivateKey(e.entry.Detail);
    // 5 years by default, capped at the parent's end (INT's 5 years began a day earlier)
    expect(certificate.notAfter).toEqual(INT.certificate.notAfter);
    // notBefore: the fake clock's now, backdated a minute (whole seconds)
    expect(certificate.notBefore.getTime()).toBe(Math.floor((caTime.getTime() + DAY - 60_000) / 1000) * 1000);
    expect(view).toMatchObject({ caId, kind: 'intermediate', parentId: intId, status: 'active', crlNumber: 1 });
    expect(view.notAfter).toBe(INT.certificate.notAfter.toISOString());
    expect((await storedCrl({ certificatePem: certificate.pem })).crlNumber).toBe(1);
  });

  it('defaults to exactly 5 years under a parent that lives longer (the root, 10 years)', async () => {
    const result = await api(env, at(DAY))(postIntermediate(rootId, BODY));

    expect(result.statusCode).toBe(201);
    const certificate = parseCertificate(String(bodyOf(result).certificatePem));
    expect(certificate.notAfter.getTime()).toBe(Math.floor((caTime.getTime() + DAY + 1825 * DAY) / 1000) * 1000);
    expect(certificate.notAfter.getTime()).toBeLessThan(ROOT.certificate.notAfter.getTime());
  });

  it('answers 400 VALIDITY_EXCEEDS_ISSUER to an explicit validityDays beyond the parent, and writes no key', async () => {
    const result = await api(env, at(DAY))(postIntermediate(intId, { ...BODY, validityDays: 1825 }));

    expect(result.statusCode).toBe(400);
    expect(bodyOf(result)).toMatchObject({ code: 'VALIDITY_EXCEEDS_ISSUER', details: { field: 'validity' } });
    expect(ssmMock).not.toHaveReceivedCommand(cmd(PutParameterCommand));
    expect(events()).toEqual([]);
  });

  it('answers 409 ISSUER_REVOKED under a revoked parent, before reading or writing any key', async () => {
    seedCa(caItem(INT, 'intermediate', '2026-01-02T00:00:00.000Z', { status: 'revoked' }));

    const result = await api()(postIntermediate(intId, BODY));

    expect(result.statusCode).toBe(409);
    expect(bodyOf(result)).toMatchObject({ code: 'ISSUER_REVOKED' });
    expect(sequence()).toEqual(['DynamoDB.Get certflow-cas']);
    expect(ssmMock).not.toHaveReceivedCommand(cmd(PutParameterCommand));
  });

  it('answers 404 CA_NOT_FOUND under an unknown parent', async () => {
    const unknown = 'f'.repeat(64);
    const result = await api()(postIntermediate(unknown, BODY));

    expect(result.statusCode).toBe(404);
    expect(bodyOf(result)).toMatchObject({ code: 'CA_NOT_FOUND' });
    expect(dynamoInputs(GetCommand, CA_TABLE)).toEqual([
      { TableName: CA_TABLE, Key: { caId: unknown }, ConsistentRead: true },
    ]);
    expect(sequence()).toEqual(['DynamoDB.Get certflow-cas']);
  });

  it('answers 400 INVALID_REQUEST to a caId that is not a certificate id, without calling AWS', async () => {
    const result = await api()(postIntermediate('acme-root', BODY));
    expect(result.statusCode).toBe(400);
    expect(bodyOf(result)).toMatchObject({ code: 'INVALID_REQUEST', details: { field: 'caId' } });
    expect(sequence()).toEqual([]);
  });
});

describe('POST /certificates/device', () => {
  const post = (body: unknown) => apiEvent('POST', '/certificates/device', '/certificates/device', { body });
  const ISSUE_SEQUENCE = [
    'DynamoDB.Get certflow-cas',
    'SSM.GetParameter cdf-ca-key-INT',
    'SSM.GetParameter cdf-ca-cert-INT',
    'SSM.GetParameter cdf-ca-chain-INT',
    'S3.PutObject certificates/NEW.pem',
    'EventBridge.PutEvents Certificate Issued',
  ];

  it('a month before its CA ends: the 365-day default ends with the CA; an explicit 365 days is refused', async () => {
    const late = api(env, at(1825 * DAY - 30 * DAY));
    const result = await late(post({ issuerId: intId, thingName: 'thing-late' }));

    expect(result.statusCode).toBe(201);
    expect(parseCertificate(String(bodyOf(result).certificatePem)).notAfter).toEqual(INT.certificate.notAfter);
    const explicit = await late(post({ issuerId: intId, thingName: 'thing-late', validityDays: 365 }));
    expect(explicit.statusCode).toBe(400);
    expect(bodyOf(explicit)).toMatchObject({ code: 'VALIDITY_EXCEEDS_ISSUER' });
  });

  it('without a CSR: makes the key, returns it once with the certificate and chain, stores only the certificate', async () => {
    const result = await api()(post({ issuerId: intId, thingName: 'thing-0042', subject: { organization: 'Acme' } }));

    expect(result.statusCode).toBe(201);
    const view = bodyOf(result);
    aliases.set(String(view.certificateId), 'NEW');
    expect(sequence()).toEqual(ISSUE_SEQUENCE); // the issuer is loaded once
    const certificate = parseCertificate(String(view.certificatePem));
    expect(view).toEqual({
      certificateId: certificate.id,
      serialNumber: certificate.serialNumber,
      commonName: 'thing-0042',
      issuerId: intId,
      notBefore: certificate.notBefore.toISOString(),
      notAfter: certificate.notAfter.toISOString(),
      certificatePem: certificate.pem,
      chainPem: INT.certificate.pem + ROOT.certificate.pem,
      privateKeyPem: expect.stringMatching(/^-----BEGIN PRIVATE KEY-----\n/),
      thingName: 'thing-0042',
    });
    expect(certificate.subject).toBe('O=Acme, CN=thing-0042');
    const x = new X509Certificate(certificate.der);
    expect(x.checkPrivateKey(createPrivateKey(String(view.privateKeyPem)))).toBe(true);
    expect(x.verify(createPublicKey(INT.privateKey))).toBe(true);

    expect(s3Puts()).toEqual([
      {
        Bucket: BUCKET,
        Key: `certificates/${certificate.id}.pem`,
        Body: certificate.pem,
        ContentType: 'application/x-pem-file',
      },
    ]);
    noPrivateKey(bucket.get(`certificates/${certificate.id}.pem`)?.body.toString());
    expect(events()).toEqual([
      {
        entry: { Source: 'certflow', DetailType: 'Certificate Issued', Detail: expect.any(String), EventBusName: BUS },
        detail: {
          issuerId: intId,
          kind: 'device',
          origin: 'api',
          thingName: 'thing-0042',
          certificates: [
            {
              certificateId: certificate.id,
              serialNumber: certificate.serialNumber,
              commonName: 'thing-0042',
              notBefore: view.notBefore,
              notAfter: view.notAfter,
            },
          ],
        },
      },
    ]);
    noPrivateKey(events()[0]!.entry.Detail);
  });

  it('with a CSR: certifies the CSR’s key and subject and returns no private key', async () => {
    const key = generateDeviceKey('ec-p256');
    const csr = toPem('CERTIFICATE REQUEST', buildCsr(encodeName({ commonName: 'thing-0043' }), key));

    const result = await api()(post({ issuerId: intId, thingName: 'thing-0043', csr }));

    expect(result.statusCode).toBe(201);
    const view = bodyOf(result);
    aliases.set(String(view.certificateId), 'NEW');
    expect(sequence()).toEqual(ISSUE_SEQUENCE);
    expect(view).not.toHaveProperty('privateKeyPem');
    noPrivateKey(result.body);
    const certificate = parseCertificate(String(view.certificatePem));
    expect(certificate.spki.equals(key.spki)).toBe(true);
    expect(certificate.commonName).toBe('thing-0043');
    expect(view).toMatchObject({ thingName: 'thing-0043', issuerId: intId, commonName: 'thing-0043' });
    expect(events()[0]!.detail).toMatchObject({ kind: 'device', thingName: 'thing-0043' });
  });

  it('answers 400 CSR_CN_MISMATCH when the CSR’s common name is not the thing name, and issues nothing', async () => {
    const csr = toPem(
      'CERTIFICATE REQUEST',
      buildCsr(encodeName({ commonName: 'thing-0043' }), generateDeviceKey('ec-p256')),
    );

    const result = await api()(post({ issuerId: intId, thingName: 'thing-0044', csr }));

    expect(result.statusCode).toBe(400);
    expect(bodyOf(result)).toMatchObject({ code: 'CSR_CN_MISMATCH', details: { field: 'csr' } });
    expect(s3Mock).not.toHaveReceivedCommand(cmd(PutObjectCommand));
    expect(ebMock).not.toHaveReceivedCommand(cmd(PutEventsCommand));
  });

  it('answers 409 ISSUER_REVOKED for a revoked issuer without loading its key', async () => {
    seedCa(caItem(INT, 'intermediate', '2026-01-02T00:00:00.000Z', { status: 'revoked' }));
    const result = await api()(post({ issuerId: intId, thingName: 'thing-0045' }));
    expect(result.statusCode).toBe(409);
    expect(bodyOf(result)).toMatchObject({ code: 'ISSUER_REVOKED' });
    expect(sequence()).toEqual(['DynamoDB.Get certflow-cas']);
  });
});

describe('POST /certificates/server', () => {
  it('issues a serverAuth certificate for the FQDN and the SANs, with its key', async () => {
    const body = {
      issuerId: intId,
      fqdn: 'mqtt.acme.example',
      sans: { dns: ['broker.acme.example'], ip: ['10.0.0.7'] },
      subject: { organization: 'Acme' },
    };
    const result = await api()(apiEvent('POST', '/certificates/server', '/certificates/server', { body }));

    expect(result.statusCode).toBe(201);
    const view = bodyOf(result);
    aliases.set(String(view.certificateId), 'NEW');
    expect(sequence()).toEqual([
      'DynamoDB.Get certflow-cas',
      'SSM.GetParameter cdf-ca-key-INT',
      'SSM.GetParameter cdf-ca-cert-INT',
      'SSM.GetParameter cdf-ca-chain-INT',
      'S3.PutObject certificates/NEW.pem',
      'EventBridge.PutEvents Certificate Issued',
    ]);
    const x = new X509Certificate(String(view.certificatePem));
    expect(x.subjectAltName?.split(', ').sort()).toEqual([
      'DNS:broker.acme.example',
      'DNS:mqtt.acme.example',
      'IP Address:10.0.0.7',
    ]);
    expect(x.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(x.checkPrivateKey(createPrivateKey(String(view.privateKeyPem)))).toBe(true);
    expect(view).toMatchObject({ commonName: 'mqtt.acme.example', issuerId: intId, chainPem: expect.any(String) });
    expect(view).not.toHaveProperty('thingName');
    expect(events()[0]!.detail).toEqual({
      issuerId: intId,
      kind: 'server',
      origin: 'api',
      certificates: [expect.objectContaining({ certificateId: view.certificateId, commonName: 'mqtt.acme.example' })],
    });
    noPrivateKey(events()[0]!.entry.Detail);
  });
});

describe('GET /cas and GET /cas/{caId}', () => {
  it('lists the CA table (consistent Scan), oldest first', async () => {
    const result = await api()(apiEvent('GET', '/cas', '/cas'));

    expect(result.statusCode).toBe(200);
    expect(docMock.commandCalls(cmd(ScanCommand)).map((c) => c.args[0].input)).toEqual([
      { TableName: CA_TABLE, ConsistentRead: true },
    ]);
    expect(bodyOf(result)).toEqual({
      cas: [caItem(ROOT, 'root', '2026-01-01T00:00:00.000Z'), caItem(INT, 'intermediate', '2026-01-02T00:00:00.000Z')],
    });
    expect(sequence()).toEqual(['DynamoDB.Scan certflow-cas']);
  });

  it('reads one CA by its id (consistent GetItem)', async () => {
    const result = await api()(apiEvent('GET', '/cas/{caId}', `/cas/${intId}`, { pathParameters: { caId: intId } }));

    expect(result.statusCode).toBe(200);
    expect(bodyOf(result)).toEqual(caItem(INT, 'intermediate', '2026-01-02T00:00:00.000Z'));
    expect(dynamoInputs(GetCommand, CA_TABLE)).toEqual([
      { TableName: CA_TABLE, Key: { caId: intId }, ConsistentRead: true },
    ]);
    expect(sequence()).toEqual(['DynamoDB.Get certflow-cas']);
  });

  it('answers 404 CA_NOT_FOUND for an unknown CA', async () => {
    const caId = 'e'.repeat(64);
    const result = await api()(apiEvent('GET', '/cas/{caId}', `/cas/${caId}`, { pathParameters: { caId } }));
    expect(result.statusCode).toBe(404);
    expect(bodyOf(result)).toMatchObject({ code: 'CA_NOT_FOUND' });
  });
});

describe('GET /certificates?issuer=', () => {
  it('pages the byIssuer index: Limit one more than asked, the token resumes as ExclusiveStartKey', async () => {
    const records = [record(1), record(2), record(3)];
    seedInventory(...records);
    const list = (query: Record<string, string>) =>
      api()(apiEvent('GET', '/certificates', '/certificates', { query: { issuer: intId, limit: '2', ...query } }));

    const first = await list({});

    expect(first.statusCode).toBe(200);
    const page = bodyOf(first);
    expect(page).toEqual({ items: [records[0], records[1]], nextToken: expect.stringMatching(/^[A-Za-z0-9_-]+$/) });
    const query = {
      TableName: INVENTORY_TABLE,
      IndexName: 'byIssuer',
      KeyConditionExpression: 'issuerId = :issuerId',
      ExpressionAttributeValues: { ':issuerId': intId },
      Limit: 3,
    };
    expect(dynamoInputs(QueryCommand, INVENTORY_TABLE)).toEqual([query]);

    docMock.resetHistory();
    const second = await list({ nextToken: String(page.nextToken) });

    expect(bodyOf(second)).toEqual({ items: [records[2]] });
    expect(dynamoInputs(QueryCommand, INVENTORY_TABLE)).toEqual([
      {
        ...query,
        ExclusiveStartKey: {
          certificateId: records[1]!.certificateId,
          issuerId: intId,
          issuedKey: `${records[1]!.issuedAt}#${records[1]!.certificateId}`,
        },
      },
    ]);
  });

  it('answers 400 INVALID_NEXT_TOKEN to a token of another issuer, before querying', async () => {
    const token = Buffer.from(
      JSON.stringify({
        certificateId: 'ab'.repeat(32),
        issuerId: rootId,
        issuedKey: `2026-01-01T00:00:00.000Z#${'ab'.repeat(32)}`,
      }),
    ).toString('base64url');
    const result = await api()(
      apiEvent('GET', '/certificates', '/certificates', { query: { issuer: intId, nextToken: token } }),
    );
    expect(result.statusCode).toBe(400);
    expect(bodyOf(result)).toMatchObject({ code: 'INVALID_NEXT_TOKEN' });
    expect(docMock).not.toHaveReceivedCommand(cmd(QueryCommand));
  });
});

describe('GET /certificates/{id}', () => {
  it('reads a 64-hex id from the inventory (and its PEM and chain), never from the bulk task table', async () => {
    const { certificate } = await issueLeaf(INT.issuer, {
      profile: 'device',
      subject: { commonName: 'thing-9' },
      validity: { days: 30 },
      now: new Date(),
    });
    const stored = record(9, { certificateId: certificate.id, serialNumber: certificate.serialNumber });
    seedInventory(stored);
    bucket.set(`certificates/${certificate.id}.pem`, { body: Buffer.from(certificate.pem), metadata: {} });
    aliases.set(certificate.id, 'CERT');

    const result = await api()(getCertificateEvent(certificate.id));

    expect(result.statusCode).toBe(200);
    expect(bodyOf(result)).toEqual({
      ...stored,
      certificatePem: certificate.pem,
      chainPem: INT.certificate.pem + ROOT.certificate.pem,
    });
    expect(sequence()).toEqual([
      'DynamoDB.Get certflow-inventory',
      'S3.GetObject certificates/CERT.pem',
      // the chain comes from the CA store (issuer, then its parent): no CA key is loaded to show a certificate
      'DynamoDB.Get certflow-cas',
      'DynamoDB.Get certflow-cas',
    ]);
    expect(dynamoInputs(GetCommand, INVENTORY_TABLE)).toEqual([
      { TableName: INVENTORY_TABLE, Key: { certificateId: certificate.id }, ConsistentRead: true },
    ]);
    expect(dynamoInputs(GetCommand, TASK_TABLE)).toEqual([]);
  });

  it('answers 404 CERTIFICATE_NOT_FOUND (not TASK_NOT_FOUND) for an unknown 64-hex id', async () => {
    const result = await api()(getCertificateEvent('cd'.repeat(32)));
    expect(result.statusCode).toBe(404);
    expect(bodyOf(result)).toMatchObject({ code: 'CERTIFICATE_NOT_FOUND' });
    expect(sequence()).toEqual(['DynamoDB.Get certflow-inventory']);
  });

  it('still reads a UUID from the bulk task table', async () => {
    const taskId = randomUUID();
    table(TASK_TABLE).rows.set(`task#${taskId}`, {
      pk: `task#${taskId}`,
      gsi1pk: 'in_progress',
      taskId,
      supplierId: 'acme',
      status: 'in_progress',
      quantity: 250,
      chunkSize: 100,
      chunksTotal: 3,
      createdAt: '2026-03-01T12:00:00.000Z',
      request: { keyType: 'ec-p256', register: false, includeCA: false, layout: 'certflow' },
    });
    table(TASK_TABLE).rows.set(`task#${taskId}#done#0`, { pk: `task#${taskId}#done#0`, doneCount: 1 });

    const result = await api()(getCertificateEvent(taskId));

    expect(result.statusCode).toBe(303);
    expect(result.headers?.location).toBe(`/certificates/${taskId}/task`);
    expect(JSON.parse(result.body)).toMatchObject({ taskId, chunksPending: 2, chunksTotal: 3 });
    expect(sequence()).toEqual(['DynamoDB.Get certflow-tasks', 'DynamoDB.BatchGet certflow-tasks']);
    expect(dynamoInputs(GetCommand, TASK_TABLE)).toEqual([
      { TableName: TASK_TABLE, Key: { pk: `task#${taskId}` }, ConsistentRead: true },
    ]);
  });
});

describe('POST /certificates/{certificateId}/revoke', () => {
  const REVOKE_SEQUENCE = [
    'DynamoDB.Get certflow-inventory',
    'DynamoDB.Update certflow-inventory',
    'EventBridge.PutEvents Certificate Revoked',
    'DynamoDB.Get certflow-cas', // the issuer is a certflow CA: it publishes a CRL
    'SSM.GetParameter cdf-ca-key-INT',
    'SSM.GetParameter cdf-ca-cert-INT',
    'SSM.GetParameter cdf-ca-chain-INT',
    'DynamoDB.Query certflow-inventory',
    'DynamoDB.Update certflow-cas',
    'S3.PutObject crls/INT.crl',
    'S3.PutObject crls/INT.crl.pem',
  ];

  it('marks it revoked with a condition, sends Certificate Revoked, re-publishes the issuer’s CRL', async () => {
    const earlier = record(1, {
      status: 'revoked',
      revokedAt: '2026-02-01T00:00:00.000Z',
      revocationReason: 'superseded',
    });
    const target = record(2);
    seedInventory(earlier, target, record(3));

    const result = await api()(revokeCertificateEvent(target.certificateId, { reason: 'keyCompromise' }));

    expect(result.statusCode).toBe(200);
    const body = bodyOf(result);
    expect(body).toEqual({
      certificateId: target.certificateId,
      status: 'revoked',
      reason: 'keyCompromise',
      revokedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      crlNumber: 1,
    });
    expect(sequence()).toEqual(REVOKE_SEQUENCE);
    expect(dynamoInputs(UpdateCommand, INVENTORY_TABLE)).toEqual([
      {
        TableName: INVENTORY_TABLE,
        Key: { certificateId: target.certificateId },
        UpdateExpression: REVOKE_UPDATE,
        ConditionExpression: 'attribute_exists(certificateId) AND #status <> :revoked',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':revoked': 'revoked', ':at': body.revokedAt, ':reason': 'keyCompromise' },
      },
    ]);
    expect(events().map((e) => e.detail)).toEqual([
      {
        certificateId: target.certificateId,
        serialNumber: target.serialNumber,
        issuerId: intId,
        kind: 'device',
        reason: 'keyCompromise',
        revokedAt: body.revokedAt,
        thingName: target.thingName,
      },
    ]);
    const { crl, crlNumber, serials } = await storedCrl(INT);
    expect(crlNumber).toBe(1);
    expect(serials).toEqual([earlier.serialNumber, target.serialNumber].sort());
    const entry = crl.entries.find((e) => e.serialNumber.toLowerCase().endsWith(target.serialNumber));
    expect(entry?.reason).toBe(x509.X509CrlReason.keyCompromise);
    expect(entry?.revocationDate.toISOString()).toBe(String(body.revokedAt).replace(/\.\d{3}Z$/, '.000Z'));
  });

  it('answers 409 ALREADY_REVOKED the second time (condition failed, consistent read shows it revoked)', async () => {
    const target = record(2);
    seedInventory(target);
    expect((await api()(revokeCertificateEvent(target.certificateId))).statusCode).toBe(200);
    for (const mock of Object.values(MOCKS)) mock.resetHistory();

    const result = await api()(revokeCertificateEvent(target.certificateId, { reason: 'superseded' }));

    expect(result.statusCode).toBe(409);
    expect(bodyOf(result)).toMatchObject({ code: 'ALREADY_REVOKED' });
    expect(sequence()).toEqual([
      'DynamoDB.Get certflow-inventory',
      'DynamoDB.Update certflow-inventory', // ConditionalCheckFailed
      'DynamoDB.Get certflow-inventory',
    ]);
    expect(dynamoInputs(GetCommand, INVENTORY_TABLE)[1]).toEqual({
      TableName: INVENTORY_TABLE,
      Key: { certificateId: target.certificateId },
      ConsistentRead: true,
    });
    expect(table(INVENTORY_TABLE).rows.get(target.certificateId)).toMatchObject({ revocationReason: 'unspecified' });
  });

  it('answers 404 CERTIFICATE_NOT_FOUND for a certificate the inventory does not hold', async () => {
    const result = await api()(revokeCertificateEvent('ab'.repeat(32)));
    expect(result.statusCode).toBe(404);
    expect(bodyOf(result)).toMatchObject({ code: 'CERTIFICATE_NOT_FOUND' });
    expect(sequence()).toEqual(['DynamoDB.Get certflow-inventory']);
  });
});

describe('POST /cas/{caId}/revoke', () => {
  /** 12 active device certificates of INT (things thing-0 … thing-9, thing-0 twice, one without a thing). */
  const issued = () =>
    Array.from({ length: 12 }, (_, i) => record(16 + i, { thingName: i === 11 ? undefined : `thing-${i % 10}` }));

  it('revokes the CA and everything it issued, rotates their things, publishes the parent’s and its own CRL', async () => {
    const devices = issued();
    const old = record(40, {
      status: 'revoked',
      revokedAt: '2026-02-01T00:00:00.000Z',
      revocationReason: 'superseded',
    });
    const own = record(50, {
      certificateId: intId,
      kind: 'intermediate',
      issuerId: rootId,
      serialNumber: INT.certificate.serialNumber,
      commonName: 'Acme Devices CA',
      thingName: undefined,
    });
    seedInventory(own, old, ...devices);

    const result = await api()(revokeCaEvent(intId));

    expect(result.statusCode).toBe(200);
    const body = bodyOf(result);
    expect(body).toEqual({
      caId: intId,
      status: 'revoked',
      reason: 'cACompromise',
      revokedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      certificatesRevoked: 12,
      thingsToRotate: 10,
      complete: true,
      crlNumber: 1,
    });
    const things = Array.from({ length: 10 }, (_, i) => `thing-${i}`);
    expect(sequence()).toEqual([
      'DynamoDB.Get certflow-cas',
      'DynamoDB.Update certflow-cas', // the CA is marked revoked once
      'DynamoDB.Get certflow-inventory', // its own certificate
      'DynamoDB.Update certflow-inventory',
      'EventBridge.PutEvents Certificate Revoked',
      // the parent's CRL lists the CA
      'SSM.GetParameter cdf-ca-key-ROOT',
      'SSM.GetParameter cdf-ca-cert-ROOT',
      'SSM.GetParameter cdf-ca-chain-ROOT',
      'DynamoDB.Query certflow-inventory',
      'DynamoDB.Update certflow-cas',
      'S3.PutObject crls/ROOT.crl',
      'S3.PutObject crls/ROOT.crl.pem',
      // the certificates it issued: one page, each revoked, events in PutEvents requests of 10
      'DynamoDB.Query certflow-inventory',
      ...devices.map(() => 'DynamoDB.Update certflow-inventory'),
      'EventBridge.PutEvents Certificate Revoked ×10',
      'EventBridge.PutEvents Certificate Revoked ×2',
      ...things.map((t) => `IoT.AddThingToThingGroup ${t}`),
      // its own CRL lists them all
      'SSM.GetParameter cdf-ca-key-INT',
      'SSM.GetParameter cdf-ca-cert-INT',
      'SSM.GetParameter cdf-ca-chain-INT',
      'DynamoDB.Query certflow-inventory',
      'DynamoDB.Update certflow-cas',
      'S3.PutObject crls/INT.crl',
      'S3.PutObject crls/INT.crl.pem',
    ]);

    expect(dynamoInputs(UpdateCommand, CA_TABLE)[0]).toEqual({
      TableName: CA_TABLE,
      Key: { caId: intId },
      UpdateExpression: REVOKE_UPDATE,
      ConditionExpression: 'attribute_exists(caId) AND #status <> :revoked',
      ExpressionAttributeNames: { '#status': 'status' },
      ExpressionAttributeValues: { ':revoked': 'revoked', ':at': body.revokedAt, ':reason': 'cACompromise' },
    });
    expect(dynamoInputs(QueryCommand, INVENTORY_TABLE)[1]).toEqual({
      TableName: INVENTORY_TABLE,
      IndexName: 'byIssuer',
      KeyConditionExpression: 'issuerId = :issuerId',
      ExpressionAttributeValues: { ':issuerId': intId, ':status': 'active' },
      FilterExpression: '#status = :status',
      ExpressionAttributeNames: { '#status': 'status' },
      Limit: 501,
    });
    expect(dynamoInputs(UpdateCommand, INVENTORY_TABLE).map((u) => u.Key?.certificateId)).toEqual([
      intId,
      ...devices.map((d) => d.certificateId),
    ]);
    expect(
      iotMock
        .commandCalls(cmd(AddThingToThingGroupCommand))
        .map((c) => c.args[0].input)
        .sort((a, b) => String(a.thingName).localeCompare(String(b.thingName))),
    ).toEqual(things.map((thingName) => ({ thingGroupName: ROTATION_GROUP, thingName })));

    expect(events().map((e) => e.detail.certificateId)).toEqual([intId, ...devices.map((d) => d.certificateId)]);
    expect(events()[0]!.detail).toEqual({
      certificateId: intId,
      serialNumber: INT.certificate.serialNumber,
      issuerId: rootId,
      kind: 'intermediate',
      reason: 'cACompromise',
      revokedAt: body.revokedAt,
    });
    expect(new Set(events().map((e) => e.detail.reason))).toEqual(new Set(['cACompromise']));

    const rootCrl = await storedCrl(ROOT);
    expect(rootCrl.serials).toEqual([INT.certificate.serialNumber.replace(/^0+/, '')]);
    expect(rootCrl.crl.entries[0]!.reason).toBe(x509.X509CrlReason.cACompromise);
    const intCrl = await storedCrl(INT);
    expect(intCrl.serials).toEqual([old, ...devices].map((d) => d.serialNumber).sort());
    expect(table(CA_TABLE).rows.get(intId)).toMatchObject({ status: 'revoked', revocationReason: 'cACompromise' });
  });

  it('answers 409 ALREADY_REVOKED when the CA is revoked already, touching nothing else', async () => {
    seedCa(caItem(INT, 'intermediate', '2026-01-02T00:00:00.000Z', { status: 'revoked' }));
    const result = await api()(revokeCaEvent(intId));
    expect(result.statusCode).toBe(409);
    expect(bodyOf(result)).toMatchObject({ code: 'ALREADY_REVOKED' });
    expect(sequence()).toEqual([
      'DynamoDB.Get certflow-cas',
      'DynamoDB.Update certflow-cas', // ConditionalCheckFailed
      'DynamoDB.Get certflow-cas',
    ]);
  });

  // Regression: awsCaDeps once had no workflow starter, so a compromise response beyond one slice failed with 500.
  it('hands the certificates beyond the first slice of 2,000 to the revoke-issued workflow', async () => {
    sfnMock.on(cmd(StartExecutionCommand)).resolves({ executionArn: 'arn:exec', startDate: new Date() });
    seedInventory(...Array.from({ length: 2001 }, (_, i) => record(0x1000 + i, { thingName: undefined })));

    const result = await api()(revokeCaEvent(intId));

    expect(result.statusCode).toBe(200);
    expect(bodyOf(result)).toMatchObject({ certificatesRevoked: 2000, complete: false });
    expect(sfnMock).toHaveReceivedCommand(cmd(StartExecutionCommand));
  });
});

describe('GET /cas/{caId}/crl', () => {
  let crl: { der: Buffer; pem: string };

  beforeEach(async () => {
    const now = Date.now();
    crl = await buildCrl(INT.issuer, {
      entries: [{ serialNumber: '4a0b01', revokedAt: new Date(now - 3_600_000), reason: 'keyCompromise' }],
      thisUpdate: new Date(now - 60_000),
      nextUpdate: new Date(now + 86_400_000),
      crlNumber: 3,
    });
    bucket.set(`crls/${intId}.crl`, { body: crl.der, contentType: 'application/pkix-crl', metadata: {} });
  });

  it('answers the DER CRL, base64, as application/pkix-crl', async () => {
    const result = await api()(getCrlEvent(intId));

    expect(result).toEqual({
      statusCode: 200,
      headers: { 'content-type': 'application/pkix-crl' },
      body: crl.der.toString('base64'),
      isBase64Encoded: true,
    });
    expect(sequence()).toEqual(['DynamoDB.Get certflow-cas', 'S3.GetObject crls/INT.crl']);
    expect(s3Mock.commandCalls(cmd(GetObjectCommand)).map((c) => c.args[0].input)).toEqual([
      { Bucket: BUCKET, Key: `crls/${intId}.crl` },
    ]);
  });

  it('answers PEM text to Accept: application/x-pem-file', async () => {
    const result = await api()(getCrlEvent(intId, { Accept: 'application/x-pem-file' }));

    expect(result).toEqual({
      statusCode: 200,
      headers: { 'content-type': 'application/x-pem-file' },
      body: crl.pem,
    });
  });

  it('answers 404 CA_NOT_FOUND for an unknown CA without reading S3', async () => {
    const caId = 'e'.repeat(64);
    const result = await api()(getCrlEvent(caId));
    expect(result.statusCode).toBe(404);
    expect(bodyOf(result)).toMatchObject({ code: 'CA_NOT_FOUND' });
    expect(s3Mock).not.toHaveReceivedCommand(cmd(GetObjectCommand));
  });
});

describe('the Lambda handler', () => {
  const context = {
    functionName: 'certflow-api',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:111122223333:function:certflow-api',
    memoryLimitInMB: '512',
    awsRequestId: 'c6af9ac6-7b61-11e6-9a41-93e812345678',
    logGroupName: '/aws/lambda/certflow-api',
    logStreamName: '2026/03/01/[$LATEST]abcdef',
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => 30_000,
  } as unknown as Context;

  const variables: Record<string, string> = { ...API_VARIABLES, CA_TABLE_NAME: 'prod-cas', AWS_REGION: 'us-east-1' };
  const saved: Record<string, string | undefined> = {};

  beforeEach(() => {
    for (const [name, value] of Object.entries(variables)) {
      saved[name] = process.env[name];
      process.env[name] = value;
    }
    KEY_ATTRIBUTE['prod-cas'] = 'caId';
  });

  afterEach(() => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    delete KEY_ATTRIBUTE['prod-cas'];
  });

  it('serves the CA routes from the environment the stack sets (ApiEnv is complete)', async () => {
    const root = caItem(ROOT, 'root', '2026-01-01T00:00:00.000Z');
    table('prod-cas').rows.set(rootId, root);

    const result = await handler(apiEvent('GET', '/cas', '/cas'), context);

    expect(result.statusCode).toBe(200);
    expect(bodyOf(result)).toEqual({ cas: [root] });
    expect(docMock.commandCalls(cmd(ScanCommand)).map((c) => c.args[0].input)).toEqual([
      { TableName: 'prod-cas', ConsistentRead: true },
    ]);
  });
});
