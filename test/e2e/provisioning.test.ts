/**
 * Device provisioning end to end on the local runtime: templates uploaded and listed, single things provisioned
 * with each certificate extension, bulk provisioning of 1,000 things with bad parameter sets and a failed chunk.
 * Every returned certificate is checked by openssl.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EVENT_SCHEMAS } from '../../lambdas/core/events';
import type { DomainEvent } from '../../lambdas/core/ports';
import { connect as mqttConnect } from 'mqtt';
import { startLocal, type LocalCertflow } from '../../local/certflow';
import { startMqttBroker } from '../../local/runtime/mqtt-broker';
import { openssl, scratch } from '../helpers/openssl';

jest.setTimeout(240_000);

const dir = mkdtempSync(join(tmpdir(), 'certflow-provisioning-e2e-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const files = scratch();
afterAll(() => files.cleanup());

const failChunkOf = new Set<string>();
let cf: LocalCertflow;
const events: DomainEvent[] = [];
let chainFile: string;

beforeAll(async () => {
  cf = await startLocal({
    dataDir: join(dir, 'data'),
    port: 0,
    workers: 1,
    retryIntervalMs: 0,
    expirySweepIntervalMs: 0,
    provisioning: {
      bulk: { chunkSize: 100, maxConcurrency: 4, itemConcurrency: 8 },
      beforeChunk: ({ taskId, index }) => {
        if (failChunkOf.has(taskId) && index === 1) throw new Error('injected chunk failure');
      },
    },
  });
  const publish = cf.bus.publish.bind(cf.bus);
  cf.bus.publish = async (batch) => {
    events.push(...batch);
    return publish(batch);
  };
  const root = await cf.caDeps.cas.get(cf.bootstrap.rootCaId);
  const issuing = await cf.caDeps.cas.get(cf.bootstrap.issuingCaId);
  chainFile = files.write('chain.pem', `${issuing!.certificatePem}${root!.certificatePem}`);
});
afterAll(async () => cf?.close());

async function call<T = Record<string, unknown>>(method: string, path: string, body?: unknown) {
  const res = await fetch(`${cf.url}${path}`, {
    method,
    headers: body !== undefined ? { 'content-type': 'application/json' } : {},
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) as T, headers: res.headers };
}

const policyDocument = {
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: ['iot:Connect', 'iot:Publish'], Resource: ['*'] }],
};

/** CDF style: certflow makes the key and certificate, the template registers it with the CA. */
const createCertTemplate = {
  Parameters: {
    ThingName: { Type: 'String' },
    SerialNumber: { Type: 'String' },
    Site: { Type: 'String', Default: 'berlin' },
    CertificatePem: { Type: 'String' },
    CaCertificatePem: { Type: 'String' },
  },
  Mappings: { Sites: { berlin: { group: 'eu-central' }, austin: { group: 'us-south' } } },
  Resources: {
    thing: {
      Type: 'AWS::IoT::Thing',
      Properties: {
        ThingName: { Ref: 'ThingName' },
        AttributePayload: { serial: { Ref: 'SerialNumber' }, site: { Ref: 'Site' } },
        ThingGroups: [{ 'Fn::FindInMap': ['Sites', { Ref: 'Site' }, 'group'] }],
      },
    },
    certificate: {
      Type: 'AWS::IoT::Certificate',
      Properties: {
        CertificatePem: { Ref: 'CertificatePem' },
        CACertificatePem: { Ref: 'CaCertificatePem' },
        Status: 'ACTIVE',
      },
    },
    policy: {
      Type: 'AWS::IoT::Policy',
      Properties: { PolicyName: 'fleet-basic', PolicyDocument: JSON.stringify(policyDocument) },
    },
  },
  CDF: {
    createDeviceCertificate: true,
    attachAdditionalPolicies: [{ name: 'telemetry', document: policyDocument }],
    thingGroups: ['provisioned'],
  },
};

async function verify(pems: string[]): Promise<void> {
  const paths = pems.map((pem, i) => files.write(`leaf-${i}-${Math.random().toString(36).slice(2)}.pem`, pem));
  const result = await openssl(['verify', '-CAfile', chainFile, ...paths]);
  expect(result.code).toBe(0);
  expect(result.stdout.trim().split('\n')).toHaveLength(pems.length);
  expect(
    result.stdout
      .trim()
      .split('\n')
      .every((l) => l.endsWith(': OK')),
  ).toBe(true);
}

async function publicKeyOf(pem: string, kind: 'cert' | 'key'): Promise<string> {
  const args = kind === 'cert' ? ['x509', '-noout', '-pubkey'] : ['pkey', '-pubout'];
  return (await openssl(args, pem)).stdout;
}

describe('templates API', () => {
  it('stores a valid template (201, then 200 on replace), lists and returns it', async () => {
    const put = await call('PUT', '/templates/factory-line', createCertTemplate);
    expect(put.status).toBe(201);
    expect(put.body).toMatchObject({
      templateId: 'factory-line',
      resources: { thing: 'AWS::IoT::Thing', certificate: 'AWS::IoT::Certificate', policy: 'AWS::IoT::Policy' },
      cdf: ['createDeviceCertificate', 'attachAdditionalPolicies', 'thingGroups'],
    });
    expect((await call('PUT', '/templates/factory-line', createCertTemplate)).status).toBe(200);
    expect((await call('GET', '/templates/factory-line')).body).toEqual(createCertTemplate);
    expect((await call('GET', '/templates')).body).toEqual({ templates: [{ templateId: 'factory-line' }] });
  });

  it('refuses a bad template with 400, its code and the JSON path of the fault, and stores nothing', async () => {
    const cyclic = {
      Resources: {
        thing: { Type: 'AWS::IoT::Thing', Properties: { ThingName: { 'Fn::Sub': 't-${policy}' } } },
        policy: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: { Ref: 'thing' } } },
      },
    };
    const res = await call('PUT', '/templates/cyclic', cyclic);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({
      code: 'REFERENCE_CYCLE',
      details: { path: 'Resources.policy.Properties.PolicyName.Ref' },
    });
    const unknown = await call('PUT', '/templates/widget', {
      Resources: { w: { Type: 'AWS::IoT::Widget', Properties: {} } },
    });
    expect(unknown.body).toMatchObject({ code: 'UNKNOWN_RESOURCE_TYPE', details: { path: 'Resources.w.Type' } });
    expect((await call('GET', '/templates/cyclic')).status).toBe(404);
    expect((await call('GET', '/templates/no-such')).body).toMatchObject({ code: 'TEMPLATE_NOT_FOUND' });
  });
});

let sensor: Record<string, string> | undefined;

describe('POST /things', () => {
  it('creates thing, certificate (certflow CA), policies and groups; returns the key once; emits Certificate Issued', async () => {
    const before = events.length;
    const res = await call<Record<string, string> & { resourceArns: Record<string, string> }>('POST', '/things', {
      provisioningTemplateId: 'factory-line',
      parameters: { ThingName: 'sensor-0001', SerialNumber: 'SN-1' },
      cdfProvisioningParameters: {
        caId: cf.bootstrap.issuingCaId,
        certInfo: { organization: 'Acme', country: 'DE', daysExpiry: 90 },
      },
    });
    expect(res.status).toBe(201);
    const body = res.body;
    expect(body.thingName).toBe('sensor-0001');
    expect(body.resourceArns).toEqual({
      thing: 'arn:aws:iot:local:000000000000:thing/sensor-0001',
      certificate: `arn:aws:iot:local:000000000000:cert/${body.certificateId}`,
      policy: 'arn:aws:iot:local:000000000000:policy/fleet-basic',
    });
    await verify([body.certificatePem!]);
    const text = (
      await openssl(['x509', '-noout', '-subject', '-enddate', '-ext', 'extendedKeyUsage'], body.certificatePem)
    ).stdout;
    expect(text).toMatch(/subject=C ?= ?DE, O ?= ?Acme, CN ?= ?sensor-0001/);
    expect(text).toContain('TLS Web Client Authentication');
    expect(await publicKeyOf(body.privateKey!, 'key')).toBe(await publicKeyOf(body.certificatePem!, 'cert'));
    expect(body.publicKey).toContain('BEGIN PUBLIC KEY');

    const thing = await cf.registry.describeThing('sensor-0001');
    expect(thing?.attributes).toEqual({ serial: 'SN-1', site: 'berlin' });
    expect((await cf.registry.listThingGroupsForThing('sensor-0001')).sort()).toEqual(['eu-central', 'provisioned']);
    expect(await cf.registry.listThingPrincipals('sensor-0001')).toEqual([body.resourceArns.certificate]);
    const policies = await cf.registry.listAttachedPolicies(body.resourceArns.certificate!);
    expect(policies.sort()).toEqual(['fleet-basic', expect.stringMatching(/^telemetry_[0-9a-f]{8}$/)]);
    expect(await cf.registry.describeCertificate(body.certificateId!)).toMatchObject({
      status: 'ACTIVE',
      caCertificateId: cf.bootstrap.issuingCaId,
    });

    const issued = events.slice(before).filter((e) => e.detailType === 'Certificate Issued');
    expect(issued).toHaveLength(1);
    expect(EVENT_SCHEMAS['Certificate Issued'].parse(issued[0]!.detail)).toMatchObject({
      origin: 'provisioning',
      issuerId: cf.bootstrap.issuingCaId,
      thingName: 'sensor-0001',
      certificates: [{ certificateId: body.certificateId }],
    });
    expect(JSON.stringify(events)).not.toContain('PRIVATE KEY');
    sensor = body;
  });

  it('the provisioned device connects over mutual TLS to the local broker with the returned certificate', async () => {
    const server = await call<Record<string, string>>('POST', '/certificates/server', {
      issuerId: cf.bootstrap.issuingCaId,
      fqdn: 'localhost',
      sans: { ip: ['127.0.0.1'] },
    });
    const root = (await cf.caDeps.cas.get(cf.bootstrap.rootCaId))!.certificatePem;
    const issuing = (await cf.caDeps.cas.get(cf.bootstrap.issuingCaId))!.certificatePem;
    const broker = await startMqttBroker({
      port: 0,
      serverCertificatePem: server.body.certificatePem! + server.body.chainPem!,
      serverKeyPem: server.body.privateKeyPem!,
      trustedCas: [root, issuing],
      registry: cf.registry,
    });
    const attempt = (clientId: string) =>
      new Promise<string>((resolve) => {
        const c = mqttConnect(broker.url, {
          clientId,
          key: sensor!.privateKey,
          cert: sensor!.certificatePem,
          ca: root,
          reconnectPeriod: 0,
          connectTimeout: 5_000,
        });
        c.once('connect', () => {
          c.publish(`cdf/certificates/${clientId}/hello`, '{}', { qos: 1 }, (error) => {
            resolve(error ? `publish failed: ${error.message}` : 'connected');
            void c.endAsync();
          });
        });
        c.once('error', (error) => resolve(error.message));
        c.once('close', () => resolve('closed'));
      });
    try {
      expect(sensor).toBeDefined();
      expect(await attempt('sensor-0001')).toBe('connected');
      // the certificate is attached to sensor-0001 only
      expect(await attempt('sensor-9999')).not.toBe('connected');
    } finally {
      await broker.close();
    }
  });

  it('answers 400 with the path for a missing parameter, before any certificate is made', async () => {
    const before = events.length;
    const res = await call('POST', '/things', {
      provisioningTemplateId: 'factory-line',
      parameters: { ThingName: 'sensor-0002' },
      cdfProvisioningParameters: { caId: cf.bootstrap.issuingCaId, certInfo: {} },
    });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'MISSING_PARAMETER', details: { path: 'Parameters.SerialNumber' } });
    expect(events.length).toBe(before);
    expect(await cf.registry.describeThing('sensor-0002')).toBeUndefined();
  });

  it('answers 400 for bad cdfProvisioningParameters and 404 for an unknown template', async () => {
    const res = await call('POST', '/things', {
      provisioningTemplateId: 'factory-line',
      parameters: { ThingName: 'sensor-0003', SerialNumber: 'x' },
      cdfProvisioningParameters: { caId: 'nope', certInfo: {} },
    });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'INVALID_REQUEST', details: { field: 'cdfProvisioningParameters.caId' } });
    expect((await call('POST', '/things', { provisioningTemplateId: 'missing', parameters: {} })).status).toBe(404);
  });

  it('registers a certificate made elsewhere without a CA (registerDeviceCertificateWithoutCA)', async () => {
    const template = {
      Parameters: { ThingName: { Type: 'String' }, CertificateId: { Type: 'String' } },
      Resources: {
        thing: { Type: 'AWS::IoT::Thing', Properties: { ThingName: { Ref: 'ThingName' } } },
        certificate: { Type: 'AWS::IoT::Certificate', Properties: { CertificateId: { Ref: 'CertificateId' } } },
      },
      CDF: { registerDeviceCertificateWithoutCA: true },
    };
    expect((await call('PUT', '/templates/byo-cert', template)).status).toBe(201);
    const key = files.write(
      'byo.key',
      (await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'])).stdout,
    );
    const pem = (await openssl(['req', '-new', '-x509', '-key', key, '-subj', '/CN=byo-1', '-days', '30'])).stdout;
    const res = await call<Record<string, string>>('POST', '/things', {
      provisioningTemplateId: 'byo-cert',
      parameters: { ThingName: 'byo-1' },
      cdfProvisioningParameters: { certificatePem: pem, certificateStatus: 'INACTIVE' },
    });
    expect(res.status).toBe(201);
    expect(res.body.privateKey).toBeUndefined();
    expect(res.body.certificatePem).toBe(pem);
    expect(await cf.registry.describeCertificate(res.body.certificateId!)).toMatchObject({ status: 'INACTIVE' });
    expect(await cf.registry.listThingPrincipals('byo-1')).toHaveLength(1);
  });

  it('signs a template CSR (AWS fleet-provisioning style) with the local issuing CA', async () => {
    const template = {
      Parameters: { SerialNumber: { Type: 'String' }, CSR: { Type: 'String' } },
      Conditions: {
        Lab: { 'Fn::Equals': [{ 'Fn::Select': [0, { 'Fn::Split': ['-', { Ref: 'SerialNumber' }] }] }, 'LAB'] },
      },
      Resources: {
        thing: {
          Type: 'AWS::IoT::Thing',
          Properties: {
            ThingName: { 'Fn::Join': ['', ['bulb-', { Ref: 'SerialNumber' }]] },
            ThingGroups: [{ 'Fn::If': ['Lab', 'lab', 'field'] }],
          },
        },
        certificate: { Type: 'AWS::IoT::Certificate', Properties: { CertificateSigningRequest: { Ref: 'CSR' } } },
      },
    };
    expect((await call('PUT', '/templates/fleet', template)).status).toBe(201);
    const key = files.write(
      'csr.key',
      (await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'])).stdout,
    );
    const csr = (await openssl(['req', '-new', '-key', key, '-subj', '/CN=bulb-LAB-7'])).stdout;
    const res = await call<Record<string, string>>('POST', '/things', {
      provisioningTemplateId: 'fleet',
      parameters: { SerialNumber: 'LAB-7', CSR: csr },
    });
    expect(res.status).toBe(201);
    expect(res.body.thingName).toBe('bulb-LAB-7');
    expect(res.body.privateKey).toBeUndefined();
    await verify([res.body.certificatePem!]);
    expect(await publicKeyOf(res.body.certificatePem!, 'cert')).toBe(
      (await openssl(['pkey', '-pubout', '-in', key])).stdout,
    );
    expect(await cf.registry.listThingGroupsForThing('bulb-LAB-7')).toEqual(['lab']);
  });
});

interface TaskView {
  status: string;
  total: number;
  succeeded?: number;
  failed?: number;
  chunksDone: number;
  errors?: { index: number; code: string; path?: string }[];
  results: { chunk: number; url: string }[];
}

async function waitForTask(taskId: string): Promise<TaskView> {
  for (;;) {
    const view = (await call<TaskView>('GET', `/bulkprovisioningtasks/${taskId}`)).body;
    if (view.status === 'complete' || view.status === 'failed') return view;
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('bulk provisioning', () => {
  it('provisions 1,000 things; bad parameter sets are per-item errors and every other thing is provisioned', async () => {
    const bad = new Map([
      [17, { ThingName: 'bulk-bad-17' }], // no SerialNumber
      [250, { ThingName: 'has spaces', SerialNumber: 's' }],
      [999, { ThingName: 'bulk-bad-999', SerialNumber: 's', Site: 'mars' }],
    ]);
    const parameters = Array.from(
      { length: 1000 },
      (_, i) => bad.get(i) ?? { ThingName: `bulk-${i}`, SerialNumber: `S${i}` },
    );
    const started = Date.now();
    const res = await call<{ taskId: string; status: string; total: number }>('POST', '/bulkprovisioningtasks', {
      provisioningTemplateId: 'factory-line',
      parameters,
      cdfProvisioningParameters: { caId: cf.bootstrap.issuingCaId, certInfo: { organization: 'Acme' } },
    });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ status: 'pending', total: 1000 });
    const view = await waitForTask(res.body.taskId);
    const seconds = (Date.now() - started) / 1000;
    console.log(`bulk provisioning: 1,000 things in ${seconds.toFixed(1)} s`);
    expect(view).toMatchObject({ status: 'complete', total: 1000, succeeded: 997, failed: 3, chunksDone: 10 });
    expect(view.errors!.map((e) => [e.index, e.code, e.path])).toEqual([
      [17, 'MISSING_PARAMETER', 'Parameters.SerialNumber'],
      [250, 'INVALID_PROPERTY', 'Resources.thing.Properties.ThingName'],
      [999, 'MAPPING_KEY_NOT_FOUND', 'Resources.thing.Properties.ThingGroups[0].Fn::FindInMap[1]'],
    ]);
    const items: { index: number; thingName: string; certificatePem: string; privateKey: string }[] = [];
    for (const r of view.results) {
      items.push(...((await (await fetch(r.url)).json()) as { succeeded: typeof items }).succeeded);
    }
    expect(items).toHaveLength(997);
    expect(new Set(items.map((i) => i.thingName)).size).toBe(997);
    await verify(items.map((i) => i.certificatePem));
    for (const item of [items[0]!, items[500]!, items[996]!]) {
      expect(await publicKeyOf(item.privateKey, 'key')).toBe(await publicKeyOf(item.certificatePem, 'cert'));
      expect(await cf.registry.listThingPrincipals(item.thingName)).toHaveLength(1);
    }
    expect(await cf.registry.describeThing('bulk-bad-17')).toBeUndefined();
  });

  it('a chunk that fails as a whole lists its items as errors; the other chunks keep their things', async () => {
    const parameters = Array.from({ length: 250 }, (_, i) => ({ ThingName: `partial-${i}`, SerialNumber: `P${i}` }));
    const original = cf.provisioningRunner.start.bind(cf.provisioningRunner);
    cf.provisioningRunner.start = (name, input) => {
      failChunkOf.add(name);
      return original(name, input);
    };
    const res = await call<{ taskId: string }>('POST', '/bulkprovisioningtasks', {
      provisioningTemplateId: 'factory-line',
      parameters,
      cdfProvisioningParameters: { caId: cf.bootstrap.issuingCaId, certInfo: {} },
    });
    cf.provisioningRunner.start = original;
    const view = await waitForTask(res.body.taskId);
    expect(view).toMatchObject({ status: 'complete', total: 250, succeeded: 150, failed: 100, chunksDone: 2 });
    expect(view.errors!.map((e) => e.index)).toEqual(Array.from({ length: 100 }, (_, i) => 100 + i));
    expect(view.errors!.every((e) => e.code === 'CHUNK_FAILED')).toBe(true);
    expect(await cf.registry.describeThing('partial-0')).toBeDefined();
    expect(await cf.registry.describeThing('partial-249')).toBeDefined();
    expect(await cf.registry.describeThing('partial-100')).toBeUndefined();
  });

  it('answers 404 for an unknown task and 400 for a body without parameter sets', async () => {
    expect((await call('GET', '/bulkprovisioningtasks/no-such-task')).body).toMatchObject({ code: 'TASK_NOT_FOUND' });
    const res = await call('POST', '/bulkprovisioningtasks', {
      provisioningTemplateId: 'factory-line',
      parameters: [],
    });
    expect(res.status).toBe(400);
  });
});

describe('bulk provisioning across a restart', () => {
  it('resumes a task the runtime stopped in the middle of: the chunks done are kept, the others provisioned', async () => {
    const dataDir = join(dir, 'restart');
    const options = { dataDir, port: 0, workers: 1, retryIntervalMs: 0, expirySweepIntervalMs: 0 };
    const first = await startLocal({
      ...options,
      provisioning: {
        bulk: { chunkSize: 10, maxConcurrency: 3 },
        // chunk 1 never finishes in the first runtime
        beforeChunk: ({ index }) => (index === 1 ? new Promise<void>(() => undefined) : undefined),
      },
    });
    let taskId: string;
    const thingNames = Array.from({ length: 30 }, (_, i) => `restart-${i}`);
    try {
      const put = await fetch(`${first.url}/templates/factory-line`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(createCertTemplate),
      });
      expect(put.status).toBe(201);
      const res = await fetch(`${first.url}/bulkprovisioningtasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          provisioningTemplateId: 'factory-line',
          parameters: thingNames.map((ThingName) => ({ ThingName, SerialNumber: ThingName })),
          cdfProvisioningParameters: { caId: first.bootstrap.issuingCaId, certInfo: {} },
        }),
      });
      taskId = ((await res.json()) as { taskId: string }).taskId;
      for (;;) {
        const view = (await (await fetch(`${first.url}/bulkprovisioningtasks/${taskId}`)).json()) as TaskView;
        if (view.chunksDone === 2) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      // chunk 1 never returns: close() abandons it instead of waiting for it
      const closing = Date.now();
      await first.close();
      expect(Date.now() - closing).toBeLessThan(5_000);
    }
    expect(first.provisioningRunner.describe(taskId)).toMatchObject({ status: 'ABORTED', error: 'RuntimeStopped' });
    const second = await startLocal(options);
    try {
      expect(second.resumed).toContain(taskId);
      let view: TaskView;
      for (;;) {
        view = (await (await fetch(`${second.url}/bulkprovisioningtasks/${taskId}`)).json()) as TaskView;
        if (view.status === 'complete') break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(view).toMatchObject({ total: 30, succeeded: 30, failed: 0, chunksDone: 3 });
      for (const name of thingNames) expect(await second.registry.listThingPrincipals(name)).toHaveLength(1);
    } finally {
      await second.close();
    }
  });
});
