import { EVENT_SOURCE } from '../../core/events';
import type { DomainEvent, EventPublisher } from '../../core/ports';

/** An event as EventBridge delivers it to a rule target. */
export interface BusEvent {
  version: '0';
  id: string;
  'detail-type': string;
  source: string;
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: Record<string, unknown>;
}

/** The subset of EventBridge patterns certflow's rules use: exact values and `prefix`, on top-level fields and detail. */
export type EventPattern = Record<string, unknown>;

export function matchesPattern(event: Record<string, unknown>, pattern: EventPattern): boolean {
  return Object.entries(pattern).every(([field, expected]) => {
    const actual = event[field];
    if (Array.isArray(expected)) {
      return expected.some((e) =>
        typeof e === 'object' && e !== null && 'prefix' in e
          ? typeof actual === 'string' && actual.startsWith(String((e as { prefix: string }).prefix))
          : actual === e,
      );
    }
    if (typeof expected === 'object' && expected !== null) {
      return (
        typeof actual === 'object' &&
        actual !== null &&
        matchesPattern(actual as Record<string, unknown>, expected as EventPattern)
      );
    }
    return false;
  });
}

let sequence = 0;

function deliver(target: (event: BusEvent) => Promise<unknown>, event: BusEvent): Promise<unknown> {
  try {
    return target(event);
  } catch (error) {
    return Promise.reject(error);
  }
}

function limitInFlight<T>(target: (event: T) => Promise<unknown>, max: number): (event: T) => Promise<unknown> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (event) => {
    // a finished delivery hands its slot to the next waiting one, so `active` never exceeds max
    if (active >= max) await new Promise<void>((resolve) => waiting.push(resolve));
    else active++;
    try {
      return await target(event);
    } finally {
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
}

/**
 * The local runtime's event bus: rules (patterns) evaluated in process, targets called asynchronously as
 * EventBridge does. Keeps the latest events for the console and tests. Refuses key material.
 */
export class LocalEventBus implements EventPublisher {
  private readonly rules: { name: string; pattern: EventPattern; target: (event: BusEvent) => Promise<unknown> }[] = [];
  readonly history: BusEvent[] = [];
  private readonly historySizes: number[] = [];
  private historyBytes = 0;
  private readonly pending = new Set<Promise<unknown>>();

  /**
   * The history keeps the latest `historyLimit` events, and fewer when their details together pass
   * `historyBudgetBytes` of JSON: a large batch's Certificate Issued events (500 certificates each) would otherwise
   * keep 100,000 certificates' records alive in memory for nothing.
   */
  constructor(
    private readonly historyLimit = 200,
    private readonly historyBudgetBytes = 4 * 1024 * 1024,
  ) {}

  /**
   * `maxInFlight` bounds the deliveries of this rule that run at once; the others wait, in order (a target that
   * is slower than the events, such as the inventory during a large batch, then holds one queue of events instead
   * of one running execution per event).
   */
  addRule(
    name: string,
    pattern: EventPattern,
    target: (event: BusEvent) => Promise<unknown>,
    options: { maxInFlight?: number } = {},
  ): void {
    this.rules.push({
      name,
      pattern,
      target: options.maxInFlight ? limitInFlight(target, options.maxInFlight) : target,
    });
  }

  async publish(events: DomainEvent[]): Promise<void> {
    await this.putEvents(events.map((e) => ({ Source: EVENT_SOURCE, DetailType: e.detailType, Detail: e.detail })));
  }

  /** The Step Functions `events:putEvents` integration's entry point (Detail as object or JSON string). */
  async putEvents(
    entries: { Source?: string; DetailType?: string; Detail?: unknown }[],
  ): Promise<{ FailedEntryCount: number; Entries: { EventId: string }[] }> {
    const out: { EventId: string }[] = [];
    for (const entry of entries) {
      const detail = (typeof entry.Detail === 'string' ? JSON.parse(entry.Detail) : (entry.Detail ?? {})) as Record<
        string,
        unknown
      >;
      const json = JSON.stringify(detail);
      if (json.includes('PRIVATE KEY-----')) throw new Error('refusing an event that carries a private key');
      const event: BusEvent = {
        version: '0',
        id: `local-${Date.now()}-${++sequence}`,
        'detail-type': entry.DetailType ?? '',
        source: entry.Source ?? '',
        account: '000000000000',
        time: new Date().toISOString(),
        region: 'local',
        resources: [],
        detail,
      };
      this.remember(event, json.length);
      for (const rule of this.rules) {
        if (!matchesPattern(event as unknown as Record<string, unknown>, rule.pattern)) continue;
        // a target that throws at once (a workflow runner that is closed) fails its delivery, not the publisher
        const delivery = deliver(rule.target, event).catch(() => undefined);
        this.pending.add(delivery);
        void delivery.finally(() => this.pending.delete(delivery));
      }
      out.push({ EventId: event.id });
    }
    return { FailedEntryCount: 0, Entries: out };
  }

  private remember(event: BusEvent, bytes: number): void {
    this.history.push(event);
    this.historySizes.push(bytes);
    this.historyBytes += bytes;
    let drop = 0;
    while (
      this.history.length - drop > 1 &&
      (this.history.length - drop > this.historyLimit || this.historyBytes > this.historyBudgetBytes)
    ) {
      this.historyBytes -= this.historySizes[drop]!;
      drop++;
    }
    if (drop > 0) {
      this.history.splice(0, drop);
      this.historySizes.splice(0, drop);
    }
  }

  /** Waits for rule targets started so far (tests, shutdown). */
  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }
}
