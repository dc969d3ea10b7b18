/** Builds the CA hierarchy's ports from AWS services, once per Lambda container. */
import { REVOKE_ISSUED_WORKFLOW, type CaDeps } from '../../core/ca/service';
import { systemClock } from '../../core/ports';
import type { CaEnv } from '../../handlers/env';
import type { AwsClients } from './bulk-deps';
import { DynamoCaStore } from './dynamo-ca-store';
import { DynamoInventory } from './dynamo-inventory';
import { EventBridgePublisher } from './eventbridge-publisher';
import { IotRotationGroup } from './iot-rotation-group';
import { S3ObjectStore } from './s3-object-store';
import { SsmCaKeyStore } from './ssm-ca-key-store';
import { SsmCaKeyWriter } from './ssm-ca-key-writer';
import { SfnWorkflowStarter } from './sfn-workflow-starter';

export function awsCaDeps(env: CaEnv & { REVOKE_ISSUED_STATE_MACHINE_ARN?: string }, clients: AwsClients): CaDeps {
  return {
    cas: new DynamoCaStore(clients.dynamodb, env.CA_TABLE_NAME),
    // certflow-created CAs keep their keys in SSM SecureString (KMS asymmetric CA keys: CDF-style CAs via KmsCaKeyStore)
    caKeys: new SsmCaKeyStore(clients.ssm, clients.iot),
    keyWriter: new SsmCaKeyWriter(
      clients.ssm,
      clients.iot,
      env.CA_KEY_KMS_KEY_ID ? { kmsKeyId: env.CA_KEY_KMS_KEY_ID } : {},
    ),
    inventory: new DynamoInventory(clients.dynamodb, env.INVENTORY_TABLE_NAME),
    events: new EventBridgePublisher(clients.eventBridge, env.EVENT_BUS_NAME),
    objects: new S3ObjectStore(clients.s3, env.BUCKET_NAME),
    clock: systemClock,
    rotation: new IotRotationGroup(clients.iot, env.ROTATION_THING_GROUP),
    crlValidityHours: env.CRL_VALIDITY_HOURS,
    ...(env.REVOKE_ISSUED_STATE_MACHINE_ARN
      ? {
          workflows: new SfnWorkflowStarter(clients.sfn, {
            [REVOKE_ISSUED_WORKFLOW]: env.REVOKE_ISSUED_STATE_MACHINE_ARN,
          }),
        }
      : {}),
  };
}
