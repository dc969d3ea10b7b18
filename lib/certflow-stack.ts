import { CfnOutput, Duration, Stack, StackProps } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { DeployConfig, loadDeployConfig } from './config';
import { BatchBucket } from './constructs/batch-bucket';
import { BulkIssuance } from './constructs/bulk-issuance';
import { CaHierarchy } from './constructs/ca-hierarchy';
import { CertflowApi } from './constructs/certflow-api';
import { CertificateRotation } from './constructs/certificate-rotation';
import { CertificateProvider } from './constructs/certificate-provider';
import { CompromiseResponse } from './constructs/compromise-response';
import { CertflowEventBus } from './constructs/event-bus';
import { CertflowEventSchemas } from './constructs/event-schemas';
import { ExpirySweep } from './constructs/expiry-sweep';
import { CertificateInventory } from './constructs/inventory';
import { DeviceProvisioning } from './constructs/device-provisioning';
import { RegistryRevocation } from './constructs/registry-revocation';
import { TaskTable } from './constructs/task-table';

export interface CertflowStackProps extends StackProps {
  /** the deploy configuration; default read from the CDK context (see lib/config.ts) */
  readonly config?: DeployConfig;
}

/** The certflow stack: it only composes the constructs of lib/constructs, one per capability. */
export class CertflowStack extends Stack {
  readonly config: DeployConfig;
  readonly table: TaskTable;
  readonly bucket: BatchBucket;
  readonly bus: CertflowEventBus;
  readonly eventSchemas: CertflowEventSchemas;
  readonly bulkIssuance: BulkIssuance;
  readonly caHierarchy: CaHierarchy;
  readonly inventory: CertificateInventory;
  readonly registryRevocation: RegistryRevocation;
  readonly compromiseResponse: CompromiseResponse;
  readonly expirySweep: ExpirySweep;
  readonly provisioning: DeviceProvisioning;
  readonly api: CertflowApi;
  readonly rotation: CertificateRotation;
  /** only with `certificateProvider.enabled` */
  readonly certificateProvider?: CertificateProvider;

  constructor(scope: Construct, id: string, props: CertflowStackProps = {}) {
    super(scope, id, props);
    const config = props.config ?? loadDeployConfig(this.node);
    this.config = config;

    this.table = new TaskTable(this, 'Tasks');
    this.bucket = new BatchBucket(this, 'Batches', { expireBatchesAfterDays: config.lifecycleDays });
    this.bus = new CertflowEventBus(this, 'Events', {
      eventBusName: config.eventBusName,
      archiveRetention: Duration.days(config.eventArchiveDays),
    });
    this.eventSchemas = new CertflowEventSchemas(this, 'EventSchemas', { registryName: config.eventBusName });
    this.bulkIssuance = new BulkIssuance(this, 'BulkIssuance', {
      table: this.table,
      bucket: this.bucket,
      bus: this.bus,
      suppliers: config.suppliers,
      chunkSize: config.chunkSize,
      maxConcurrency: config.maxConcurrency,
      maxQuantity: config.maxQuantity,
      apiRates: config.apiRates,
      pcaCertificatesPerCa: config.pcaCertificatesPerCa,
      caKeyStore: config.caKeyStore,
      caKmsKeyArns: config.caKmsKeyArns,
    });
    this.caHierarchy = new CaHierarchy(this, 'CaHierarchy', {
      rotationThingGroupName: config.rotationThingGroupName,
      createRotationThingGroup: config.createRotationThingGroup,
    });
    this.inventory = new CertificateInventory(this, 'Inventory', { bus: this.bus });
    this.registryRevocation = new RegistryRevocation(this, 'RegistryRevocation', {
      bus: this.bus,
      rateTable: this.table,
      apiRates: config.apiRates,
    });
    this.compromiseResponse = new CompromiseResponse(this, 'CompromiseResponse', {
      inventory: this.inventory,
      caHierarchy: this.caHierarchy,
      bucket: this.bucket,
      bus: this.bus,
      crlValidityHours: config.crlValidityHours,
    });
    this.expirySweep = new ExpirySweep(this, 'ExpirySweep', {
      inventory: this.inventory,
      bus: this.bus,
      windowDays: config.expiryWindowDays,
      interval: Duration.hours(config.expirySweepHours),
    });
    this.provisioning = new DeviceProvisioning(this, 'Provisioning', {
      bucket: this.bucket,
      bus: this.bus,
      inventory: this.inventory,
      caHierarchy: this.caHierarchy,
      caKeyStore: config.caKeyStore,
      caKmsKeyArns: config.caKmsKeyArns,
      pcaAliases: config.provisioningPcaAliases,
      caAliases: config.provisioningCaAliases,
      chunkSize: config.provisioningChunkSize,
      rateLimitTable: this.table,
      apiRates: config.apiRates,
    });
    this.api = new CertflowApi(this, 'Api', {
      integrations: [
        {
          routes: this.provisioning.routes,
          bodySchemas: this.provisioning.bodySchemas,
          function: this.provisioning.api.function,
        },
      ],
      table: this.table,
      bucket: this.bucket,
      bus: this.bus,
      stateMachine: this.bulkIssuance.stateMachine,
      revokeIssuedStateMachine: this.compromiseResponse.stateMachine,
      environment: this.bulkIssuance.environment,
      inventory: this.inventory,
      caHierarchy: this.caHierarchy,
      crlValidityHours: config.crlValidityHours,
    });

    this.rotation = new CertificateRotation(this, 'Rotation', {
      caHierarchy: this.caHierarchy,
      bucket: this.bucket,
      bus: this.bus,
      topicPrefix: config.rotationTopicPrefix,
      ...(config.rotationCa ? { ca: config.rotationCa } : {}),
      rateLimitTable: this.table,
      apiRates: config.apiRates,
      validityDays: config.rotationValidityDays,
      rotatedCertificatePolicyName: config.rotatedCertificatePolicyName,
      deletePreviousCertificate: config.deletePreviousCertificate,
      requireRegisteredThing: config.rotationRequireRegisteredThing,
      registerWithCa: config.rotationRegisterWithCa,
    });
    const provider = config.certificateProvider;
    if (provider.enabled && provider.ca) {
      this.certificateProvider = new CertificateProvider(this, 'CertificateProvider', {
        bus: this.bus,
        ca: provider.ca,
        caKeyStore: config.caKeyStore,
        caKmsKeyArns: config.caKmsKeyArns,
        caTable: this.inventory.caTable,
        rateLimitTable: this.table,
        apiRates: config.apiRates,
        validityDays: provider.validityDays,
        providerName: provider.name,
      });
      new CfnOutput(this, 'CertificateProviderArn', { value: this.certificateProvider.providerArn });
    }

    new CfnOutput(this, 'ApiUrl', {
      value: this.api.url,
      description: 'REST API (IAM auth): bulk issuance, CA hierarchy, inventory',
    });
    new CfnOutput(this, 'BatchBucketName', { value: this.bucket.bucketName });
    new CfnOutput(this, 'TaskTableName', { value: this.table.tableName });
    new CfnOutput(this, 'InventoryTableName', { value: this.inventory.inventoryTable.tableName });
    new CfnOutput(this, 'CaTableName', { value: this.inventory.caTable.tableName });
    new CfnOutput(this, 'EventBusName', { value: this.bus.eventBusName });
    new CfnOutput(this, 'EventSchemaRegistryName', { value: this.eventSchemas.registry.attrRegistryName });
    new CfnOutput(this, 'BulkStateMachineArn', { value: this.bulkIssuance.stateMachine.stateMachineArn });
    new CfnOutput(this, 'InventoryStateMachineArn', { value: this.inventory.stateMachine.stateMachineArn });
    new CfnOutput(this, 'RegistryRevocationStateMachineArn', {
      value: this.registryRevocation.stateMachine.stateMachineArn,
    });
    new CfnOutput(this, 'RevokeIssuedStateMachineArn', { value: this.compromiseResponse.stateMachine.stateMachineArn });
    new CfnOutput(this, 'ExpirySweepStateMachineArn', { value: this.expirySweep.stateMachine.stateMachineArn });
    new CfnOutput(this, 'CaKeysKmsKeyArn', { value: this.caHierarchy.caKeysKeyArn });
    new CfnOutput(this, 'ProvisioningStateMachineArn', { value: this.provisioning.stateMachine.stateMachineArn });
    new CfnOutput(this, 'RotationThingGroupName', { value: this.caHierarchy.rotationThingGroupName });
    new CfnOutput(this, 'RotationGetStateMachineArn', { value: this.rotation.getStateMachine.stateMachineArn });
    new CfnOutput(this, 'RotationAckStateMachineArn', { value: this.rotation.ackStateMachine.stateMachineArn });
    new CfnOutput(this, 'RotationDevicePolicyName', { value: this.rotation.devicePolicy.ref });
  }
}
