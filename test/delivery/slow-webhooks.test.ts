// The limits on slow webhooks (server/delivery/slow-webhooks.ts), the wait of a delivery they hold back, and their
// settings. Time is passed in, so every case is exact; the worker applying them to real receivers is
// test/delivery/slow-receivers.test.ts.
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../server/config.js';
import { SlowWebhooks } from '../../server/delivery/slow-webhooks.js';
import { postponement } from '../../server/delivery/worker.js';

const limits = { slowAfterMs: 1_000, perWebhook: 2, total: 3, forgetAfterMs: 60_000 };

/** Admits `count` attempts to the webhook at `now`; how many were admitted. */
function admitMany(slow: SlowWebhooks, webhookId: string, count: number, now: number): number {
  let admitted = 0;
  for (let i = 0; i < count; i++) if (slow.admit(webhookId, now)) admitted++;
  return admitted;
}

describe('slow webhooks', () => {
  it('lets a fast webhook have as many attempts in flight as the worker has slots', () => {
    const slow = new SlowWebhooks(limits);
    expect(admitMany(slow, 'fast', 50, 0)).toBe(50);
    for (let i = 0; i < 50; i++) slow.finished('fast', 0, 20);
    expect(slow.isSlow('fast', 20)).toBe(false);
    expect(admitMany(slow, 'fast', 50, 20)).toBe(50);
  });

  it('limits a webhook whose last attempt took slowAfterMs to perWebhook attempts in flight', () => {
    const slow = new SlowWebhooks(limits);
    expect(slow.admit('w', 0)).toBe(true);
    slow.finished('w', 0, 1_000);
    expect(slow.isSlow('w', 1_000)).toBe(true);
    expect(admitMany(slow, 'w', 5, 1_000)).toBe(2);
    // One slot back: one more.
    slow.finished('w', 1_000, 1_100);
    expect(slow.isSlow('w', 1_100)).toBe(false); // that attempt was fast
    expect(admitMany(slow, 'w', 5, 1_100)).toBe(5);
  });

  it('counts a webhook slow while one of its attempts has been in flight slowAfterMs, before any ends', () => {
    const slow = new SlowWebhooks(limits);
    expect(admitMany(slow, 'hung', 4, 0)).toBe(4);
    expect(slow.isSlow('hung', 999)).toBe(false);
    expect(slow.admit('hung', 999)).toBe(true);
    expect(slow.isSlow('hung', 1_000)).toBe(true);
    // Five in flight, over its two: nothing more until all but one have ended.
    expect(slow.admit('hung', 1_000)).toBe(false);
    for (let i = 0; i < 4; i++) slow.finished('hung', 0, 5_000);
    // The attempt from 999 is still out: room for one more of its two.
    expect(admitMany(slow, 'hung', 3, 5_000)).toBe(1);
    slow.finished('hung', 999, 5_001);
    expect(admitMany(slow, 'hung', 3, 5_001)).toBe(1);
  });

  it('keeps the slow webhooks together to `total` attempts in flight, and leaves the fast ones alone', () => {
    const slow = new SlowWebhooks(limits);
    for (const id of ['a', 'b', 'c']) {
      slow.admit(id, 0);
      slow.finished(id, 0, 2_000);
    }
    expect(admitMany(slow, 'a', 5, 2_000)).toBe(2);
    expect(admitMany(slow, 'b', 5, 2_000)).toBe(1); // total 3 reached
    expect(admitMany(slow, 'c', 5, 2_000)).toBe(0);
    expect(admitMany(slow, 'fast', 10, 2_000)).toBe(10);
    // Fast this time: 'a' is fast again, and its other attempt no longer counts towards the slow ones' three.
    slow.finished('a', 2_000, 2_500);
    expect(admitMany(slow, 'c', 5, 2_500)).toBe(2);
  });

  it('forgets a slow webhook that has had no attempt for forgetAfterMs', () => {
    const slow = new SlowWebhooks(limits);
    slow.admit('w', 0);
    slow.finished('w', 0, 1_500);
    expect(slow.isSlow('w', 61_499)).toBe(true);
    expect(slow.isSlow('w', 61_500)).toBe(false);
    expect(admitMany(slow, 'w', 5, 61_500)).toBe(5);
  });

  it('frees one slot per finished attempt even when two started in the same millisecond', () => {
    const slow = new SlowWebhooks(limits);
    slow.admit('w', 0);
    slow.finished('w', 0, 1_000);
    expect(admitMany(slow, 'w', 2, 1_000)).toBe(2);
    slow.finished('w', 1_000, 3_000);
    expect(admitMany(slow, 'w', 2, 3_000)).toBe(1);
  });
});

describe('postponement of a delivery a slow webhook may not take now', () => {
  const created = '2026-01-01T00:00:00.000Z';
  const at = (ms: number) => Date.parse(created) + ms;

  it('waits about as long as the delivery has waited, from 1 s to 5 min, times 0.5 to 1', () => {
    expect(postponement(created, at(0), 1)).toBe(1_000);
    expect(postponement(created, at(0), 0)).toBe(500);
    expect(postponement(created, at(10_000), 1)).toBe(10_000);
    expect(postponement(created, at(10_000), 0)).toBe(5_000);
    expect(postponement(created, at(3_600_000), 1)).toBe(300_000);
    // A clock behind the row's creation still waits the least, never a negative time.
    expect(postponement(created, at(-60_000), 1)).toBe(1_000);
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
    [{ DELIVERY_SLOW_AFTER: '10s' }, /DELIVERY_SLOW_AFTER must be from 1ms to less than DELIVERY_TIMEOUT_MS \(10000ms\)/],
    [{ DELIVERY_SLOW_AFTER: '0' }, /DELIVERY_SLOW_AFTER must be from 1ms/],
    [{ DELIVERY_SLOW_AFTER: 'soon' }, /DELIVERY_SLOW_AFTER must be a duration/],
    [{ DELIVERY_SLOW_WEBHOOK_CONCURRENCY: '0' }, /DELIVERY_SLOW_WEBHOOK_CONCURRENCY must be a whole number from 1/],
    [{ DELIVERY_SLOW_WEBHOOK_CONCURRENCY: '2.5' }, /DELIVERY_SLOW_WEBHOOK_CONCURRENCY must be a whole number/],
  ])('refuses %j with a line that says what is wrong', (env, message) => {
    expect(() => loadConfig({ ...base, ...env })).toThrow(message);
  });
});
