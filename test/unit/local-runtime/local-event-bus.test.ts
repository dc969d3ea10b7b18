import { LocalEventBus } from '../../../lambdas/adapters/local/local-event-bus';

describe('LocalEventBus', () => {
  it('runs at most maxInFlight deliveries of a rule at once, the others in order, and drain waits for all', async () => {
    const bus = new LocalEventBus();
    let active = 0;
    let peak = 0;
    const delivered: number[] = [];
    bus.addRule(
      'slow',
      { source: ['certflow'] },
      async (event) => {
        active++;
        peak = Math.max(peak, active);
        await new Promise((r) => setTimeout(r, 5));
        delivered.push(event.detail.n as number);
        active--;
      },
      { maxInFlight: 2 },
    );
    const unbounded: number[] = [];
    bus.addRule('fast', { source: ['certflow'] }, async (event) => void unbounded.push(event.detail.n as number));
    for (let n = 0; n < 7; n++) await bus.putEvents([{ Source: 'certflow', DetailType: 'x', Detail: { n } }]);
    await bus.drain();
    expect(peak).toBe(2);
    expect(delivered).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(unbounded).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it('a target that throws at once fails its own delivery, not the publisher nor the other rules', async () => {
    const bus = new LocalEventBus();
    bus.addRule('closed', { source: ['certflow'] }, () => {
      throw new Error('the runner is closed');
    });
    const delivered: string[] = [];
    bus.addRule('open', { source: ['certflow'] }, async (event) => void delivered.push(event['detail-type']));
    await expect(bus.putEvents([{ Source: 'certflow', DetailType: 'x', Detail: {} }])).resolves.toMatchObject({
      FailedEntryCount: 0,
    });
    await bus.drain();
    expect(delivered).toEqual(['x']);
  });

  it('keeps the latest events, at most historyLimit and within its byte budget, and always the newest', async () => {
    const bus = new LocalEventBus(3, 100);
    for (let n = 0; n < 5; n++) await bus.putEvents([{ Source: 'certflow', DetailType: 'x', Detail: { n } }]);
    expect(bus.history.map((e) => e.detail.n)).toEqual([2, 3, 4]);
    // {"n":5,"pad":"…"} is 60 bytes of JSON: two no longer fit in 100
    const pad = 'p'.repeat(42);
    for (let n = 5; n < 7; n++) await bus.putEvents([{ Source: 'certflow', DetailType: 'x', Detail: { n, pad } }]);
    expect(bus.history.map((e) => e.detail.n)).toEqual([6]);
    // one event larger than the whole budget is still kept, as the newest
    await bus.putEvents([{ Source: 'certflow', DetailType: 'x', Detail: { n: 7, pad: 'p'.repeat(500) } }]);
    expect(bus.history.map((e) => e.detail.n)).toEqual([7]);
    await bus.putEvents([{ Source: 'certflow', DetailType: 'x', Detail: { n: 8 } }]);
    expect(bus.history.map((e) => e.detail.n)).toEqual([8]);
  });
});
