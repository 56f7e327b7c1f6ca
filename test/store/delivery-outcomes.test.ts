// Recording a batch of delivery outcomes: one outcome that cannot be written (its webhook was deleted mid-flight,
// or PostgreSQL refuses its text) must not take the other outcomes of the batch, other tenants' included, with it.
import { describe, expect, it } from 'vitest';
import { type ClaimedDelivery, type CompletedAttempt, DeliveryStore } from '../../server/store/deliveries.js';
import { EventStore } from '../../server/store/events.js';
import { WebhookStore } from '../../server/store/webhooks.js';
import { type Backend, backends, withMigratedStore } from '../support/backends.js';

const secret = `whsec_${Buffer.alloc(32, 3).toString('base64')}`;
const hook = (n: number) => ({
  callbackUrl: `https://outcome${n}.example.com/h`,
  callbackUrlKey: `https://outcome${n}.example.com/h`,
  events: ['*'],
  enabled: true,
  headers: {},
});
const delivered = (delivery: ClaimedDelivery, responseBody = 'ok'): CompletedAttempt => ({
  delivery,
  attemptedAt: new Date(),
  result: { ok: true, responseStatus: 200, durationMs: 3, responseBody, detail: 'The receiver answered HTTP 200.' },
  next: { status: 'succeeded' },
});
const autoDisable = { afterMs: 86_400_000, reason: 'failing' };

interface OutcomeStores {
  webhooks: WebhookStore;
  deliveries: DeliveryStore;
  events: EventStore;
}

/** A fresh, migrated store on `backend` for `test`, closed and removed afterwards. */
function withStores(backend: Backend, test: (stores: OutcomeStores) => Promise<void>): Promise<void> {
  return withMigratedStore(backend, (db) =>
    test({ webhooks: new WebhookStore(db), deliveries: new DeliveryStore(db), events: new EventStore(db) }),
  );
}

for (const backend of backends) {
  describe.skipIf(!backend.available)(`delivery outcomes on ${backend.name}`, () => {
    it('records the rest of a batch when one delivery was deleted with its webhook mid-flight', async () => {
      await withStores(backend, async ({ webhooks, deliveries, events }) => {
        const [a, b] = [await webhooks.create('t1', hook(1), secret), await webhooks.create('t2', hook(2), secret)];
        await events.publish('t1', { type: 'order.created', data: {} });
        await events.publish('t2', { type: 'order.created', data: {} });
        const claimed = await deliveries.claimDue(10, 60_000);
        expect(claimed).toHaveLength(2);
        await webhooks.delete('t1', a.id);
        await deliveries.complete(claimed.map((d) => delivered(d)), autoDisable);
        const page = await deliveries.listForWebhook('t2', b.id, { limit: 10 });
        expect(page.items).toMatchObject([{ status: 'succeeded', attempts: [{ succeeded: true }] }]);
      });
    });

    it('records one attempt when one batch reports the same delivery under an old and a new lease', async () => {
      await withStores(backend, async ({ webhooks, deliveries, events }) => {
        const a = await webhooks.create('t1', hook(1), secret);
        await events.publish('t1', { type: 'order.created', data: {} });
        const start = new Date(Date.now() + 1_000);
        const [stale] = await deliveries.claimDue(10, 1_000, start);
        // Sent once, its outcome late; the lease ran out, it was claimed and sent again; both outcomes land together.
        const [current] = await deliveries.claimDue(10, 60_000, new Date(start.getTime() + 2_000));
        expect(current!.id).toBe(stale!.id);
        await deliveries.complete([delivered(stale!), delivered(current!)], autoDisable);
        expect((await deliveries.listForWebhook('t1', a.id, { limit: 10 })).items[0]).toMatchObject({
          status: 'succeeded',
          attempts: [{ succeeded: true }],
      });
      expect((await deliveries.listForWebhook('t1', a.id, { limit: 10 })).items[0]!.attempts).toHaveLength(1);
      });
    });

    it('records a batch of successes only for the deliveries whose lease the worker still holds', async () => {
      await withStores(backend, async ({ webhooks, deliveries, events }) => {
        const [a, b] = [await webhooks.create('t1', hook(1), secret), await webhooks.create('t2', hook(2), secret)];
        await events.publish('t1', { type: 'order.created', data: {} });
        await events.publish('t2', { type: 'order.created', data: {} });
        const start = new Date(Date.now() + 1_000);
        const first = await deliveries.claimDue(10, 1_000, start);
        expect(first).toHaveLength(2);
        // Both leases run out and another worker claims both again; then the first worker reports both sent.
        const second = await deliveries.claimDue(10, 60_000, new Date(start.getTime() + 2_000));
        expect(second).toHaveLength(2);
        const staleOfA = first.find((d) => d.webhook_id === a.id)!;
        const currentOfB = second.find((d) => d.webhook_id === b.id)!;
        await deliveries.complete([delivered(staleOfA), delivered(currentOfB)], autoDisable);
        // The stale report is dropped (the new lease holder records its own), the current one is recorded.
        expect((await deliveries.listForWebhook('t1', a.id, { limit: 10 })).items[0]).toMatchObject({
          status: 'pending',
          attempts: [],
      });
      expect((await deliveries.listForWebhook('t2', b.id, { limit: 10 })).items[0]).toMatchObject({
        status: 'succeeded',
        attempts: [{ succeeded: true, responseStatus: 200 }],
      });
      });
    });

    it('postpones a delivery only under its current lease: due again at the time given, no attempt recorded', async () => {
      await withStores(backend, async ({ webhooks, deliveries, events }) => {
        const a = await webhooks.create('t1', hook(1), secret);
        await events.publish('t1', { type: 'order.created', data: {} });
        await events.publish('t1', { type: 'order.paid', data: {} });
        const start = new Date(Date.now() + 1_000);
        const claimed = await deliveries.claimDue(10, 60_000, start);
        expect(claimed).toHaveLength(2);
        const [held, other] = claimed as [ClaimedDelivery, ClaimedDelivery];
        const until = new Date(start.getTime() + 10_000);
        // The second under a lease that is no longer its own (another worker's since): that one changes nothing.
        await deliveries.postpone([
          { delivery: held, until },
          { delivery: { ...other, lease_id: 'a lease that ran out' }, until },
        ]);
        const [shown] = (await deliveries.listForWebhook('t1', a.id, { limit: 10 })).items.filter(
          (delivery) => delivery.id === held.id,
        );
        expect(shown).toMatchObject({ status: 'pending', attempts: [], nextAttemptAt: until.toISOString() });
        expect(await deliveries.claimDue(10, 60_000, new Date(until.getTime() - 1))).toEqual([]);
        const again = await deliveries.claimDue(10, 60_000, until);
        // The other one is still leased (until start + 60 s): only the postponed one is due.
        expect(again.map((delivery) => [delivery.id, delivery.attempt_count])).toEqual([[held.id, 0]]);
      });
    });

    it('postpones more deliveries at once than one statement holds (1,200 of one claim)', async () => {
      await withStores(backend, async ({ webhooks, deliveries, events }) => {
        const a = await webhooks.create('t1', hook(1), secret);
        for (let i = 0; i < 1_200; i += 100) {
          await Promise.all(Array.from({ length: 100 }, () => events.publish('t1', { type: 'order.created', data: {} })));
        }
        const start = new Date(Date.now() + 1_000);
        const claimed = await deliveries.claimDue(1_200, 60_000, start);
        expect(claimed).toHaveLength(1_200);
        // Each its own time, so a CASE that matched the wrong row would show.
        const untilOf = (i: number) => new Date(start.getTime() + 10_000 + i);
        await deliveries.postpone(claimed.map((delivery, i) => ({ delivery, until: untilOf(i) })));
        const due = new Map<string, string>();
        for (let before: { createdAt: string; id: string } | undefined, page; ; before = page.next) {
          page = await deliveries.listForWebhook('t1', a.id, { limit: 500, ...(before ? { before } : {}) });
          for (const item of page.items) due.set(item.id, item.nextAttemptAt!);
          if (!page.next) break;
        }
        expect(due.size).toBe(1_200);
        claimed.forEach((delivery, i) => expect(due.get(delivery.id)).toBe(untilOf(i).toISOString()));
        expect(await deliveries.claimDue(10, 60_000, new Date(start.getTime() + 9_999))).toEqual([]);
      });
    }, 60_000);
  });
}

describe.skipIf(!backends[1]!.available)('delivery outcomes on postgres, text PostgreSQL refuses', () => {
  it('loses only the outcome whose text cannot be stored', async () => {
    await withStores(backends[1]!, async ({ webhooks, deliveries, events }) => {
      const [a, b] = [await webhooks.create('t1', hook(1), secret), await webhooks.create('t2', hook(2), secret)];
      await events.publish('t1', { type: 'order.created', data: {} });
      await events.publish('t2', { type: 'order.created', data: {} });
      const claimed = await deliveries.claimDue(10, 60_000);
      const poisoned = claimed.find((d) => d.webhook_id === a.id)!;
      const good = claimed.find((d) => d.webhook_id === b.id)!;
      await expect(deliveries.complete([delivered(poisoned, 'a\0b'), delivered(good)], autoDisable)).rejects.toThrow(
        /1 delivery outcomes could not be recorded/,
      );
      expect((await deliveries.listForWebhook('t2', b.id, { limit: 10 })).items[0]).toMatchObject({ status: 'succeeded' });
      expect((await deliveries.listForWebhook('t1', a.id, { limit: 10 })).items[0]).toMatchObject({ status: 'pending' });
    });
  });
});
