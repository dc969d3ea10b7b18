/**
 * The local runtime: certflow on one machine, offline. The same ASL file and the same handlers as on AWS, with
 * dynalite for tables, s3rver for objects (both on disk under the data directory, reached with the ordinary
 * AWS SDK clients), an in-process event bus, worker threads for signing, and an HTTP server on 127.0.0.1.
 */
import './runtime/polyfills';
// The local runtime runs on the machine's Node (20 here); Lambda runs 22. The SDK's notice about Node 20 support
// ending in 2027 is for deployments, not for this offline runtime.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
import { UpdateItemCommand, type UpdateItemCommandInput } from '@aws-sdk/client-dynamodb';
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { DynamoTaskStore } from '../lambdas/adapters/aws/dynamo-task-store';
import { EnvSupplierDirectory } from '../lambdas/adapters/aws/env-supplier-directory';
import { S3ObjectStore } from '../lambdas/adapters/aws/s3-object-store';
import { CA_TABLE, TASK_TABLE } from '../lambdas/adapters/aws/tables';
import { DynamoCaStore } from '../lambdas/adapters/aws/dynamo-ca-store';
import { LevelInventory } from '../lambdas/adapters/local/level-inventory';
import { REVOKE_ISSUED_WORKFLOW, type CaDeps } from '../lambdas/core/ca/service';
import { INVENTORY_RULE_PATTERN, REGISTRY_REVOCATION_RULE_PATTERN } from '../lambdas/core/events';
import { createHandler as createRevokeIssued } from '../lambdas/handlers/sfn-revoke-issued';
import { createCaRoutes } from '../lambdas/handlers/api-cas';
import { API_ROUTES } from '../lambdas/handlers/routes';
import type { Route } from '../lambdas/handlers/http';
import { openApiDocument } from '../lambdas/handlers/openapi';
import { createHandler as createRecordInventory } from '../lambdas/handlers/sfn-record-inventory';
import { createHandler as createRevokeInRegistry } from '../lambdas/handlers/sfn-revoke-in-registry';
import { createHandler as createExpirySweep } from '../lambdas/handlers/sfn-expiry-sweep';
import { FileCaKeyStore } from '../lambdas/adapters/local/file-ca-key-store';
import {
  LOCAL_IOT_ACCOUNT,
  LOCAL_IOT_REGION,
  LocalDeviceRegistry,
  REGISTRY_TABLE,
} from '../lambdas/adapters/local/local-device-registry';
import { LOCAL_API_RATES } from '../lambdas/adapters/local/memory-rate-limiter';
import { LocalEventBus } from '../lambdas/adapters/local/local-event-bus';
import { DEFAULT_BULK_CONFIG, type BulkConfig } from '../lambdas/core/bulk/request';
import { BULK_WORKFLOW, type BatchDeps } from '../lambdas/core/bulk/service';
import { systemClock, type Clock } from '../lambdas/core/ports';
import { createHandler as createBulkApi } from '../lambdas/handlers/api-bulk-certificates';
import { createHandler as createAssemble } from '../lambdas/handlers/sfn-assemble-zip';
import { createHandler as createIssueChunk } from '../lambdas/handlers/sfn-issue-chunk';
import type { BuiltChunk } from '../lambdas/core/bulk/chunk-builder';
import { createHandler as createPlan } from '../lambdas/handlers/sfn-plan-chunks';
import { createHandler as createRecordFailure } from '../lambdas/handlers/sfn-record-batch-failure';
import { createHandler as createDeleteChunkFiles } from '../lambdas/handlers/sfn-delete-chunk-files';
import {
  DEFAULT_ROTATION_DEVICE_POLICY_NAME,
  rotationDevicePolicyDocument,
} from '../lambdas/core/rotation/device-policy';
import { DEFAULT_ROTATION_CONFIG, type RotationConfig, type RotationDeps } from '../lambdas/core/rotation/service';
import { CaKeyStoreCsrSigner } from '../lambdas/core/signing/csr-signer';
import { rotationTopics } from '../lambdas/core/rotation/topics';
import { createHandler as createRotationAck } from '../lambdas/handlers/sfn-rotation-ack';
import { createHandler as createRotationApprove } from '../lambdas/handlers/sfn-rotation-approve';
import { createHandler as createRotationReply } from '../lambdas/handlers/sfn-rotation-reply';
import { createHandler as createRotationRollback } from '../lambdas/handlers/sfn-rotation-rollback';
import { createHandler as createRotationVend } from '../lambdas/handlers/sfn-rotation-vend';
import { bootstrap, brokerCredentials, readSuppliers, type BootstrapResult } from './bootstrap';
import type { ChunkWorkerData } from './chunk-worker';
import { createConsoleHandler } from './console-server';
import { startHttpServer } from './http-server';
import { createLocalDynamoDbClient, ensureTable, startDynamoDb } from './runtime/dynamodb-server';
import { importDynaliteInventory } from './runtime/inventory-import';
import { startMqttBroker, type MqttBroker } from './runtime/mqtt-broker';
import { createLocalS3Client, ensureBucket, startS3 } from './runtime/s3-server';
import { topicRuleDispatcher } from './runtime/topic-rules';
import { StateMachineRunner } from './runtime/state-machine-runner';
import { WorkerPool } from './worker-pool';
import { localProvisioning, type LocalProvisioningOptions } from './provisioning';

/** compose()'s part size on s3rver (S3 itself: 8 MiB, see S3ObjectStore) */
const LOCAL_PART_SIZE = 1024 * 1024;
export const STATE_MACHINES_DIR = resolve(__dirname, '..', 'statemachines');
export const LOCAL_BUCKET = 'certflow-local';
export { INVENTORY_RULE_PATTERN };
const lambdaArn = (name: string): string => `arn:aws:lambda:us-east-1:000000000000:function:${name}`;

export interface LocalOptions {
  /** where tables, objects and CA keys live (default ./.certflow) */
  dataDir?: string;
  /** HTTP port on 127.0.0.1; 0 picks a free one (default 4010) */
  port?: number;
  /** signing threads (default: every core) */
  workers?: number;
  bulk?: Partial<BulkConfig>;
  zipLevel?: number;
  /** ms between retries instead of the ASL's backoff (tests) */
  retryIntervalMs?: number;
  clock?: Clock;
  /** Certificate Expiring for certificates expiring within this many days (default 30) */
  expiryWindowDays?: number;
  /** certificates a CA revocation handles in the request before its workflow takes over (default 2,000) */
  revokeSliceSize?: number;
  /** how often the expiry sweep runs (default hourly; 0: only on demand) */
  expirySweepIntervalMs?: number;
  /**
   * MQTT (mutual TLS) port on 127.0.0.1; 0 picks a free one. Default: MQTT_PORT, else 8883 — but a free one when
   * `port` is 0 (tests, the CLI's embedded runtime), so that several runtimes can run side by side.
   */
  mqttPort?: number;
  /** rotation settings (default: CDF's, signing with the development issuing CA) */
  rotation?: Partial<RotationConfig>;
  /** called before each chunk is signed; throwing fails that chunk (fault injection in tests) */
  beforeChunk?: (input: { taskId: string; index: number }) => void | Promise<void>;
  /** device provisioning: bulk chunk sizes, fault injection */
  provisioning?: LocalProvisioningOptions;
  /**
   * V8's heap growing factor for the process, as 100 × (factor - 1): 50 (the default) lets the old generation grow
   * to 1.5 × what the last full collection kept before the next one; 0 leaves V8's own, adaptive factor (up to 4 ×).
   * See docs/benchmarks.md: the main thread here holds ~60 MB live, and V8's factor let a large batch's garbage
   * grow its heap to ~180–230 MB; at 50 the whole runtime peaks ~100 MB lower for a few % more CPU.
   */
  heapGrowingPercent?: number;
}

/** LocalOptions.heapGrowingPercent's default. */
export const LOCAL_HEAP_GROWING_PERCENT = 50;

export interface LocalCertflow {
  url: string;
  dataDir: string;
  bootstrap: BootstrapResult;
  bus: LocalEventBus;
  runner: StateMachineRunner;
  batchDeps: BatchDeps;
  caKeys: FileCaKeyStore;
  caDeps: CaDeps;
  /**
   * the local device registry (things, certificates, policies, thing groups); also the rotation thing group, which
   * a compromise response fills with the things whose certificates it revoked
   */
  registry: LocalDeviceRegistry;
  /** the MQTT broker, `mqtts://127.0.0.1:<port>` (mutual TLS with certflow device certificates) */
  mqttUrl: string;
  broker: MqttBroker;
  /** the rotation workflows the broker's topic rules start (rotation-get, rotation-ack) */
  rotationRunners: { get: StateMachineRunner; ack: StateMachineRunner };
  rotationConfig: RotationConfig;
  /** the registry-revocation workflow (Certificate Revoked → REVOKED in the registry), for tests */
  registryRevocationRunner: StateMachineRunner;
  /** the compromise-response workflow (revoke-issued), for tests and the console */
  revokeRunner: StateMachineRunner;
  /** the bulk-provisioning workflow */
  provisioningRunner: StateMachineRunner;
  /** runs the expiry sweep workflow now */
  sweepExpiring(): Promise<unknown>;
  /** every state machine runner (the console lists their executions) */
  runners: readonly StateMachineRunner[];
  /** the REST routes the HTTP server answers (the route tables) */
  routes: readonly Route[];
  /** executions restarted because their task was still running when the runtime last stopped */
  resumed: string[];
  close(): Promise<void>;
}

export async function startLocal(options: LocalOptions = {}): Promise<LocalCertflow> {
  // a process-wide V8 setting, read at every full collection (so it applies now, to the worker threads too)
  const heapGrowingPercent = options.heapGrowingPercent ?? LOCAL_HEAP_GROWING_PERCENT;
  if (!Number.isInteger(heapGrowingPercent) || heapGrowingPercent < 0) {
    throw new RangeError(`heapGrowingPercent must be an integer ≥ 0: ${heapGrowingPercent}`);
  }
  setFlagsFromString(`--heap-growing-percent=${heapGrowingPercent}`);
  const dataDir = resolve(options.dataDir ?? process.env.CERTFLOW_DATA_DIR ?? '.certflow');
  await mkdir(dataDir, { recursive: true });
  const clock = options.clock ?? systemClock;
  // every workflow's runner: certflow's ASL files are validated by asl-validator in the tests, so the engine does not
  // validate them again at start (its validator's compiled schemas would cost ~24 MB here, and ~1 s of CPU)
  const runnerOptions = {
    validate: false,
    ...(options.retryIntervalMs !== undefined ? { retryIntervalMs: options.retryIntervalMs } : {}),
  };
  const dynamo = await startDynamoDb({ dataDir: join(dataDir, 'dynamodb') });
  const s3 = await startS3({ dataDir: join(dataDir, 's3') });
  const closers: (() => Promise<unknown>)[] = [() => s3.close(), () => dynamo.close()];
  try {
    const dynamoClient = createLocalDynamoDbClient(dynamo.endpoint);
    const s3Client = createLocalS3Client(s3.endpoint);
    await ensureTable(dynamoClient, TASK_TABLE);
    await ensureTable(dynamoClient, REGISTRY_TABLE);
    await ensureTable(dynamoClient, CA_TABLE);
    await ensureBucket(s3Client, LOCAL_BUCKET);

    // every state machine of the runtime, for the console (a runner made without track() is not shown there)
    const runners: StateMachineRunner[] = [];
    const track = (runner: StateMachineRunner): StateMachineRunner => (runners.push(runner), runner);
    const caKeys = new FileCaKeyStore(dataDir);
    // the console's recent events: at most 200, and 1 MB of details (two of a batch's 500-certificate Certificate
    // Issued events are ~150 KB; every event kept is heap the runtime holds through a large batch)
    const bus = new LocalEventBus(200, 1024 * 1024);
    // the inventory is on LevelDB, not dynalite: see level-inventory.ts (a data directory made before is imported)
    const inventory = await LevelInventory.open(join(dataDir, 'inventory'));
    closers.push(() => inventory.close());
    const imported = await importDynaliteInventory(dynamoClient, inventory);
    if (imported > 0)
      console.log(`certflow: moved ${imported} inventory records from dynalite to ${join(dataDir, 'inventory')}`);
    const registry = new LocalDeviceRegistry(dynamoClient, {
      clock,
      ...(options.rotation?.thingGroupName ? { rotationGroupName: options.rotation.thingGroupName } : {}),
    });
    const tasks = new DynamoTaskStore(dynamoClient, TASK_TABLE.tableName, clock);
    // s3rver takes parts of any size: compose() copies every chunk's entries server-side (UploadPartCopy), and 1 MiB
    // parts keep the batch zip's assembly to a few MB in flight
    const objects = new S3ObjectStore(s3Client, LOCAL_BUCKET, { minPartSize: 0, partSize: LOCAL_PART_SIZE });
    const caDeps: CaDeps = {
      cas: new DynamoCaStore(dynamoClient),
      caKeys,
      keyWriter: caKeys,
      inventory,
      events: bus,
      objects,
      clock,
      rotation: registry,
      ...(options.revokeSliceSize !== undefined ? { revokeSliceSize: options.revokeSliceSize } : {}),
      workflows: {
        start: async (workflow, name, input) => {
          if (workflow !== REVOKE_ISSUED_WORKFLOW) throw new Error(`no local workflow ${workflow}`);
          revokeRunner.start(name, input).result.catch(() => undefined);
        },
      },
    };
    // the compromise response beyond one slice, called by caDeps.workflows only after the runtime is up
    const revokeRunner = track(
      new StateMachineRunner({
        definition: join(STATE_MACHINES_DIR, 'revoke-issued.asl.json'),
        stateMachineName: 'certflow-revoke-issued',
        substitutions: { RevokeIssuedFunctionArn: lambdaArn('certflow-revoke-issued') },
        resources: { [lambdaArn('certflow-revoke-issued')]: createRevokeIssued(caDeps) },
        ...runnerOptions,
      }),
    );

    // the inventory workflow, started by the same rule as on AWS (issuance and revocation events)
    const inventoryRunner = track(
      new StateMachineRunner({
        definition: join(STATE_MACHINES_DIR, 'inventory.asl.json'),
        stateMachineName: 'certflow-inventory',
        // one execution per event (500 certificates each, its input): keep the last few for the console, not every one
        // since the start (20 of them held ~3 MB through a large batch)
        keepFinished: 5,
        // and without copies of each state's input and output (the event is the execution's input, kept)
        stateData: false,
        substitutions: { RecordInventoryFunctionArn: lambdaArn('certflow-record-inventory') },
        resources: { [lambdaArn('certflow-record-inventory')]: createRecordInventory({ inventory }) },
        ...runnerOptions,
      }),
    );
    // (its writes are serialised by LevelInventory: more executions in flight would only hold more events in memory)
    bus.addRule('inventory', INVENTORY_RULE_PATTERN, (event) => inventoryRunner.start(event.id, event).result, {
      maxInFlight: 2,
    });

    // the registry-revocation workflow, started by the same rule as on AWS: a revoked certificate becomes REVOKED in
    // the local registry, and the broker drops and refuses it
    const registryRevocationRunner = track(
      new StateMachineRunner({
        definition: join(STATE_MACHINES_DIR, 'registry-revocation.asl.json'),
        stateMachineName: 'certflow-registry-revocation',
        substitutions: { RevokeInRegistryFunctionArn: lambdaArn('certflow-revoke-in-registry') },
        resources: {
          // no log line per certificate here: each execution's output (the console) says revoked, already-revoked
          // or not-registered
          [lambdaArn('certflow-revoke-in-registry')]: createRevokeInRegistry({ registry }),
        },
        ...runnerOptions,
      }),
    );
    bus.addRule(
      'registry-revocation',
      REGISTRY_REVOCATION_RULE_PATTERN,
      (event) => registryRevocationRunner.start(event.id, event).result,
    );

    // the expiry sweep: a schedule on AWS, a timer here (and sweepExpiring() on demand)
    const sweepRunner = track(
      new StateMachineRunner({
        definition: join(STATE_MACHINES_DIR, 'expiry-sweep.asl.json'),
        stateMachineName: 'certflow-expiry-sweep',
        substitutions: { ExpirySweepFunctionArn: lambdaArn('certflow-expiry-sweep') },
        resources: {
          [lambdaArn('certflow-expiry-sweep')]: createExpirySweep(
            { inventory, events: bus, clock },
            options.expiryWindowDays ?? 30,
          ),
        },
        ...runnerOptions,
      }),
    );
    const sweepExpiring = async (): Promise<unknown> =>
      sweepRunner.start(`sweep-${clock.now().toISOString().replace(/[:.]/g, '-')}-${randomUUID().slice(0, 8)}`, {})
        .result;
    const sweepEvery = options.expirySweepIntervalMs ?? 3_600_000;
    if (sweepEvery > 0) {
      const timer = setInterval(() => void sweepExpiring().catch(() => undefined), sweepEvery);
      timer.unref();
      closers.unshift(async () => clearInterval(timer));
    }
    const boot = await bootstrap(dataDir, caDeps);
    const config: BulkConfig = {
      ...DEFAULT_BULK_CONFIG,
      maxConcurrency: Math.max(2, (options.workers ?? availableParallelism()) * 2),
      rates: LOCAL_API_RATES,
      ...options.bulk,
    };

    const workerData: ChunkWorkerData = { dataDir };
    const pool = new WorkerPool(
      resolve(__dirname, __filename.endsWith('.ts') ? 'chunk-worker.ts' : 'chunk-worker.js'),
      workerData,
      options.workers,
    );
    pool.warm();
    closers.unshift(() => pool.close());
    // every workflow (those tracked later too) stops, ABORTED, before the workers and servers it uses: a batch still
    // running stays in progress and resumes at the next start; a function it waited for is abandoned (see
    // StateMachineRunner.close), so that nothing of it keeps the process alive
    closers.unshift(() =>
      Promise.all(runners.map((r) => r.close({ error: 'RuntimeStopped', cause: 'the local runtime stopped' }))),
    );

    // the IssueChunk handler runs here with the same ports as on Lambda; its CPU-bound part goes to the workers
    const issueChunk = createIssueChunk({
      objects,
      tasks,
      caKeys,
      events: bus,
      registry,
      clock,
      zipLevel: options.zipLevel ?? 0,
      build: async (job) => {
        const chunk = (await pool.run(job)) as BuiltChunk;
        const zip = Buffer.from(chunk.zip.buffer, chunk.zip.byteOffset, chunk.zip.byteLength);
        // once stored, the zip's memory goes back to a worker for a later chunk: otherwise ~1.5 MB per chunk would
        // wait here for a full collection (it outlives the young generation while the upload runs)
        const release = (): void => pool.recycle(zip.buffer as ArrayBuffer);
        return { ...chunk, zip, release };
      },
    });

    const suppliers = {
      get: async (id: string) =>
        new EnvSupplierDirectory({ SUPPLIERS: JSON.stringify((await readSuppliers(dataDir)) ?? {}) }).get(id),
    };

    const batchDeps: BatchDeps = {
      tasks,
      objects,
      suppliers,
      events: bus,
      clock,
      config,
      newId: randomUUID,
      externalCas: false,
      workflows: {
        start: async (workflow, name, input) => {
          if (workflow !== BULK_WORKFLOW) throw new Error(`no local workflow ${workflow}`);
          const started = runner.start(name, input);
          started.result.catch(() => undefined);
        },
      },
    };

    // called by batchDeps.workflows only after the runtime is up
    const runner = track(
      new StateMachineRunner({
        definition: join(STATE_MACHINES_DIR, 'bulk-issuance.asl.json'),
        stateMachineName: 'certflow-bulk-issuance',
        substitutions: {
          PlanChunksFunctionArn: lambdaArn('certflow-plan-chunks'),
          IssueChunkFunctionArn: lambdaArn('certflow-issue-chunk'),
          AssembleZipFunctionArn: lambdaArn('certflow-assemble-zip'),
          RecordFailureFunctionArn: lambdaArn('certflow-record-batch-failure'),
          DeleteChunkFilesFunctionArn: lambdaArn('certflow-delete-chunk-files'),
          TaskTableName: TASK_TABLE.tableName,
          EventBusName: 'certflow-local',
        },
        resources: {
          [lambdaArn('certflow-plan-chunks')]: createPlan(batchDeps) as (i: unknown) => Promise<unknown>,
          [lambdaArn('certflow-issue-chunk')]: async (input) => {
            await options.beforeChunk?.(input as { taskId: string; index: number });
            return issueChunk(input);
          },
          [lambdaArn('certflow-assemble-zip')]: createAssemble(batchDeps) as (i: unknown) => Promise<unknown>,
          [lambdaArn('certflow-record-batch-failure')]: createRecordFailure(batchDeps) as (
            i: unknown,
          ) => Promise<unknown>,
          [lambdaArn('certflow-delete-chunk-files')]: createDeleteChunkFiles(batchDeps),
        },
        sdkIntegrations: {
          'dynamodb:updateItem': async (params) => {
            try {
              return await dynamoClient.send(new UpdateItemCommand(params as unknown as UpdateItemCommandInput));
            } catch (e) {
              const err = e as Error;
              throw Object.assign(new Error(err.message), { name: `DynamoDB.${err.name}` });
            }
          },
          'events:putEvents': (params) =>
            bus.putEvents((params.Entries ?? []) as Parameters<LocalEventBus['putEvents']>[0]),
        },
        ...runnerOptions,
      }),
    );

    // a task still pending or in progress lost its execution when the runtime stopped: run it again (chunks
    // already signed are skipped, so it resumes where it was)
    const resumed: string[] = [];
    for (const task of await tasks.listByStatus(['pending', 'in_progress'])) {
      await batchDeps.workflows.start(BULK_WORKFLOW, task.taskId, { taskId: task.taskId });
      resumed.push(task.taskId);
    }

    // the MQTT broker (mutual TLS, trusting every certflow CA that is not revoked) and the rotation workflows its
    // topic rules start, as AWS IoT rules start them on AWS
    // the device policy of rotated certificates, the document the CDK deploys (each device on its own topics)
    const rotatedCertificatePolicyName =
      options.rotation?.rotatedCertificatePolicyName ?? DEFAULT_ROTATION_DEVICE_POLICY_NAME;
    await registry.createPolicy(
      rotatedCertificatePolicyName,
      JSON.stringify(
        rotationDevicePolicyDocument({
          partition: 'aws',
          region: LOCAL_IOT_REGION,
          account: LOCAL_IOT_ACCOUNT,
          ...(options.rotation?.topicPrefix ? { topicPrefix: options.rotation.topicPrefix } : {}),
        }),
      ),
    );
    const rotationConfig: RotationConfig = {
      ...DEFAULT_ROTATION_CONFIG,
      thingGroupName: registry.groupName,
      rotatedCertificatePolicyName,
      ...options.rotation,
    };
    const rotationDeps: RotationDeps = {
      registry,
      messaging: { publish: (topic, payload) => broker.messaging.publish(topic, payload) },
      objects,
      // the development issuing CA signs rotated certificates (the CsrSigner the certificate provider uses)
      signer: new CaKeyStoreCsrSigner(caKeys, boot.issuingCaId),
      events: bus,
      clock,
      config: rotationConfig,
      onUndoFailure: (step, error) => console.error(`rotation undo step ${step} failed`, error),
    };
    const rotationFunctions: Record<string, (input: unknown) => Promise<unknown>> = {
      [lambdaArn('certflow-rotation-approve')]: createRotationApprove(rotationDeps),
      [lambdaArn('certflow-rotation-vend')]: createRotationVend(rotationDeps),
      [lambdaArn('certflow-rotation-reply')]: createRotationReply(rotationDeps),
      [lambdaArn('certflow-rotation-rollback')]: createRotationRollback(rotationDeps),
      [lambdaArn('certflow-rotation-ack')]: createRotationAck(rotationDeps),
    };
    const rotationRunners = {
      get: track(
        new StateMachineRunner({
          definition: join(STATE_MACHINES_DIR, 'rotation-get.asl.json'),
          stateMachineName: 'certflow-rotation-get',
          substitutions: {
            ApproveDeviceFunctionArn: lambdaArn('certflow-rotation-approve'),
            VendCertificateFunctionArn: lambdaArn('certflow-rotation-vend'),
            ReplyFunctionArn: lambdaArn('certflow-rotation-reply'),
            RollbackFunctionArn: lambdaArn('certflow-rotation-rollback'),
          },
          resources: rotationFunctions,
          ...runnerOptions,
        }),
      ),
      ack: track(
        new StateMachineRunner({
          definition: join(STATE_MACHINES_DIR, 'rotation-ack.asl.json'),
          stateMachineName: 'certflow-rotation-ack',
          substitutions: {
            ApproveDeviceFunctionArn: lambdaArn('certflow-rotation-approve'),
            AcknowledgeRotationFunctionArn: lambdaArn('certflow-rotation-ack'),
            ReplyFunctionArn: lambdaArn('certflow-rotation-reply'),
          },
          resources: rotationFunctions,
          ...runnerOptions,
        }),
      ),
    };
    const rules = rotationTopics(rotationConfig.topicPrefix).rules;
    const startRotation = (runner: StateMachineRunner) => (input: Record<string, unknown>) => {
      const name = `${String(input.deviceId)}-${String(input.action)}-${randomUUID()}`;
      // a workflow answers the device itself (…/rejected); one that fails outright is worth a line in the log
      runner
        .start(name, input)
        .result.catch((e: { error?: string; cause?: string }) =>
          console.error(`rotation workflow ${name} failed: ${e.error ?? ''} ${e.cause ?? String(e)}`),
        );
    };
    const trustedCas = async (): Promise<string[]> =>
      (await caDeps.cas.list()).filter((ca) => ca.status === 'active').map((ca) => ca.certificatePem);
    const server = await brokerCredentials(dataDir, caDeps, boot.issuingCaId);
    const broker = await startMqttBroker({
      port: options.mqttPort ?? (options.port === 0 ? 0 : Number(process.env.MQTT_PORT ?? 8883)),
      serverCertificatePem: server.certificatePem,
      serverKeyPem: server.keyPem,
      trustedCas: await trustedCas(),
      registry,
      topicPrefix: rotationConfig.topicPrefix,
      onMessage: topicRuleDispatcher([
        { name: 'rotation-get', rule: rules.get, action: startRotation(rotationRunners.get) },
        { name: 'rotation-ack', rule: rules.ack, action: startRotation(rotationRunners.ack) },
      ]),
    });
    closers.unshift(() => broker.close());
    // a certificate that leaves ACTIVE (revoked, inactivated, deleted) drops its connected clients, as on AWS IoT
    registry.onCertificateChange((certificateId) => broker.recheckCertificate(certificateId));
    // a CA created or revoked changes whom the broker trusts
    bus.addRule(
      'mqtt-trust',
      { source: ['certflow'], 'detail-type': ['CA Created', 'Certificate Revoked'] },
      async () => broker.setTrustedCas(await trustedCas()),
    );

    const api = createBulkApi(batchDeps, { error: (message, ...extra) => console.error(message, ...extra) }, [
      createCaRoutes(caDeps),
    ]);
    const provisioning = localProvisioning(
      { objects, registry, caKeys, cas: caDeps.cas, events: bus, clock, csrCaId: boot.issuingCaId },
      STATE_MACHINES_DIR,
      {
        ...runnerOptions,
        ...options.provisioning,
      },
    );
    track(provisioning.runner);
    resumed.push(...(await provisioning.resume()));
    const http = await startHttpServer({
      port: options.port ?? Number(process.env.PORT ?? 4010),
      mounts: [{ routes: [...API_ROUTES], handler: api }, provisioning.mount],
      raw: [
        createConsoleHandler({
          runners: () => runners,
          tasks,
          suppliers: async () => Object.keys((await readSuppliers(dataDir)) ?? {}).sort(),
          openApi: () => openApiDocument(),
        }),
      ],
    });
    closers.unshift(() => http.close());

    return {
      url: http.url,
      dataDir,
      bootstrap: boot,
      bus,
      runner,
      batchDeps,
      caKeys,
      caDeps,
      registry,
      mqttUrl: broker.url,
      broker,
      rotationRunners,
      rotationConfig,
      sweepExpiring,
      revokeRunner,
      registryRevocationRunner,
      runners,
      routes: [...API_ROUTES, ...provisioning.mount.routes],
      provisioningRunner: provisioning.runner,
      resumed,
      close: async () => {
        for (const close of closers) await close().catch(() => undefined);
      },
    };
  } catch (e) {
    for (const close of closers) await close().catch(() => undefined);
    throw e;
  }
}
