import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { CfnThingGroup } from 'aws-cdk-lib/aws-iot';
import { Key } from 'aws-cdk-lib/aws-kms';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import {
  caCertParameter,
  caChainParameter,
  caKeyParameter,
  caKmsKeyParameter,
} from '../../lambdas/adapters/aws/ca-certificates';
import { arnFinding } from '../nag';
import type { CertflowFunction } from './certflow-function';

/** The SSM parameter names of certflow-created CAs (SsmCaKeyWriter writes them, SsmCaKeyStore reads them). */
export const CA_PARAMETER_NAMES: readonly string[] = [caKeyParameter('*'), caCertParameter('*'), caChainParameter('*')];

export interface CaHierarchyProps {
  /** the AWS IoT static thing group devices join to rotate their certificates, default `cdfRotateCertificates` */
  readonly rotationThingGroupName?: string;
  /** default true; false when the group exists already (e.g. made by CDF): it is then used by name, not owned */
  readonly createRotationThingGroup?: boolean;
  /** what happens to the CA keys' KMS key and the thing group when the stack is deleted, default RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * What the CA hierarchy keeps outside its tables: the customer managed KMS key (rotation on) that encrypts the CA
 * private keys in their SSM SecureStrings (`cdf-ca-key-{caId}`), and the AWS IoT thing group that devices join when
 * their CA is revoked, so that they rotate their certificates. Grants for the functions that use them.
 */
export class CaHierarchy extends Construct {
  readonly caKeysKey: Key;
  readonly rotationThingGroupName: string;
  /** undefined when the group is not created by this stack */
  readonly rotationThingGroup?: CfnThingGroup;

  constructor(scope: Construct, id: string, props: CaHierarchyProps = {}) {
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    this.caKeysKey = new Key(this, 'CaKeysKey', {
      description: 'certflow: encrypts the CA private keys in SSM SecureString parameters cdf-ca-key-*',
      enableKeyRotation: true,
      removalPolicy,
    });
    this.rotationThingGroupName = props.rotationThingGroupName ?? 'cdfRotateCertificates';
    if (props.createRotationThingGroup ?? true) {
      this.rotationThingGroup = new CfnThingGroup(this, 'RotationThingGroup', {
        thingGroupName: this.rotationThingGroupName,
        thingGroupProperties: {
          thingGroupDescription: 'certflow: devices whose certificate must rotate (their CA was revoked)',
        },
      });
      this.rotationThingGroup.applyRemovalPolicy(removalPolicy);
    }
  }

  /** The key's ARN: the functions' `CA_KEY_KMS_KEY_ID`. */
  get caKeysKeyArn(): string {
    return this.caKeysKey.keyArn;
  }

  get rotationThingGroupArn(): string {
    return Stack.of(this).formatArn({
      service: 'iot',
      resource: 'thinggroup',
      resourceName: this.rotationThingGroupName,
    });
  }

  /**
   * A function that loads certflow CAs (SsmCaKeyStore: GetParameter on the CA parameter names, kms:Decrypt) and,
   * with `access` 'readWrite', creates them (SsmCaKeyWriter: PutParameter, kms:Encrypt and GenerateDataKey). The CA
   * key KMS key is usable through SSM only (in this region); DescribeCACertificate serves the CAs registered with AWS
   * IoT (CDF's).
   */
  grantCaKeyStore(fn: CertflowFunction, access: 'read' | 'readWrite'): void {
    const stack = Stack.of(this);
    const parameter = (name: string) => stack.formatArn({ service: 'ssm', resource: 'parameter', resourceName: name });
    const write = access === 'readWrite';
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: write ? ['ssm:PutParameter', 'ssm:GetParameter'] : ['ssm:GetParameter'],
        resources: CA_PARAMETER_NAMES.map(parameter),
      }),
    );
    // SecureString encryption and decryption run in KMS on SSM's behalf: only through SSM, in this region
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: write ? ['kms:Encrypt', 'kms:Decrypt', 'kms:GenerateDataKey'] : ['kms:Decrypt'],
        resources: [this.caKeysKey.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `ssm.${stack.region}.${stack.urlSuffix}` } },
      }),
    );
    this.grantDescribeCaCertificate(fn);
    NagSuppressions.addResourceSuppressions(
      fn.role,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'CA ids are SHA-256 hashes of CA certificates made at request time: ' +
            (write ? 'PutParameter/GetParameter are' : 'GetParameter is') +
            ' limited to the names of the CA parameters (cdf-ca-key-*, cdf-ca-cert-*, cdf-ca-chain-*); the key ' +
            'SecureString is encrypted with the stack CA-key KMS key, usable only through SSM.',
          appliesTo: CA_PARAMETER_NAMES.map((name) => arnFinding('ssm', `parameter/${name}`)),
        },
      ],
      true,
    );
  }

  /**
   * A function that loads certflow CAs from the KMS store (KmsCaKeyStore, `caKeyStore: 'kms'`): GetParameter on the
   * parameters naming the CA keys (cdf-ca-kms-key-*) and the chains (cdf-ca-chain-*), kms:Sign and kms:GetPublicKey
   * on the CA keys only, DescribeCACertificate for the CA certificates in AWS IoT. No SecureString decryption.
   */
  grantKmsCaKeys(fn: CertflowFunction, kmsKeyArns: readonly string[]): void {
    const stack = Stack.of(this);
    const names = [caKmsKeyParameter('*'), caChainParameter('*')];
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['ssm:GetParameter'],
        resources: names.map((name) => stack.formatArn({ service: 'ssm', resource: 'parameter', resourceName: name })),
      }),
    );
    fn.addToRolePolicy(new PolicyStatement({ actions: ['kms:Sign', 'kms:GetPublicKey'], resources: [...kmsKeyArns] }));
    this.grantDescribeCaCertificate(fn);
    NagSuppressions.addResourceSuppressions(
      fn.role,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'CA ids are known only at request time: GetParameter is limited to the parameters naming the CA KMS ' +
            'keys and chains (cdf-ca-kms-key-*, cdf-ca-chain-*); kms:Sign is granted on the configured CA keys only.',
          appliesTo: names.map((name) => arnFinding('ssm', `parameter/${name}`)),
        },
      ],
      true,
    );
  }

  /** The CA certificates registered with AWS IoT (CDF's CAs; the KMS store's), read only. */
  private grantDescribeCaCertificate(fn: CertflowFunction): void {
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['iot:DescribeCACertificate'],
        resources: [Stack.of(this).formatArn({ service: 'iot', resource: 'cacert', resourceName: '*' })],
      }),
    );
    NagSuppressions.addResourceSuppressions(
      fn.role,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'CAs registered with AWS IoT (CDF’s, or certflow’s) have ids known only at request time: ' +
            'iot:DescribeCACertificate (read only) on cacert/* of this account and region.',
          appliesTo: [arnFinding('iot', 'cacert/*')],
        },
      ],
      true,
    );
  }

  /** A function that adds things to the rotation group (IotRotationGroup) and checks that the group exists. */
  grantRotation(fn: CertflowFunction): void {
    // the function finds the group by name: when this stack makes it, it exists before the function runs
    if (this.rotationThingGroup) fn.node.addDependency(this.rotationThingGroup);
    const thing = Stack.of(this).formatArn({ service: 'iot', resource: 'thing', resourceName: '*' });
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['iot:AddThingToThingGroup'],
        resources: [this.rotationThingGroupArn, thing],
      }),
    );
    fn.addToRolePolicy(
      new PolicyStatement({ actions: ['iot:DescribeThingGroup'], resources: [this.rotationThingGroupArn] }),
    );
    NagSuppressions.addResourceSuppressions(
      fn.role,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'The things of a revoked CA are known only at run time: iot:AddThingToThingGroup takes both the thing ' +
            'and the group, and the group resource is the rotation group only; thing/* of this account and region.',
          appliesTo: [arnFinding('iot', 'thing/*')],
        },
      ],
      true,
    );
  }
}
