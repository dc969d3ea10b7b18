import * as path from 'node:path';
import { Duration } from 'aws-cdk-lib';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { LogLevel, StateMachine, StateMachineType } from 'aws-cdk-lib/aws-stepfunctions';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { CaEnv } from '../../lambdas/handlers/env';
import { aslStateMachine } from '../asl';
import { objectsFinding } from '../nag';
import { CRLS_PREFIX, type BatchBucket } from './batch-bucket';
import type { CaHierarchy } from './ca-hierarchy';
import { CertflowFunction, FunctionEnvironment, handlerEntry, PROJECT_ROOT } from './certflow-function';
import type { CertflowEventBus } from './event-bus';
import type { CertificateInventory } from './inventory';

/** The revoke-issued workflow definition, shared with the local runtime. */
export const REVOKE_ISSUED_DEFINITION_PATH = path.join(PROJECT_ROOT, 'statemachines', 'revoke-issued.asl.json');

export interface CompromiseResponseProps {
  readonly inventory: CertificateInventory;
  readonly caHierarchy: CaHierarchy;
  readonly bucket: BatchBucket;
  readonly bus: CertflowEventBus;
  /** hours until a CRL's nextUpdate, default 24 */
  readonly crlValidityHours?: number;
  /** the RevokeIssued function's timeout (one slice of up to 2,000 certificates, and the CRL), default 5 minutes */
  readonly sliceTimeout?: Duration;
  /** the ASL file, default statemachines/revoke-issued.asl.json */
  readonly definitionPath?: string;
  /** retention of the function's and the state machine's log groups, default three months */
  readonly logRetention?: RetentionDays;
}

/**
 * The rest of a compromise response on AWS: when `POST /cas/{caId}/revoke` finds more certificates than one slice,
 * the API starts this Standard state machine (the shared revoke-issued ASL file), which revokes the CA's
 * certificates slice by slice with the RevokeIssued Lambda (`Certificate Revoked` for each, their things to the
 * rotation group) and, on the last slice, publishes the CA's CRL.
 */
export class CompromiseResponse extends Construct {
  readonly environment: FunctionEnvironment<typeof CaEnv>;
  readonly revokeIssued: CertflowFunction<typeof CaEnv>;
  readonly stateMachine: StateMachine;
  readonly logGroup: LogGroup;

  constructor(scope: Construct, id: string, props: CompromiseResponseProps) {
    super(scope, id);
    const { inventory, caHierarchy, bucket, bus } = props;
    const logRetention = props.logRetention ?? RetentionDays.THREE_MONTHS;

    this.environment = {
      INVENTORY_TABLE_NAME: inventory.inventoryTable.tableName,
      CA_TABLE_NAME: inventory.caTable.tableName,
      BUCKET_NAME: bucket.bucketName,
      EVENT_BUS_NAME: bus.eventBusName,
      CA_KEY_KMS_KEY_ID: caHierarchy.caKeysKeyArn,
      ROTATION_THING_GROUP: caHierarchy.rotationThingGroupName,
      CRL_VALIDITY_HOURS: String(props.crlValidityHours ?? 24),
    };
    this.revokeIssued = new CertflowFunction(this, 'RevokeIssued', {
      entry: handlerEntry('sfn-revoke-issued'),
      description:
        'certflow compromise response: revoke one slice of a revoked CA\u2019s certificates; the CRL at the end',
      envSchema: CaEnv,
      environment: this.environment,
      memorySize: 1024,
      timeout: props.sliceTimeout ?? Duration.minutes(5),
      logRetention,
    });
    // revokeIssuedBy: the CA's active certificates (Query byIssuer), markRevoked (UpdateItem, then GetItem)
    inventory.inventoryTable.grant(this.revokeIssued, 'dynamodb:GetItem', 'dynamodb:UpdateItem');
    inventory.inventoryTable.grantIndexQuery(this.revokeIssued, 'byIssuer');
    // publishCrl: the next CRL number (UpdateItem on the CA), the CRL under crls/
    inventory.caTable.grant(this.revokeIssued, 'dynamodb:UpdateItem');
    bucket.grantObjects(this.revokeIssued, [CRLS_PREFIX], 's3:PutObject');
    // Certificate Revoked for each certificate
    bus.grantPutEvents(this.revokeIssued);
    // the CA signs its CRL: its key is loaded, never written
    caHierarchy.grantCaKeyStore(this.revokeIssued, 'read');
    caHierarchy.grantRotation(this.revokeIssued);
    NagSuppressions.addResourceSuppressions(
      this.revokeIssued.role,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'CRLs are keyed crls/{caId}.crl(.pem) with CA ids known at run time: PutObject under crls/ only (the ' +
            'CRL of the CA whose certificates are revoked).',
          appliesTo: [objectsFinding(CRLS_PREFIX)],
        },
      ],
      true,
    );

    // the state machine
    const definitionPath = props.definitionPath ?? REVOKE_ISSUED_DEFINITION_PATH;
    ({ stateMachine: this.stateMachine, logGroup: this.logGroup } = aslStateMachine(this, {
      name: 'revoke-issued',
      comment: 'certflow compromise response: revoke the certificates of a revoked CA, then its CRL',
      definitionPath,
      substitutions: { RevokeIssuedFunctionArn: this.revokeIssued.functionArn },
      // slices loop until the CA's certificates are all revoked: longer than an Express execution may run
      type: StateMachineType.STANDARD,
      logs: { level: LogLevel.ALL, includeExecutionData: false },
      logRetention,
      invokes: [this.revokeIssued.functionArn],
    }));
  }
}
