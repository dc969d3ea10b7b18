/** A worker thread that signs chunks: the same handler as the IssueChunk Lambda, with local ports. */
import { workerData } from 'node:worker_threads';
import { DynamoTaskStore } from '../lambdas/adapters/aws/dynamo-task-store';
import { S3ObjectStore } from '../lambdas/adapters/aws/s3-object-store';
import { FileCaKeyStore } from '../lambdas/adapters/local/file-ca-key-store';
import type { DomainEvent } from '../lambdas/core/ports';
import { systemClock } from '../lambdas/core/ports';
import { createHandler } from '../lambdas/handlers/sfn-issue-chunk';
import { createLocalDynamoDbClient } from './runtime/dynamodb-server';
import { createLocalS3Client } from './runtime/s3-server';
import { callMain, serve } from './worker-side';

export interface ChunkWorkerData {
  dataDir: string;
  s3Endpoint: string;
  bucket: string;
  dynamoEndpoint: string;
  taskTable: string;
  zipLevel: number;
}

const data = workerData as ChunkWorkerData;

const handle = createHandler({
  objects: new S3ObjectStore(createLocalS3Client(data.s3Endpoint), data.bucket),
  tasks: new DynamoTaskStore(createLocalDynamoDbClient(data.dynamoEndpoint), data.taskTable),
  caKeys: new FileCaKeyStore(data.dataDir),
  events: { publish: (events: DomainEvent[]) => callMain('publish', events).then(() => undefined) },
  registry: {
    register: (input) => callMain('register', input) as Promise<{ certificateId: string; certificateArn: string }>,
  },
  clock: systemClock,
  zipLevel: data.zipLevel,
});

serve(handle);
