import {
  type EventBridgeClient,
  PutEventsCommand,
  type PutEventsRequestEntry,
  type PutEventsResultEntry,
} from '@aws-sdk/client-eventbridge';
import { ValidationError } from '../../core/errors';
import type { DomainEvent, EventPublisher } from '../../core/ports';
import { defaultSleep } from './sdk-errors';

export { EVENT_SOURCE } from '../../core/events';
import { EVENT_SOURCE } from '../../core/events';
/** PutEvents limits: 10 entries and 256 KB per request (an entry counts Source + DetailType + Detail bytes). */
export const MAX_ENTRIES_PER_REQUEST = 10;
export const MAX_REQUEST_BYTES = 256 * 1024;
const PRIVATE_KEY_MARKER = 'PRIVATE KEY-----';

/** Some entries were still refused by EventBridge after every attempt. */
export class EventPublishError extends Error {
  override readonly name = 'EventPublishError';

  constructor(
    message: string,
    readonly failures: { detailType: string; errorCode?: string; errorMessage?: string }[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface EventBridgePublisherOptions {
  /** PutEvents calls per entry, the first included (default 3) */
  maxAttempts?: number;
  /** first backoff ceiling in ms, doubled per retry, full jitter (default 100) */
  baseDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export interface PreparedEntry {
  entry: PutEventsRequestEntry;
  size: number;
}

/** The entry size as EventBridge counts it ("Calculating PutEvents event entry size"). */
export function entrySize(entry: PutEventsRequestEntry): number {
  return (
    (entry.Time ? 14 : 0) +
    Buffer.byteLength(entry.Source ?? '') +
    Buffer.byteLength(entry.DetailType ?? '') +
    Buffer.byteLength(entry.Detail ?? '') +
    (entry.Resources ?? []).reduce((sum, r) => sum + Buffer.byteLength(r), 0)
  );
}

/** EventPublisher on an EventBridge custom bus: `source: certflow`, batched, partial failures retried. */
export class EventBridgePublisher implements EventPublisher {
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;

  constructor(
    private readonly client: EventBridgeClient,
    readonly busName: string,
    options: EventBridgePublisherOptions = {},
  ) {
    this.maxAttempts = options.maxAttempts ?? 3;
    this.baseDelayMs = options.baseDelayMs ?? 100;
    this.sleep = options.sleep ?? defaultSleep;
    this.random = options.random ?? Math.random;
  }

  async publish(events: DomainEvent[]): Promise<void> {
    // every event is checked before anything is sent: a refused event publishes nothing
    const prepared = events.map((e) => this.prepare(e));
    for (const batch of batches(prepared)) await this.sendWithRetry(batch);
  }

  private prepare(event: DomainEvent): PreparedEntry {
    const detail = JSON.stringify(event.detail);
    if (detail.includes(PRIVATE_KEY_MARKER)) {
      // defence in depth: events never carry key material (the message names the event, never the content)
      throw new ValidationError(
        'PRIVATE_KEY_IN_EVENT',
        `refusing to publish "${event.detailType}": its detail holds a private key`,
      );
    }
    const entry: PutEventsRequestEntry = {
      Source: EVENT_SOURCE,
      DetailType: event.detailType,
      Detail: detail,
      EventBusName: this.busName,
    };
    const size = entrySize(entry);
    if (size > MAX_REQUEST_BYTES) {
      throw new ValidationError(
        'EVENT_TOO_LARGE',
        `event "${event.detailType}" is ${size} bytes (limit ${MAX_REQUEST_BYTES})`,
      );
    }
    return { entry, size };
  }

  private async sendWithRetry(batch: PutEventsRequestEntry[]): Promise<void> {
    let pending = batch;
    for (let attempt = 1; ; attempt++) {
      const output = await this.client.send(new PutEventsCommand({ Entries: pending }));
      if (!output.FailedEntryCount) return;
      const results: PutEventsResultEntry[] = output.Entries ?? [];
      // Entries[i] answers request entry i; without them, every entry counts as failed
      const failed = pending
        .map((entry, i) => ({ entry, result: results[i] }))
        .filter(({ result }) => result === undefined || result.ErrorCode !== undefined || !result.EventId);
      if (failed.length === 0) return;
      if (attempt >= this.maxAttempts) {
        throw new EventPublishError(
          `EventBridge refused ${failed.length} of ${batch.length} events after ${attempt} attempts`,
          failed.map(({ entry, result }) => ({
            detailType: entry.DetailType ?? '',
            ...(result?.ErrorCode !== undefined ? { errorCode: result.ErrorCode } : {}),
            ...(result?.ErrorMessage !== undefined ? { errorMessage: result.ErrorMessage } : {}),
          })),
        );
      }
      pending = failed.map(({ entry }) => entry);
      await this.sleep(Math.floor(this.random() * this.baseDelayMs * 2 ** (attempt - 1)));
    }
  }
}

/** Splits entries into PutEvents requests of at most 10 entries and 256 KB, keeping their order. */
export function batches(entries: PreparedEntry[]): PutEventsRequestEntry[][] {
  const result: PutEventsRequestEntry[][] = [];
  let current: PutEventsRequestEntry[] = [];
  let bytes = 0;
  for (const { entry, size } of entries) {
    if (current.length > 0 && (current.length >= MAX_ENTRIES_PER_REQUEST || bytes + size > MAX_REQUEST_BYTES)) {
      result.push(current);
      current = [];
      bytes = 0;
    }
    current.push(entry);
    bytes += size;
  }
  if (current.length > 0) result.push(current);
  return result;
}
