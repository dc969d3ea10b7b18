import { Stack, StackProps } from 'aws-cdk-lib';
import { EventBus } from 'aws-cdk-lib/aws-events';
import { Construct } from 'constructs';

/** The certflow stack: it only composes the constructs of lib/constructs, one per capability. */
export class CertflowStack extends Stack {
  readonly bus: EventBus;

  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    this.bus = new EventBus(this, 'Bus', { eventBusName: `${this.stackName}-events` });
  }
}
