import { Duration, Stack } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { CfnCertificateProvider } from 'aws-cdk-lib/aws-iot';
import { CfnPermission } from 'aws-cdk-lib/aws-lambda';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import {
  caCertParameter,
  caChainParameter,
  caKeyParameter,
  caKmsKeyParameter,
} from '../../lambdas/adapters/aws/ca-certificates';
import type { SupplierCa } from '../../lambdas/core/ports';
import { ApiRatesSchema, type ApiRatesInput } from '../../lambdas/core/pacing';
import { CertificateProviderEnv } from '../../lambdas/handlers/env';
import { arnFinding } from '../nag';
import { CertflowFunction, FunctionEnvironment, handlerEntry } from './certflow-function';
import type { CertflowTable } from './certflow-table';
import type { CertflowEventBus } from './event-bus';
import type { TaskTable } from './task-table';

/** The operation the provider takes over for the whole account. */
export const PROVIDER_OPERATIONS = ['CreateCertificateFromCsr'];

export interface CertificateProviderProps {
  readonly bus: CertflowEventBus;
  /** the CA that signs: a certflow CA (its key per `caKeyStore`) or an ACM Private CA */
  readonly ca: Exclude<SupplierCa, { type: 'aws-iot' }>;
  /** where a certflow CA's key is, default 'ssm' */
  readonly caKeyStore?: 'ssm' | 'kms';
  /** with caKeyStore 'kms': the CA keys (kms:Sign and kms:GetPublicKey on these only) */
  readonly caKmsKeyArns?: readonly string[];
  /** the CA table: a certflow CA revoked there stops signing (GetItem on it) */
  readonly caTable?: CertflowTable;
  /** the table holding the deployment-wide rate schedule (`rate#{api}` items; the task table) */
  readonly rateLimitTable: TaskTable;
  /** the AWS quotas the ACM PCA and KMS calls pace to (as bulk's), default AWS's */
  readonly apiRates?: ApiRatesInput;
  /** days the certificates are valid for, default 365 */
  readonly validityDays?: number;
  /** the provider's name, default 'certflow' */
  readonly providerName?: string;
  readonly logRetention?: RetentionDays;
}

/**
 * The AWS IoT certificate provider: fleet provisioning's CreateCertificateFromCsr is answered by the
 * iot-certificate-provider Lambda, signing with one configured CA. AWS IoT may invoke the function only on behalf of
 * this provider of this account (SourceArn + SourceAccount: no confused deputy). The function's role reads that CA
 * only: its SSM parameters (and their KMS decryption through SSM), or its KMS key, or its ACM PCA.
 */
export class CertificateProvider extends Construct {
  readonly environment: FunctionEnvironment<typeof CertificateProviderEnv>;
  readonly function: CertflowFunction<typeof CertificateProviderEnv>;
  readonly provider: CfnCertificateProvider;
  readonly invokePermission: CfnPermission;
  /** arn:…:iot:{region}:{account}:certificateprovider/{name} */
  readonly providerArn: string;
  readonly providerName: string;

  constructor(scope: Construct, id: string, props: CertificateProviderProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const caKeyStore = props.caKeyStore ?? 'ssm';
    const kmsKeys = props.caKmsKeyArns ?? [];
    if (props.ca.type === 'certflow' && caKeyStore === 'kms' && kmsKeys.length === 0) {
      throw new Error(`${this.node.path}: caKeyStore 'kms' needs caKmsKeyArns (kms:Sign is granted on those only)`);
    }
    this.providerName = props.providerName ?? 'certflow';

    this.environment = {
      EVENT_BUS_NAME: props.bus.eventBusName,
      SIGNING_CA: JSON.stringify(props.ca),
      CA_KEY_STORE: caKeyStore,
      ...(props.ca.type === 'certflow' && props.caTable ? { CA_TABLE_NAME: props.caTable.tableName } : {}),
      VALIDITY_DAYS: String(props.validityDays ?? 365),
      RATE_LIMIT_TABLE_NAME: props.rateLimitTable.tableName,
      API_RATES: JSON.stringify(ApiRatesSchema.parse(props.apiRates ?? {})),
    };
    this.function = new CertflowFunction(this, 'Signer', {
      entry: handlerEntry('iot-certificate-provider'),
      description: 'certflow certificate provider: signs fleet-provisioning CSRs (CreateCertificateFromCsr)',
      envSchema: CertificateProviderEnv,
      environment: this.environment,
      // more memory is more CPU: RSA signing and the cold start's key load are CPU-bound
      memorySize: 1024,
      // AWS IoT waits 5 seconds for the answer; running longer helps no one
      timeout: Duration.seconds(5),
      ...(props.logRetention ? { logRetention: props.logRetention } : {}),
    });
    props.bus.grantPutEvents(this.function);
    // PCA's IssueCertificate/GetCertificate and KMS Sign take a slot of the shared schedule first
    props.rateLimitTable.grantRateSchedule(this.function);
    if (props.ca.type === 'acm-pca') this.grantPca(props.ca.arn);
    else {
      this.grantCertflowCa(props.ca.caId, caKeyStore, kmsKeys);
      props.caTable?.grant(this.function, 'dynamodb:GetItem');
    }

    this.providerArn = stack.formatArn({
      service: 'iot',
      resource: 'certificateprovider',
      resourceName: this.providerName,
    });
    this.invokePermission = new CfnPermission(this, 'InvokedByIot', {
      action: 'lambda:InvokeFunction',
      functionName: this.function.functionArn,
      principal: 'iot.amazonaws.com',
      sourceArn: this.providerArn,
      sourceAccount: stack.account,
    });
    this.provider = new CfnCertificateProvider(this, 'Provider', {
      certificateProviderName: this.providerName,
      lambdaFunctionArn: this.function.functionArn,
      accountDefaultForOperations: PROVIDER_OPERATIONS,
    });
    // AWS IoT may call the function as soon as the provider exists
    this.provider.addResourceDependency(this.invokePermission);
  }

  private grantPca(arn: string): void {
    this.function.addToRolePolicy(
      new PolicyStatement({
        actions: ['acm-pca:DescribeCertificateAuthority', 'acm-pca:IssueCertificate', 'acm-pca:GetCertificate'],
        resources: [arn],
      }),
    );
  }

  /** SsmCaKeyStore or KmsCaKeyStore for this one CA: its parameters, its certificate in AWS IoT, its key. */
  private grantCertflowCa(caId: string, caKeyStore: 'ssm' | 'kms', kmsKeys: readonly string[]): void {
    const stack = Stack.of(this);
    const parameter = (name: string) => stack.formatArn({ service: 'ssm', resource: 'parameter', resourceName: name });
    const names =
      caKeyStore === 'ssm'
        ? [caKeyParameter(caId), caCertParameter(caId), caChainParameter(caId)]
        : [caKmsKeyParameter(caId), caChainParameter(caId)];
    this.function.addToRolePolicy(
      new PolicyStatement({ actions: ['ssm:GetParameter'], resources: names.map(parameter) }),
    );
    // certflow-created CAs keep their certificate in SSM; CDF's are registered with AWS IoT
    this.function.addToRolePolicy(
      new PolicyStatement({
        actions: ['iot:DescribeCACertificate'],
        resources: [stack.formatArn({ service: 'iot', resource: 'cacert', resourceName: caId })],
      }),
    );
    if (caKeyStore === 'kms') {
      this.function.addToRolePolicy(
        new PolicyStatement({ actions: ['kms:Sign', 'kms:GetPublicKey'], resources: [...kmsKeys] }),
      );
      return;
    }
    // The SecureString may be encrypted with aws/ssm, the stack's CA key or CDF's key: kms:Decrypt is usable only by
    // SSM in this region and only for the CA key parameter (SSM's encryption context is the parameter's ARN).
    this.function.addToRolePolicy(
      new PolicyStatement({
        actions: ['kms:Decrypt'],
        resources: [stack.formatArn({ service: 'kms', resource: 'key', resourceName: '*' })],
        conditions: {
          StringEquals: {
            'kms:ViaService': `ssm.${stack.region}.${stack.urlSuffix}`,
            'kms:EncryptionContext:PARAMETER_ARN': parameter(caKeyParameter(caId)),
          },
        },
      }),
    );
    NagSuppressions.addResourceSuppressions(
      this.function.role,
      [
        {
          id: 'AwsSolutions-IAM5',
          reason:
            'The CA key SecureString may use aws/ssm, the stack CA-key KMS key or a key CDF made: kms:Decrypt on ' +
            'key/* is limited to SSM in this region (kms:ViaService) and to the one CA key parameter ' +
            '(kms:EncryptionContext:PARAMETER_ARN).',
          appliesTo: [arnFinding('kms', 'key/*')],
        },
      ],
      true,
    );
  }
}
