/**
 * Bulk provisioning chunks with an in-memory object store and the local registry on dynalite (calls recorded): an item's own fault is its outcome, a fault
 * that may pass makes the chunk retry only the unsettled items, and a chunk that gives up keeps what it settled.
 */
import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import { createTableInput } from '../../../lambdas/adapters/aws/tables';
import { NotFoundError } from '../../../lambdas/core/errors';
import {
  ChunkIncompleteError,
  createBulkProvisioningTask,
  DEFAULT_BULK_PROVISIONING_CONFIG,
  finishProvisioning,
  getProvisioningTask,
  provisionChunk,
  type BulkProvisioningDeps,
} from '../../../lambdas/core/provisioning/bulk';
import { putTemplate } from '../../../lambdas/core/provisioning/service';
import { createRootCa, type CreatedCa } from '../../../lambdas/core/pki';
import type { DomainEvent, ObjectStore } from '../../../lambdas/core/ports';
import { LocalDeviceRegistry } from '../../../lambdas/adapters/local/local-device-registry';
import { REGISTRY_TABLE } from '../../../lambdas/adapters/local/local-device-registry';
import { startDynalite, type LocalDynamo } from '../../helpers/dynalite';
import { recording } from '../../helpers/recording-registry';

class MemoryObjectStore implements ObjectStore {
  readonly objects = new Map<string, Buffer>();
  async put(key: string, body: Buffer | string) {
    this.objects.set(key, Buffer.from(body));
  }
  async get(key: string) {
    const body = this.objects.get(key);
    if (!body) throw new NotFoundError('NOT_FOUND', key);
    return body;
  }
  async getRange(key: string, start: number, end: number) {
    return (await this.get(key)).subarray(start, end);
  }
  async getStream(key: string): Promise<AsyncIterable<Uint8Array>> {
    const body = await this.get(key);
    return (async function* () {
      yield body;
    })();
  }
  async head(key: string) {
    const body = this.objects.get(key);
    return body ? { size: body.length, metadata: {} } : undefined;
  }
  async compose(): Promise<{ size: number }> {
    throw new Error('not used');
  }
  async presignGet(key: string) {
    return `memory://${key}`;
  }
  async list(prefix: string) {
    return [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
  }
  async delete(keys: string[]) {
    for (const k of keys) this.objects.delete(k);
  }
}

const template = {
  Parameters: {
    ThingName: { Type: 'String' },
    CertificatePem: { Type: 'String' },
    CaCertificatePem: { Type: 'String' },
  },
  Resources: {
    thing: { Type: 'AWS::IoT::Thing', Properties: { ThingName: { Ref: 'ThingName' } } },
    certificate: {
      Type: 'AWS::IoT::Certificate',
      Properties: { CertificatePem: { Ref: 'CertificatePem' }, CACertificatePem: { Ref: 'CaCertificatePem' } },
    },
  },
  CDF: { createDeviceCertificate: true },
};

let ca: CreatedCa;
let dynamo: LocalDynamo;
let tables = 0;
beforeAll(async () => {
  ca = await createRootCa({ subject: { commonName: 'Bulk Test CA' }, validity: { days: 30 }, now: new Date() });
  dynamo = await startDynalite([]);
});
afterAll(async () => {
  await dynamo?.close();
});

async function setup(items: Record<string, string>[]) {
  const objects = new MemoryObjectStore();
  const tableName = `registry-${++tables}`;
  await dynamo.client.send(new CreateTableCommand(createTableInput({ ...REGISTRY_TABLE, tableName })));
  const local = new LocalDeviceRegistry(dynamo.client, { tableName });
  const { registry: recorded, calls, failNext } = recording(local);
  const registry = { local, calls, failNext };
  const events: DomainEvent[] = [];
  const started: string[] = [];
  const deps: BulkProvisioningDeps = {
    objects,
    registry: recorded,
    caKeys: { load: async (caId) => ({ caId, issuer: ca.issuer, chain: [ca.certificate] }) },
    events: { publish: async (batch) => void events.push(...batch) },
    clock: { now: () => new Date() },
    aliases: { pca: {}, ca: {} },
    defaultDaysExpiry: 10,
    workflows: { start: async (_w, name) => void started.push(name) },
    newId: () => 'task-1',
    bulk: { ...DEFAULT_BULK_PROVISIONING_CONFIG, chunkSize: 4, itemConcurrency: 1 },
  };
  await putTemplate(deps, 'tpl', template);
  await createBulkProvisioningTask(deps, {
    provisioningTemplateId: 'tpl',
    parameters: items,
    cdfProvisioningParameters: { caId: ca.certificate.id, certInfo: {} },
  });
  return { deps, objects, registry, events, started };
}

describe('provisionChunk', () => {
  it('retries only the items a passing fault stopped; the others are not provisioned twice', async () => {
    const items = ['a', 'b', 'c', 'd'].map((n) => ({ ThingName: `t-${n}` }));
    const { deps, registry, events, started } = await setup(items);
    expect(started).toEqual(['task-1']);
    registry.failNext.set('createThing', Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    await expect(provisionChunk(deps, { taskId: 'task-1', index: 0 })).rejects.toBeInstanceOf(ChunkIncompleteError);
    expect(events).toHaveLength(3);
    const second = await provisionChunk(deps, { taskId: 'task-1', index: 0 });
    expect(second).toEqual({ index: 0, succeeded: 4, failed: 0 });
    // one more thing: only the item the throttling stopped
    expect(events).toHaveLength(4);
    expect(registry.calls.filter((c) => c.startsWith('createThing')).length).toBe(5);
    for (const name of ['t-a', 't-b', 't-c', 't-d']) expect(await registry.local.describeThing(name)).toBeDefined();
    // and no other thing was ever created
    const created = registry.calls
      .filter((c) => c.startsWith('createThing'))
      .map((c) => /"thingName":"([^"]+)"/.exec(c)?.[1]);
    expect([...new Set(created)].sort()).toEqual(['t-a', 't-b', 't-c', 't-d']);
    // a replayed iteration after success changes nothing
    expect(await provisionChunk(deps, { taskId: 'task-1', index: 0 })).toEqual(second);
    expect(events).toHaveLength(4);
  });

  it('records an item’s own fault as its outcome and finishes the chunk', async () => {
    const { deps } = await setup([{ ThingName: 'ok-1' }, { ThingName: 'bad name' }, {}]);
    expect(await provisionChunk(deps, { taskId: 'task-1', index: 0 })).toEqual({ index: 0, succeeded: 1, failed: 2 });
    await finishProvisioning(deps, { taskId: 'task-1', chunkResults: [{ index: 0 }] });
    const task = await getProvisioningTask(deps, 'task-1');
    expect(task).toMatchObject({ status: 'complete', succeeded: 1, failed: 2 });
    expect(task.errors!.map((e) => [e.index, e.code])).toEqual([
      [1, 'INVALID_PROPERTY'],
      [2, 'MISSING_PARAMETER'],
    ]);
  });
});

describe('finishProvisioning', () => {
  it('keeps what a chunk settled before it gave up; its other items are CHUNK_FAILED', async () => {
    const items = ['a', 'b', 'c', 'd', 'e'].map((n) => ({ ThingName: `t-${n}` }));
    const { deps, registry, objects } = await setup(items);
    await provisionChunk(deps, { taskId: 'task-1', index: 1 });
    // saved progress of an item (a key certflow made before ACM PCA signed it) is deleted with the partial results
    await objects.put('bulkprovisioning/task-1/progress/000000/000001.json', '{"privateKeyPem":"…"}');
    registry.failNext.set(
      'createThing',
      Object.assign(new Error('Service unavailable'), { name: 'ServiceUnavailable' }),
    );
    await expect(provisionChunk(deps, { taskId: 'task-1', index: 0 })).rejects.toThrow(/1 item\(s\) of chunk 0/);
    await expect(objects.list('bulkprovisioning/task-1/partial/')).resolves.toHaveLength(1);
    const summary = await finishProvisioning(deps, {
      taskId: 'task-1',
      chunkResults: [
        { index: 0, failed: true, error: { Error: 'ChunkIncompleteError', Cause: '{"errorMessage":"gave up"}' } },
        { index: 1 },
      ],
    });
    expect(summary).toEqual({ taskId: 'task-1', succeeded: 4, failed: 1 });
    const task = await getProvisioningTask(deps, 'task-1');
    expect(task.errors).toEqual([{ index: 0, code: 'CHUNK_FAILED', message: 'ChunkIncompleteError: gave up' }]);
    const left = await objects.list('bulkprovisioning/task-1/');
    expect(left.filter((k) => /\/(progress|partial)\//.test(k))).toEqual([]);
    expect(left.filter((k) => k.includes('/results/'))).toHaveLength(1); // what the user downloads stays
  });
});
