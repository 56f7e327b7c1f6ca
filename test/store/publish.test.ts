// A publish writes one delivery per subscribed webhook: one through the prepared single-row insert, more in
// multi-row chunks of 200. Both paths, on both stores, must write exactly the deliveries the fan-out names.
import { describe, expect, it } from 'vitest';
import { EventStore } from '../../server/store/events.js';
import { WebhookStore } from '../../server/store/webhooks.js';
import { backends, webhookInput, withMigratedStore } from '../support/backends.js';

const secret = `whsec_${Buffer.alloc(32, 9).toString('base64')}`;
const hook = (n: number, events: string[]) => webhookInput(`fanout${n}`, { events });

for (const backend of backends) {
  describe.skipIf(!backend.available)(`publish fan-out on ${backend.name}`, () => {
    it('writes one delivery per subscribed webhook, for one subscriber and across several insert chunks', async () => {
      await withMigratedStore(backend, async (db) => {
        const webhooks = new WebhookStore(db);
        const wide: string[] = [];
        for (let i = 0; i < 450; i++) wide.push((await webhooks.create('wide', hook(i, ['order.*']), secret)).id);
        const single = await webhooks.create('single', hook(1_000, ['order.*']), secret);
        await webhooks.create('single', hook(1_001, ['invoice.*']), secret);

        const events = new EventStore(db);
        const one = await events.publish('single', { type: 'order.created', data: { n: 1 } });
        const many = await events.publish('wide', { type: 'order.created', data: { n: 2 } });
        expect([one.event.deliveries, many.event.deliveries]).toEqual([1, 450]);

        const rows = await db
          .selectFrom('deliveries')
          .select(['event_id', 'webhook_id', 'message_id', 'status'])
          .execute();
        const of = (eventId: string) => rows.filter((row) => row.event_id === eventId);
        expect(of(one.event.id).map((row) => row.webhook_id)).toEqual([single.id]);
        expect(of(many.event.id).map((row) => row.webhook_id).sort()).toEqual([...wide].sort());
        expect(new Set(rows.map((row) => row.message_id)).size).toBe(451);
        expect(new Set(rows.map((row) => row.status))).toEqual(new Set(['pending']));
      });
    }, 60_000);
  });
}
