/**
 * The expiry sweep: `Certificate Expiring` for every active certificate whose notAfter falls within the window,
 * once per certificate and window. Runs in slices (a budget of certificates per call, resumed by a token) so a
 * scheduled workflow can loop over millions of certificates without hitting a Lambda's time limit.
 */
import { domainEvent } from '../events';
import type { Clock, EventPublisher, Inventory } from '../ports';

export interface SweepInput {
  windowDays: number;
  /** from the previous slice */
  nextToken?: string;
  /** the sweep's reference time (ISO), fixed by the first slice so all slices use the same window */
  asOf?: string;
}

export interface SweepResult {
  windowDays: number;
  asOf: string;
  examined: number;
  notified: number;
  nextToken?: string;
  done: boolean;
}

const SLICE = 2000;

export async function sweepExpiring(
  deps: { inventory: Inventory; events: EventPublisher; clock: Clock },
  input: SweepInput,
): Promise<SweepResult> {
  const asOf = input.asOf ?? deps.clock.now().toISOString();
  const now = Date.parse(asOf);
  const before = new Date(now + input.windowDays * 86_400_000).toISOString();
  const window = `${input.windowDays}d`;
  let token = input.nextToken;
  let examined = 0;
  let notified = 0;
  do {
    const page = await deps.inventory.listExpiring(before, {
      status: 'active',
      limit: 500,
      ...(token ? { nextToken: token } : {}),
    });
    const events = [];
    for (const record of page.items) {
      examined++;
      if (Date.parse(record.notAfter) < now) continue; // expired already: not "expiring"
      if (!(await deps.inventory.markExpiringNotified(record.certificateId, window))) continue;
      notified++;
      events.push(
        domainEvent('Certificate Expiring', {
          certificateId: record.certificateId,
          serialNumber: record.serialNumber,
          issuerId: record.issuerId,
          kind: record.kind,
          commonName: record.commonName,
          notAfter: record.notAfter,
          windowDays: input.windowDays,
          ...(record.thingName ? { thingName: record.thingName } : {}),
        }),
      );
    }
    await deps.events.publish(events);
    token = page.nextToken;
  } while (token && examined < SLICE);
  return {
    windowDays: input.windowDays,
    asOf,
    examined,
    notified,
    ...(token ? { nextToken: token } : {}),
    done: !token,
  };
}
