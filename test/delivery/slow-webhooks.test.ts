// The limits on slow webhooks (server/delivery/slow-webhooks.ts), the pacing of the deliveries they hold back, and
// their settings. Time is passed in, so every case is exact; the worker applying them to real receivers is
// test/delivery/slow-receivers.test.ts.
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../server/config.js';
import { type LimitChange, SlowWebhooks } from '../../server/delivery/slow-webhooks.js';

const limits = {
  slowAfterMs: 1_000,
  perWebhook: 2,
  total: 4,
  forgetAfterMs: 60_000,
  horizonMs: 10_000,
  spreadAtMostMs: 100_000,
};

/** Admits `count` attempts to the webhook at `now`; how many were admitted. */
function admitMany(slow: SlowWebhooks, webhookId: string, count: number, now: number): number {
  let admitted = 0;
  for (let i = 0; i < count; i++) if (slow.admit(webhookId, now)) admitted++;
  return admitted;
}

/** A webhook limited by one attempt that took `tookMs`, finished at `now`. */
function limitedBySlowAttempt(slow: SlowWebhooks, webhookId: string, now: number, tookMs = 1_500) {
  expect(slow.admit(webhookId, now - tookMs)).toBe(true);
  slow.finished(webhookId, now - tookMs, now);
}

describe('slow webhooks', () => {
  it('lets a fast webhook have as many attempts in flight as the worker has slots', () => {
    const slow = new SlowWebhooks(limits);
    expect(admitMany(slow, 'fast', 50, 0)).toBe(50);
    for (let i = 0; i < 50; i++) slow.finished('fast', 0, 20);
    expect(slow.limitFor('fast', 20)).toBeUndefined();
    expect(admitMany(slow, 'fast', 50, 20)).toBe(50);
  });

  it('limits a webhook to perWebhook attempts in flight after an attempt that took slowAfterMs', () => {
    const slow = new SlowWebhooks(limits);
    limitedBySlowAttempt(slow, 'w', 1_000, 1_000);
    expect(slow.limitFor('w', 1_000)).toBe(2);
    expect(admitMany(slow, 'w', 5, 1_000)).toBe(2);
    // The receiver's own time decides, not the wait before the attempt went out: both were fast.
    slow.finished('w', 1_000, 5_000, 10);
    slow.finished('w', 1_000, 5_000, 10);
    expect(slow.limitFor('w', 5_000)).toBe(4);
  });

  it('opens the limit by one per faster attempt and lifts it past `total`; a slow attempt closes it again', () => {
    const slow = new SlowWebhooks(limits);
    limitedBySlowAttempt(slow, 'w', 2_000);
    const seen: (number | undefined)[] = [];
    for (let i = 0; i < 3; i++) {
      expect(slow.admit('w', 2_000 + i)).toBe(true);
      slow.finished('w', 2_000 + i, 2_010 + i);
      seen.push(slow.limitFor('w', 2_010 + i));
    }
    expect(seen).toEqual([3, 4, undefined]);
    expect(admitMany(slow, 'w', 10, 3_000)).toBe(10);
    slow.finished('w', 3_000, 4_000);
    expect(slow.limitFor('w', 4_000)).toBe(2);
    expect(admitMany(slow, 'w', 5, 4_000)).toBe(0); // nine still in flight
  });

  it('closes a grown limit again while an attempt of its webhook hangs', () => {
    const slow = new SlowWebhooks(limits);
    limitedBySlowAttempt(slow, 'w', 1_000);
    expect(slow.admit('w', 1_000)).toBe(true); // this one hangs
    expect(slow.admit('w', 1_500)).toBe(true);
    slow.finished('w', 1_500, 1_600);
    expect(slow.limitFor('w', 1_999)).toBe(3);
    expect(slow.limitFor('w', 2_000)).toBe(2);
  });

  it('limits a webhook while one of its attempts has been in flight slowAfterMs, before any ends', () => {
    const slow = new SlowWebhooks(limits);
    expect(admitMany(slow, 'hung', 4, 0)).toBe(4);
    expect(slow.admit('hung', 999)).toBe(true);
    expect(slow.limitFor('hung', 999)).toBeUndefined();
    expect(slow.limitFor('hung', 1_000)).toBe(2);
    // Five in flight, over its two: nothing more until all but one have ended.
    expect(slow.admit('hung', 1_000)).toBe(false);
    for (let i = 0; i < 4; i++) slow.finished('hung', 0, 5_000);
    // The attempt from 999 is still out: room for one more of its two.
    expect(admitMany(slow, 'hung', 3, 5_000)).toBe(1);
  });

  it('keeps limited webhooks together to `total` attempts in flight, and leaves the others alone', () => {
    const slow = new SlowWebhooks(limits);
    for (const id of ['a', 'b', 'c']) limitedBySlowAttempt(slow, id, 2_000);
    expect(admitMany(slow, 'a', 5, 2_000)).toBe(2);
    expect(admitMany(slow, 'b', 5, 2_000)).toBe(2); // total 4 reached
    expect(admitMany(slow, 'c', 5, 2_000)).toBe(0);
    expect(admitMany(slow, 'fast', 10, 2_000)).toBe(10);
    slow.finished('a', 2_000, 2_500);
    expect(admitMany(slow, 'c', 5, 2_500)).toBe(1);
  });

  it('keeps the limit of a webhook whose deliveries are all held back, though none of its attempts finishes', () => {
    const slow = new SlowWebhooks(limits);
    for (const id of ['a', 'b', 'c']) limitedBySlowAttempt(slow, id, 2_000);
    expect(admitMany(slow, 'a', 2, 2_000) + admitMany(slow, 'b', 2, 2_000)).toBe(4); // all of `total`
    // 'c' is held back for longer than forgetAfterMs while 'a' and 'b' hang on to their slots.
    for (let now = 2_000; now <= 122_000; now += 10_000) expect(slow.admit('c', now)).toBe(false);
    expect(slow.limitFor('c', 122_000)).toBe(2);
  });

  it('forgets a limit when no attempt of its webhook finished for forgetAfterMs', () => {
    const slow = new SlowWebhooks(limits);
    limitedBySlowAttempt(slow, 'w', 1_500);
    expect(slow.limitFor('w', 61_499)).toBe(2);
    expect(slow.limitFor('w', 61_500)).toBeUndefined();
    expect(admitMany(slow, 'w', 5, 61_500)).toBe(5);
  });

  it('tells once when a webhook becomes limited and once when its limit is lifted', () => {
    const changes: LimitChange[] = [];
    const slow = new SlowWebhooks(limits, (change) => changes.push(change));
    limitedBySlowAttempt(slow, 'w', 2_000);
    expect(slow.admit('w', 2_000)).toBe(true);
    slow.finished('w', 2_000, 2_100);
    limitedBySlowAttempt(slow, 'w', 4_000); // back to two: still limited, nothing new to tell
    for (let i = 0; i < 3; i++) {
      expect(slow.admit('w', 4_000 + i)).toBe(true);
      slow.finished('w', 4_000 + i, 4_010 + i); // 3, 4, then past `total`: lifted
    }
    expect(changes).toEqual([
      { webhookId: 'w', limited: true, perWebhook: 2, slowMs: 1_500 },
      { webhookId: 'w', limited: false },
    ]);
    expect(slow.limitFor('w', 5_000)).toBeUndefined();
  });

  it('frees one slot per finished attempt even when two started in the same millisecond', () => {
    const slow = new SlowWebhooks(limits);
    limitedBySlowAttempt(slow, 'w', 1_000);
    expect(admitMany(slow, 'w', 2, 1_000)).toBe(2);
    slow.finished('w', 1_000, 3_000);
    expect(admitMany(slow, 'w', 2, 3_000)).toBe(1);
  });
});

describe('pacing of deliveries a limited webhook may not take now', () => {
  it('spaces them by its last slow attempt over its limit, in the order they come, within the horizon', () => {
    const slow = new SlowWebhooks(limits);
    limitedBySlowAttempt(slow, 'w', 1_000, 3_000); // 3 s per attempt, two at a time: one slot every 1.5 s
    expect([1, 2, 3].map(() => slow.nextSlot('w', 1_000))).toEqual([2_500, 4_000, 5_500]);
    // Later postponements queue behind the earlier ones.
    expect(slow.nextSlot('w', 2_000)).toBe(7_000);
    // A slot is never in the past: after a quiet spell the pacing starts from now.
    expect(slow.nextSlot('w', 20_000)).toBe(21_500);
  });

  it('spreads those past the horizon over as long as each has waited, from the horizon to spreadAtMostMs', () => {
    const slow = new SlowWebhooks(limits);
    limitedBySlowAttempt(slow, 'w', 0, 8_000); // one slot every 4 s; horizon 10 s
    expect(slow.nextSlot('w', 0)).toBe(4_000);
    expect(slow.nextSlot('w', 0)).toBe(8_000);
    // Past the horizon: after it, plus up to the horizon again for a delivery that has waited less than that...
    expect(slow.nextSlot('w', 0, 0, 0)).toBe(10_000);
    expect(slow.nextSlot('w', 0, 0, 1)).toBe(20_000);
    expect(slow.nextSlot('w', 0, 5_000, 0.5)).toBe(15_000);
    // ...up to as long as it has waited (it about doubles its wait each time), and spreadAtMostMs at most.
    expect(slow.nextSlot('w', 0, 50_000, 1)).toBe(60_000);
    expect(slow.nextSlot('w', 0, 50_000, 0.5)).toBe(35_000);
    expect(slow.nextSlot('w', 0, 3_600_000, 1)).toBe(110_000);
    // The pacing within the horizon goes on where it was.
    expect(slow.nextSlot('w', 5_000)).toBe(12_000);
  });

  it('keeps its pacing when a new slow attempt closes the limit again', () => {
    const slow = new SlowWebhooks(limits);
    limitedBySlowAttempt(slow, 'w', 1_000, 2_000); // one slot a second
    expect(slow.nextSlot('w', 1_000)).toBe(2_000);
    expect(slow.nextSlot('w', 1_000)).toBe(3_000);
    limitedBySlowAttempt(slow, 'w', 1_100, 2_000);
    expect(slow.nextSlot('w', 1_100)).toBe(4_000);
  });
});

describe('settings of slow webhooks', () => {
  const base = { DATA_DIR: '/tmp/unused' };

  it('defaults to a fifth of DELIVERY_TIMEOUT_MS and 5 attempts per slow webhook', () => {
    expect(loadConfig(base).delivery).toMatchObject({ slowAfterMs: 2_000, slowWebhookConcurrency: 5 });
    expect(loadConfig({ ...base, DELIVERY_TIMEOUT_MS: '1000' }).delivery.slowAfterMs).toBe(200);
    expect(
      loadConfig({ ...base, DELIVERY_SLOW_AFTER: '500ms', DELIVERY_SLOW_WEBHOOK_CONCURRENCY: '1' }).delivery,
    ).toMatchObject({ slowAfterMs: 500, slowWebhookConcurrency: 1 });
  });

  it.each([
    [
      { DELIVERY_SLOW_AFTER: '10s' },
      /DELIVERY_SLOW_AFTER must be from 1ms to less than DELIVERY_TIMEOUT_MS \(10000ms\), not "10s"/,
    ],
    [{ DELIVERY_SLOW_AFTER: '0' }, /DELIVERY_SLOW_AFTER must be from 1ms/],
    [{ DELIVERY_SLOW_AFTER: 'soon' }, /DELIVERY_SLOW_AFTER must be a duration/],
    [{ DELIVERY_SLOW_WEBHOOK_CONCURRENCY: '0' }, /DELIVERY_SLOW_WEBHOOK_CONCURRENCY must be a whole number from 1/],
    [{ DELIVERY_SLOW_WEBHOOK_CONCURRENCY: '2.5' }, /DELIVERY_SLOW_WEBHOOK_CONCURRENCY must be a whole number/],
  ])('refuses %j with a line that says what is wrong', (env, message) => {
    expect(() => loadConfig({ ...base, ...env })).toThrow(message);
  });
});
