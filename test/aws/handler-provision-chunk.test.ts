/**
 * Provisioning at AWS's quotas (issue 7): the bulk-provisioning chunk (sfn-provision-chunk) and POST /things on
 * awsProvisioningDeps built from SDK clients whose `send` is mocked. AWS IoT and ACM PCA are small fakes behind the
 * mocks that keep state (things, registered certificates, the certificates PCA issued per IdempotencyToken), so a
 * replayed chunk meets what the first delivery left, as on AWS. Asserted: every AWS IoT and ACM PCA call takes a slot
 * of the shared limiter at its configured rate (a MemoryRateLimiter on a frozen clock, the same schedule as
 * DynamoRateLimiter; the default wiring's DynamoDB schedule items are asserted too), throttling is retried with
 * jittered backoff on a new slot, and a replayed chunk bills, registers and creates nothing twice.
 */
import 'aws-sdk-client-mock-jest';
import {
  ACMPCAClient,
  DescribeCertificateAuthorityCommand,
  GetCertificateCommand,
  IssueCertificateCommand,
} from '@aws-sdk/client-acm-pca';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateThingCommand,
  DescribeCertificateCommand,
  GetPolicyCommand,
  IoTClient,
  RegisterCertificateWithoutCACommand,
} from '@aws-sdk/client-iot';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { MemoryRateLimiter } from '../../lambdas/adapters/local/memory-rate-limiter';
import { awsProvisioningDeps } from '../../lambdas/adapters/aws/provisioning-deps';
import { isThrottlingError } from '../../lambdas/adapters/aws/sdk-errors';
import { createPace, resolveApiRates, type Pace } from '../../lambdas/core/pacing';
import {
  createIntermediateCa,
  createRootCa,
  deviceKeyFromPem,
  issueFromCsr,
  parseCertificate,
  parseCsr,
  type CreatedCa,
} from '../../lambdas/core/pki';
import type { RateLimitedApi } from '../../lambdas/core/ports';
import { csrIdempotencyToken } from '../../lambdas/core/signing/csr-signer';
import { createHandler as createApi } from '../../lambdas/handlers/api-provisioning';
import { ProvisioningApiEnv, readEnv } from '../../lambdas/handlers/env';
import { createHandler as createChunk } from '../../lambdas/handlers/sfn-provision-chunk';
import { makeCsr } from '../helpers/csr';
import { apiEvent } from './api-events';
import { testClients } from './aws-clients';
import { installBucket, type StoredObject } from './s3-fake';
import { cmd, mockSdk } from './sdk-mock';

const PCA_ARN = 'arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/11111111-2222-3333-4444-555555555555';
const ARN = 'arn:aws:iot:eu-west-1:111122223333:';
const TASK = 'task-1';
const RATES = {
  'iot:CreateThing': 20,
  'iot:RegisterCertificateWithoutCA': 8,
  'iot:AttachThingPrincipal': 25,
  'iot:AttachPolicy': 40,
  'acm-pca:IssueCertificate': 5,
  'acm-pca:GetCertificate': 50,
};

const s3Mock = mockSdk(S3Client);
const iotMock = mockSdk(IoTClient);
const pcaMock = mockSdk(ACMPCAClient);
const ebMock = mockSdk(EventBridgeClient);
const sfnMock = mockSdk(SFNClient);
const ddbMock = mockSdk(DynamoDBDocumentClient);
const bucket = new Map<string, StoredObject>();

let issuing: CreatedCa;
beforeAll(async () => {
  const now = new Date();
  const root = await createRootCa({ subject: { commonName: 'PCA Root' }, validity: { days: 3650 }, now });
  issuing = await createIntermediateCa(root.issuer, {
    subject: { commonName: 'PCA Issuing' },
    validity: { days: 900 },
    now,
  });
});

const env = readEnv(ProvisioningApiEnv, {
  BUCKET_NAME: 'certflow-objects',
  EVENT_BUS_NAME: 'certflow-bus',
  CA_TABLE_NAME: 'certflow-cas',
  PROVISIONING_STATE_MACHINE_ARN: 'arn:aws:states:eu-west-1:111122223333:stateMachine:certflow-provisioning',
  PROVISIONING_CHUNK_SIZE: '3',
  RATE_LIMIT_TABLE_NAME: 'certflow-tasks',
  API_RATES: JSON.stringify(RATES),
});

/** A CDF acmpca template run by certflow's engine (the thing refers to the certificate): every call is visible. */
const template = {
  Parameters: { ThingName: { Type: 'String' }, CertificateId: { Type: 'String' } },
  Resources: {
    certificate: { Type: 'AWS::IoT::Certificate', Properties: { CertificateId: { Ref: 'CertificateId' } } },
    thing: {
      Type: 'AWS::IoT::Thing',
      Properties: { ThingName: { Ref: 'ThingName' }, AttributePayload: { certificate: { Ref: 'certificate' } } },
    },
    policy: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: 'fleet-policy' } },
  },
  CDF: { acmpca: { mode: 'REGISTER_WITHOUT_CA' } },
};
const ITEMS = ['dev-0', 'dev-1', 'dev-2'];

/** The limiter every paced call went through: the APIs in order, and the waits the schedule gave each API. */
let acquired: RateLimitedApi[];
let waits: Map<RateLimitedApi, number[]>;
let backoffs: number[];
function testPace(): Pace {
  acquired = [];
  waits = new Map();
  backoffs = [];
  let current: RateLimitedApi | undefined;
  const memory = new MemoryRateLimiter(resolveApiRates(env.API_RATES), {
    clock: { now: () => new Date(0) }, // frozen: a wait is exactly the distance to the reserved slot
    sleep: async (ms) => void waits.set(current!, [...(waits.get(current!) ?? []), ms]),
  });
  return createPace({
    // MemoryRateLimiter reserves and calls sleep synchronously, so `current` is the API being acquired
    limiter: { acquire: (api) => ((current = api), acquired.push(api), memory.acquire(api)) },
    isThrottling: isThrottlingError,
    retry: { sleep: async (ms) => void backoffs.push(ms), random: () => 0.5 },
  });
}

function depsWith(pace?: Pace) {
  const deps = awsProvisioningDeps(env, testClients(), {}, ...(pace ? [pace] : []));
  deps.newId = () => TASK;
  return deps;
}

/** What the fakes hold: AWS IoT's things and registered certificates, ACM PCA's issued certificates by token. */
let things: Map<string, { attributes: Record<string, string>; principals: Set<string>; creates: number }>;
let registered: Map<string, number>;
let issued: Map<string, { arn: string; pem: string }>;
let policiesAttached: Set<string>;

const throttling = (name: 'ThrottlingException' | 'TooManyRequestsException') =>
  Object.assign(new Error('Rate exceeded'), { name, $metadata: { httpStatusCode: 400 } });
/** Rejects the `n`-th call (1-based) of a fake with a throttling answer, then behaves. */
function throttleCalls<I>(
  fake: (input: I) => Promise<unknown>,
  name: 'ThrottlingException' | 'TooManyRequestsException',
  ...nth: number[]
) {
  let calls = 0;
  return async (input: I) => {
    calls++;
    if (nth.includes(calls)) throw throttling(name);
    return fake(input);
  };
}

const fakes = {
  issue: async (input: { Csr: Uint8Array; IdempotencyToken?: string }) => {
    const token = input.IdempotencyToken!;
    // ACM PCA: the same token within its window is the same certificate, whatever CSR comes with it
    let certificate = issued.get(token);
    if (!certificate) {
      const csr = parseCsr(Buffer.from(input.Csr).toString('utf8'));
      const pem = (
        await issueFromCsr(issuing.issuer, csr, { profile: 'device', validity: { days: 30 }, now: new Date() })
      ).pem;
      certificate = { arn: `${PCA_ARN}/certificate/${issued.size + 1}`, pem };
      issued.set(token, certificate);
    }
    return { CertificateArn: certificate.arn };
  },
  get: async (input: { CertificateArn: string }) => {
    const found = [...issued.values()].find((c) => c.arn === input.CertificateArn)!;
    return { Certificate: found.pem, CertificateChain: issuing.certificate.pem };
  },
  register: async (input: { certificatePem: string }) => {
    const id = parseCertificate(input.certificatePem).id;
    if (registered.has(id)) {
      throw Object.assign(new Error('exists'), { name: 'ResourceAlreadyExistsException', $metadata: {} });
    }
    registered.set(id, registered.size);
    return { certificateId: id, certificateArn: `${ARN}cert/${id}` };
  },
  createThing: async (input: { thingName: string; attributePayload: { attributes: Record<string, string> } }) => {
    // AWS IoT: creating a thing that exists with the same attributes answers it, nothing new
    const thing = things.get(input.thingName) ?? { attributes: {}, principals: new Set(), creates: 0 };
    thing.attributes = input.attributePayload.attributes;
    thing.creates++;
    things.set(input.thingName, thing);
    return { thingName: input.thingName, thingArn: `${ARN}thing/${input.thingName}` };
  },
  attachPrincipal: async (input: { thingName: string; principal: string }) => {
    things.get(input.thingName)!.principals.add(input.principal);
    return {};
  },
  attachPolicy: async (input: { policyName: string; target: string }) => {
    policiesAttached.add(`${input.policyName} ${input.target}`);
    return {};
  },
};

beforeEach(() => {
  for (const m of [s3Mock, iotMock, pcaMock, ebMock, sfnMock, ddbMock]) m.reset();
  bucket.clear();
  things = new Map();
  registered = new Map();
  issued = new Map();
  policiesAttached = new Set();
  installBucket(s3Mock, bucket);
  ebMock.on(cmd(PutEventsCommand)).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'e' }] });
  sfnMock.on(cmd(StartExecutionCommand)).resolves({ executionArn: 'arn:x', startDate: new Date() });
  pcaMock.on(cmd(DescribeCertificateAuthorityCommand)).resolves({
    CertificateAuthority: { CertificateAuthorityConfiguration: { KeyAlgorithm: 'EC_prime256v1' } } as never,
  });
  pcaMock.on(cmd(IssueCertificateCommand)).callsFake(fakes.issue);
  pcaMock.on(cmd(GetCertificateCommand)).callsFake(fakes.get);
  iotMock.on(cmd(RegisterCertificateWithoutCACommand)).callsFake(fakes.register);
  iotMock.on(cmd(DescribeCertificateCommand)).callsFake(async (input: { certificateId: string }) => ({
    certificateDescription: { certificateId: input.certificateId, certificateArn: `${ARN}cert/${input.certificateId}` },
  }));
  iotMock.on(cmd(CreateThingCommand)).callsFake(fakes.createThing);
  iotMock.on(cmd(AttachThingPrincipalCommand)).callsFake(fakes.attachPrincipal);
  iotMock.on(cmd(AttachPolicyCommand)).callsFake(fakes.attachPolicy);
  iotMock.on(cmd(GetPolicyCommand)).resolves({ policyArn: `${ARN}policy/fleet-policy`, policyDocument: '{}' });
  bucket.set('templates/fleet.json', { body: Buffer.from(JSON.stringify(template)), metadata: {} });
});

/** POST /bulkprovisioningtasks of ITEMS (one chunk of three), ACM PCA making the keys. */
async function createTask(deps: ReturnType<typeof depsWith>) {
  const res = await createApi(deps)(
    apiEvent('POST', '/bulkprovisioningtasks', '/bulkprovisioningtasks', {
      body: {
        provisioningTemplateId: 'fleet',
        parameters: ITEMS.map((ThingName) => ({ ThingName })),
        cdfProvisioningParameters: { acmpcaCaArn: PCA_ARN, certInfo: { daysExpiry: 30 } },
      },
    }),
  );
  expect(res.statusCode).toBe(202);
  expect(JSON.parse(res.body)).toMatchObject({ taskId: TASK, total: 3, chunksTotal: 1 });
}

const readJson = <T>(key: string): T => JSON.parse(bucket.get(key)!.body.toString('utf8')) as T;
interface Results {
  succeeded: { index: number; thingName: string; certificateId: string; certificatePem: string; privateKey: string }[];
  failed: unknown[];
}
const tokens = () => pcaMock.commandCalls(cmd(IssueCertificateCommand)).map((c) => c.args[0].input.IdempotencyToken);
const count = (api: RateLimitedApi) => acquired.filter((a) => a === api).length;
/** The waits the schedule gives n calls in a row at `rate` per second: 0 (not slept), 1/rate, 2/rate … */
const spaced = (n: number, rate: number) => Array.from({ length: n - 1 }, (_, i) => ((i + 1) * 1000) / rate);

/** Every thing once, with exactly one certificate, whose key is the private key handed out. */
function expectOneOfEach(results: Results) {
  expect(results.succeeded.map((r) => r.thingName)).toEqual(ITEMS);
  expect(results.failed).toEqual([]);
  expect([...things.keys()].sort()).toEqual(ITEMS);
  for (const r of results.succeeded) {
    expect([...things.get(r.thingName)!.principals]).toEqual([`${ARN}cert/${r.certificateId}`]);
    expect(policiesAttached.has(`fleet-policy ${ARN}cert/${r.certificateId}`)).toBe(true);
    // the certificate handed out (followed by PCA's chain) is the one registered, and pairs with the private key
    const certificate = parseCertificate(r.certificatePem);
    expect(certificate.id).toBe(r.certificateId);
    expect(registered.has(r.certificateId)).toBe(true);
    expect(deviceKeyFromPem(r.privateKey).spki.equals(certificate.spki)).toBe(true);
  }
  expect(registered.size).toBe(ITEMS.length);
}

describe('bulk provisioning chunk on AWS, paced (issue 7)', () => {
  it('takes a slot of the shared limiter at the configured rate before every AWS IoT and ACM PCA call', async () => {
    const deps = depsWith(testPace());
    await createTask(deps);
    const out = await createChunk(deps)({ taskId: TASK, index: 0 });

    expect(out).toEqual({ index: 0, succeeded: 3, failed: 0 });
    const paced: RateLimitedApi[] = [
      'acm-pca:IssueCertificate',
      'acm-pca:GetCertificate',
      'iot:RegisterCertificateWithoutCA',
      'iot:CreateThing',
      'iot:AttachThingPrincipal',
      'iot:AttachPolicy',
    ];
    for (const api of paced) {
      expect(count(api)).toBe(3);
      // three calls of one API, however the items interleave, are spaced by 1/rate of its configured rate
      expect(waits.get(api) ?? []).toEqual(spaced(3, RATES[api as keyof typeof RATES]));
    }
    expect(new Set(acquired)).toEqual(new Set(paced));
    expect(backoffs).toEqual([]);
    // one slot per AWS IoT / ACM PCA call of those APIs: the calls and the slots match one to one
    expect(pcaMock.commandCalls(cmd(IssueCertificateCommand))).toHaveLength(count('acm-pca:IssueCertificate'));
    expect(iotMock.commandCalls(cmd(CreateThingCommand))).toHaveLength(count('iot:CreateThing'));
    // the IdempotencyToken of each item: the task id and the item's index
    expect(tokens().sort()).toEqual(['task-1:0', 'task-1:1', 'task-1:2']);
    expectOneOfEach(readJson<Results>('bulkprovisioning/task-1/results/000000.json'));
  });

  it('on the default wiring the slots are DynamoRateLimiter items of RATE_LIMIT_TABLE_NAME', async () => {
    const deps = depsWith();
    await createTask(deps);
    await createChunk(deps)({ taskId: TASK, index: 0 });
    const slots = ddbMock.commandCalls(cmd(UpdateCommand)).map((c) => c.args[0].input);
    expect(new Set(slots.map((s) => s.TableName))).toEqual(new Set(['certflow-tasks']));
    const pks = slots.map((s) => (s.Key as { pk: string }).pk);
    for (const api of ['acm-pca:IssueCertificate', 'iot:CreateThing', 'iot:RegisterCertificateWithoutCA']) {
      expect(pks.filter((pk) => pk === `rate#${api}`)).toHaveLength(3);
    }
  });

  it('retries ThrottlingException and TooManyRequestsException with jittered backoff, each retry on a new slot', async () => {
    const deps = depsWith(testPace());
    pcaMock.on(cmd(IssueCertificateCommand)).callsFake(throttleCalls(fakes.issue, 'ThrottlingException', 1, 2));
    iotMock
      .on(cmd(RegisterCertificateWithoutCACommand))
      .callsFake(throttleCalls(fakes.register, 'TooManyRequestsException', 1));
    iotMock.on(cmd(CreateThingCommand)).callsFake(throttleCalls(fakes.createThing, 'ThrottlingException', 2));
    iotMock.on(cmd(AttachPolicyCommand)).callsFake(throttleCalls(fakes.attachPolicy, 'TooManyRequestsException', 3));
    await createTask(deps);

    const out = await createChunk(deps)({ taskId: TASK, index: 0 });

    expect(out).toEqual({ index: 0, succeeded: 3, failed: 0 });
    // each throttled call took another slot for its retry
    expect(count('acm-pca:IssueCertificate')).toBe(5);
    expect(count('iot:RegisterCertificateWithoutCA')).toBe(4);
    expect(count('iot:CreateThing')).toBe(4);
    expect(count('iot:AttachPolicy')).toBe(4);
    expect(count('iot:AttachThingPrincipal')).toBe(3);
    // full jitter (random 0.5 × the first ceiling of 100 ms): each throttled call passed on its first retry
    expect(backoffs).toEqual([50, 50, 50, 50, 50]);
    // a retried IssueCertificate carries the same token: billed once per item
    expect(new Set(tokens())).toEqual(new Set(['task-1:0', 'task-1:1', 'task-1:2']));
    expect(issued.size).toBe(3);
    expectOneOfEach(readJson<Results>('bulkprovisioning/task-1/results/000000.json'));
  });

  it('throttling that outlasts the retries fails the chunk for the workflow; the replay finishes it, nothing twice', async () => {
    const deps = depsWith(testPace());
    // dev-1's certificate cannot get its policy attached: AWS IoT keeps throttling it (8 attempts)
    let dev1Cert: string | undefined;
    iotMock.on(cmd(AttachThingPrincipalCommand)).callsFake(async (input: { thingName: string; principal: string }) => {
      if (input.thingName === 'dev-1') dev1Cert = input.principal;
      return fakes.attachPrincipal(input);
    });
    iotMock.on(cmd(AttachPolicyCommand)).callsFake(async (input: { policyName: string; target: string }) => {
      if (input.target === dev1Cert) throw throttling('ThrottlingException');
      return fakes.attachPolicy(input);
    });
    await createTask(deps);

    await expect(createChunk(deps)({ taskId: TASK, index: 0 })).rejects.toMatchObject({
      name: 'ChunkIncompleteError',
      message: expect.stringContaining('item 1: ThrottlingException'),
    });
    expect(
      iotMock.commandCalls(cmd(AttachPolicyCommand)).filter((c) => c.args[0].input.target === dev1Cert),
    ).toHaveLength(8);
    expect(backoffs).toHaveLength(7);
    const billedBefore = issued.size;
    expect(billedBefore).toBe(3);

    // the workflow retries the chunk (a duplicate delivery); AWS IoT has recovered
    iotMock.on(cmd(AttachPolicyCommand)).callsFake(fakes.attachPolicy);
    pcaMock.resetHistory();
    iotMock.resetHistory();
    const replayPace = testPace();
    const out = await createChunk(depsWith(replayPace))({ taskId: TASK, index: 0 });

    expect(out).toEqual({ index: 0, succeeded: 3, failed: 0 });
    // only dev-1 ran again, from its saved key and certificate: ACM PCA was not asked again
    expect(pcaMock.commandCalls(cmd(IssueCertificateCommand))).toHaveLength(0);
    expect(issued.size).toBe(3);
    // registered already (ResourceAlreadyExistsException): DescribeCertificate answers the registration, paced as it
    expect(iotMock.commandCalls(cmd(RegisterCertificateWithoutCACommand))).toHaveLength(1);
    expect(count('iot:RegisterCertificateWithoutCA')).toBe(2);
    expect(registered.size).toBe(3);
    expect(iotMock).toHaveReceivedCommandWith(cmd(DescribeCertificateCommand), {
      certificateId: dev1Cert!.split('/').pop()!,
    });
    expect(things.get('dev-1')!.principals.size).toBe(1);
    expectOneOfEach(readJson<Results>('bulkprovisioning/task-1/results/000000.json'));
  });

  it('a chunk replayed after it died without saving results signs the same keys under the same tokens: billed once', async () => {
    const deps = depsWith(testPace());
    // dev-2's certificate is accepted by ACM PCA but its GetCertificate fails; then the chunk dies writing its outcome
    // (as a Lambda that times out: no partial results), so the replay knows nothing but the items' saved progress
    let gets = 0;
    pcaMock.on(cmd(GetCertificateCommand)).callsFake(async (input: { CertificateArn: string }) => {
      gets++;
      if (input.CertificateArn === issued.get('task-1:2')?.arn) {
        throw Object.assign(new Error('unavailable'), { name: 'ServiceUnavailableException', $metadata: {} });
      }
      return fakes.get(input);
    });
    s3Mock
      .on(cmd(PutObjectCommand), { Key: 'bulkprovisioning/task-1/partial/000000.json' })
      .rejects(Object.assign(new Error('InternalError'), { name: 'InternalError', $metadata: {} }));
    await createTask(deps);
    await expect(createChunk(deps)({ taskId: TASK, index: 0 })).rejects.toMatchObject({ name: 'InternalError' });
    expect(gets).toBeGreaterThanOrEqual(3);
    expect(bucket.has('bulkprovisioning/task-1/results/000000.json')).toBe(false);
    expect(issued.size).toBe(3);
    const firstTokens = tokens();
    // dev-2 stopped before its thing was created
    expect(Object.fromEntries([...things].map(([name, t]) => [name, t.creates]))).toEqual({ 'dev-0': 1, 'dev-1': 1 });

    // redelivered: S3 and ACM PCA have recovered
    installBucket(s3Mock, bucket);
    pcaMock.on(cmd(GetCertificateCommand)).callsFake(fakes.get);
    pcaMock.resetHistory();
    const out = await createChunk(depsWith(testPace()))({ taskId: TASK, index: 0 });

    expect(out).toEqual({ index: 0, succeeded: 3, failed: 0 });
    // dev-0 and dev-1 had their certificates saved: no ACM PCA call; dev-2 had its key saved: the same token again,
    // which ACM PCA answers with the certificate it issued the first time (for that same key)
    expect(tokens()).toEqual(['task-1:2']);
    expect(firstTokens).toContain('task-1:2');
    expect(issued.size).toBe(3);
    // the registrations the first attempt made are answered as they are, never a second certificate per thing
    expect(registered.size).toBe(3);
    for (const t of things.values()) expect(t.principals.size).toBe(1);
    // CreateThing of an existing thing with the same attributes is AWS IoT's no-op: still one thing each
    expect(Object.fromEntries([...things].map(([name, t]) => [name, t.creates]))).toEqual({
      'dev-0': 2,
      'dev-1': 2,
      'dev-2': 1,
    });
    const results = readJson<Results>('bulkprovisioning/task-1/results/000000.json');
    expectOneOfEach(results);
    const dev2 = results.succeeded.find((r) => r.thingName === 'dev-2')!;
    expect(dev2.certificatePem.startsWith(issued.get('task-1:2')!.pem)).toBe(true);
  });

  it('a token ACM PCA answers with a certificate for another key (a key that was lost) is never handed out', async () => {
    // an attempt whose saved progress is gone had item 0's token signed for its own key
    const lost = await makeCsr({ name: 'CN=dev-0' });
    await fakes.issue({ Csr: Buffer.from(lost.pem), IdempotencyToken: 'task-1:0' });
    const deps = depsWith(testPace());
    await createTask(deps);

    expect(await createChunk(deps)({ taskId: TASK, index: 0 })).toEqual({ index: 0, succeeded: 3, failed: 0 });

    // the shared signer saw a certificate for another key and issued under a token of this key's own
    const item0 = tokens().filter((t) => t !== 'task-1:1' && t !== 'task-1:2');
    expect(item0).toEqual(['task-1:0', expect.stringMatching(/^[0-9a-f]{36}$/)]);
    expect(issued.size).toBe(4);
    const results = readJson<Results>('bulkprovisioning/task-1/results/000000.json');
    expectOneOfEach(results);
    expect(results.succeeded[0]!.certificatePem.startsWith(issued.get('task-1:0')!.pem)).toBe(false);
  });

  it('a chunk delivered again after it completed calls neither AWS IoT nor ACM PCA', async () => {
    const deps = depsWith(testPace());
    await createTask(deps);
    await createChunk(deps)({ taskId: TASK, index: 0 });
    iotMock.resetHistory();
    pcaMock.resetHistory();
    const replayPace = testPace();
    expect(await createChunk(depsWith(replayPace))({ taskId: TASK, index: 0 })).toEqual({
      index: 0,
      succeeded: 3,
      failed: 0,
    });
    expect(iotMock.calls()).toHaveLength(0);
    expect(pcaMock.calls()).toHaveLength(0);
    expect(acquired).toEqual([]);
  });
});

describe('POST /things with ACM PCA on AWS, paced', () => {
  it('retries a throttled IssueCertificate on a new slot with the same token, derived from the caller’s CSR', async () => {
    const deps = depsWith(testPace());
    pcaMock.on(cmd(IssueCertificateCommand)).callsFake(throttleCalls(fakes.issue, 'TooManyRequestsException', 1));
    const csr = await makeCsr({ name: 'CN=dev-9' });
    const res = await createApi(deps)(
      apiEvent('POST', '/things', '/things', {
        body: {
          provisioningTemplateId: 'fleet',
          parameters: { ThingName: 'dev-9' },
          cdfProvisioningParameters: { acmpcaCaArn: PCA_ARN, csr: csr.pem, certInfo: { daysExpiry: 30 } },
        },
      }),
    );
    expect(res.statusCode).toBe(201);
    const token = csrIdempotencyToken(parseCsr(csr.pem));
    expect(tokens()).toEqual([token, token]);
    expect(issued.size).toBe(1);
    expect(count('acm-pca:IssueCertificate')).toBe(2);
    expect(backoffs).toEqual([50]);
    for (const api of ['iot:RegisterCertificateWithoutCA', 'iot:CreateThing', 'iot:AttachThingPrincipal'] as const) {
      expect(count(api)).toBe(1);
    }
  });
});
