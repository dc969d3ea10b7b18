import { Duration } from 'aws-cdk-lib';
import { Archive, EventBus } from 'aws-cdk-lib/aws-events';
import { Grant, IGrantable } from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { EVENT_SOURCE } from '../../lambdas/core/events';

export interface CertflowEventBusProps {
  /** default `certflow` */
  readonly eventBusName?: string;
  /** how long the archive keeps certflow's events for replay, default 90 days */
  readonly archiveRetention?: Duration;
}

/** The custom bus every certflow event goes to (`source: "certflow"`), with an archive of those events for replay. */
export class CertflowEventBus extends Construct {
  readonly bus: EventBus;
  readonly archive: Archive;

  constructor(scope: Construct, id: string, props: CertflowEventBusProps = {}) {
    super(scope, id);
    this.bus = new EventBus(this, 'Bus', { eventBusName: props.eventBusName ?? 'certflow' });
    this.archive = this.bus.archive('Archive', {
      description: `certflow events (source ${EVENT_SOURCE}), kept for replay`,
      eventPattern: { source: [EVENT_SOURCE] },
      retention: props.archiveRetention ?? Duration.days(90),
    });
  }

  get eventBusName(): string {
    return this.bus.eventBusName;
  }

  get eventBusArn(): string {
    return this.bus.eventBusArn;
  }

  /** events:PutEvents on this bus only. */
  grantPutEvents(grantee: IGrantable): Grant {
    return this.bus.grantPutEventsTo(grantee);
  }
}
