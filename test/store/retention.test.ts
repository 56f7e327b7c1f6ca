// Retention of the delivery log, on both stores: ended deliveries (and their attempts) go once older than the
// retention, events once older than the retention and the idempotency window, pending deliveries never; and the
// worker inside the service prunes on its own. Time is passed in (`now`) where it must be far ahead; the service
// test waits out a one-second retention for real.
import type { Kysely } from 'kysely';
import { v7 } from 'uuid';
import { describe, expect, it } from 'vitest';
import { type CompletedAttempt, DeliveryStore } from '../../server/store/deliveries.js';
import { EventStore } from '../../server/store/events.js';
import { pruneDeliveryLog } from '../../server/store/retention.js';
import { firstRowIdAt } from '../../server/store/row-ids.js';
import type { Database } from '../../server/store/schema.js';
import { WebhookStore } from '../../server/store/webhooks.js';
import { startReceiver } from '../delivery/receiver.js';
import { backends, webhookInput, withMigratedStore } from '../support/backends.js';
import { eventually } from '../support/receiver-log.js';
import { allPermissions, createWebhook, startService } from '../support/service.js';

const secret = `whsec_${Buffer.alloc(32, 3).toString('base64')}`;
const hour = 3_600_000;
const count = async (db: Kysely<Database>, table: 'deliveries' | 'delivery_attempts' | 'events') =>
  Number((await db.selectFrom(table).select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

/** A UUIDv7 made at `at` (row-ids.ts makes them at the current time). */
const newRowIdAt = (at: Date) => v7({ msecs: at.getTime() });

it('the lowest id of a millisecond sorts above every id made before it and at or below those made in it', () => {
  const at = new Date('2026-12-02T11:00:00.000Z');
  const before = newRowIdAt(new Date(at.getTime() - 1));
  const during = newRowIdAt(at);
  expect(before < firstRowIdAt(at)).toBe(true);
  expect(firstRowIdAt(at) <= during).toBe(true);
  expect(firstRowIdAt(at)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7000-8000-000000000000$/);
});

for (const backend of backends) {
  describe.skipIf(!backend.available)(`pruning the delivery log on ${backend.name}`, () => {
    it('deletes ended deliveries with their attempts after the retention, events after the idempotency window too, and never a pending delivery', async () => {
      await withMigratedStore(backend, async (db) => {
        const webhooks = new WebhookStore(db);
        const webhook = await webhooks.create('t', webhookInput('retained'), secret);
        const events = new EventStore(db);
        const deliveries = new DeliveryStore(db);
        for (let i = 0; i < 3; i++) {
          await events.publish('t', { type: 'order.created', data: { i }, idempotencyKey: `key-${i}` });
        }
        await deliveries.recordSingleAttempt(
          { tenantId: 't', webhookId: webhook.id, eventType: 'webhook.test', messageId: 'msg_test', payload: '{}' },
          new Date(),
          { ok: true, responseStatus: 204, durationMs: 1, detail: 'HTTP 204' },
        );
        const claimed = await deliveries.claimDue(10, 60_000, new Date(Date.now() + 1_000));
        expect(claimed).toHaveLength(3);
        const outcome = (index: number, next: CompletedAttempt['next'], status: number): CompletedAttempt => ({
          delivery: claimed[index]!,
          attemptedAt: new Date(),
          result: { ok: status < 300, responseStatus: status, durationMs: 1, detail: `HTTP ${status}` },
          next,
        });
        // One succeeded, one failed for good, one to be tried again (still pending).
        await deliveries.complete(
          [
            outcome(0, { status: 'succeeded' }, 200),
            outcome(1, { status: 'failed' }, 500),
            outcome(2, { status: 'pending', nextAttemptAt: new Date(Date.now() + hour) }, 503),
          ],
          { afterMs: 100 * hour, reason: 'failing' },
        );
        expect([await count(db, 'deliveries'), await count(db, 'delivery_attempts'), await count(db, 'events')]).toEqual(
          [4, 4, 3],
        );
        const now = Date.now();

        // Younger than the retention: nothing goes.
        expect(await pruneDeliveryLog(db, hour, { now: new Date(now + 0.5 * hour) })).toEqual({ deliveries: 0, events: 0 });
        // Past it: the three ended deliveries and their attempts; the pending one and the events stay.
        expect(await pruneDeliveryLog(db, hour, { now: new Date(now + 2 * hour) })).toEqual({ deliveries: 3, events: 0 });
        const left = await db.selectFrom('deliveries').select(['id', 'status']).execute();
        expect(left).toEqual([{ id: claimed[2]!.id, status: 'pending' }]);
        expect(await count(db, 'delivery_attempts')).toBe(1);
        expect(await count(db, 'events')).toBe(3);
        // Past the idempotency window too: the events go; the pending delivery still stays.
        expect(await pruneDeliveryLog(db, hour, { now: new Date(now + 25 * hour) })).toEqual({ deliveries: 0, events: 3 });
        expect(await count(db, 'deliveries')).toBe(1);
        // Its key is free again.
        const again = await events.publish('t', { type: 'order.created', data: { i: 0 }, idempotencyKey: 'key-0' });
        expect(again.replayed).toBe(false);
      });
    }, 30_000);

    it('deletes a large backlog in chunks, and leaves a row whose id is not time-ordered until its time comes', async () => {
      await withMigratedStore(backend, async (db) => {
        const webhook = await new WebhookStore(db).create('t', webhookInput('backlog'), secret);
        const old = new Date(Date.now() - 2 * hour);
        const row = (id: string, createdAt: Date) => ({
          id,
          tenant_id: 't',
          webhook_id: webhook.id,
          event_id: null,
          event_type: 'order.created',
          message_id: `msg_${id}`,
          payload: '{}',
          status: 'succeeded' as const,
          attempt_count: 1,
          next_attempt_at: null,
          lease_until: null,
          lease_id: null,
          created_at: createdAt.toISOString(),
          updated_at: createdAt.toISOString(),
        });
        const backlog = Array.from({ length: 1_234 }, (_, i) => row(newRowIdAt(new Date(old.getTime() + i)), old));
        for (let i = 0; i < backlog.length; i += 200) {
          await db.insertInto('deliveries').values(backlog.slice(i, i + 200)).execute();
        }
        // A random (v4) id made now, lower than any cutoff: its creation time keeps it.
        const young = row('00000000-0000-4000-8000-000000000001', new Date());
        await db.insertInto('deliveries').values(young).execute();

        // Stopped as soon as the first rows are gone: it ends after whole chunks of 100, the rest left for later.
        const stop = new AbortController();
        const pruning = pruneDeliveryLog(db, hour, { signal: stop.signal });
        while ((await count(db, 'deliveries')) === 1_235) await new Promise((resolve) => setImmediate(resolve));
        stop.abort();
        const { deliveries: first } = await pruning;
        expect(first % 100).toBe(0);
        expect(first).toBeGreaterThan(0);
        expect(first).toBeLessThan(1_234);
        expect(await count(db, 'deliveries')).toBe(1_235 - first);

        expect(await pruneDeliveryLog(db, hour)).toEqual({ deliveries: 1_234 - first, events: 0 });
        expect(await db.selectFrom('deliveries').select('id').execute()).toEqual([{ id: young.id }]);
      });
    }, 60_000);
  });
}

describe('the service prunes its delivery log on its own', () => {
  it('deletes delivered deliveries once DELIVERY_RETENTION has passed', async () => {
    const receiver = await startReceiver();
    const service = await startService(undefined, { DELIVERY_RETENTION: '1s' });
    try {
      const token = await service.token('t', [...allPermissions, 'EVENTS:PUBLISH']);
      const api = service.client(token);
      const webhook = await createWebhook(api, { callbackUrl: receiver.url, events: ['order.created'] });
      for (let i = 0; i < 3; i++) {
        const { response } = await api.POST('/api/web/v1/events', { body: { type: 'order.created', data: { i } } });
        expect(response.status).toBe(202);
      }
      const log = async () =>
        (await api.GET('/api/web/v1/webhooks/{id}/deliveries', { params: { path: { id: webhook.id } } })).data!;
      await eventually(async () => ((await log()).length === 3 ? true : undefined), { what: 'three deliveries' });
      await eventually(async () => (receiver.requests.length === 3 ? true : undefined), { what: 'three receipts' });
      // Pruned within the retention and one pruning interval (a second each here).
      await eventually(async () => ((await log()).length === 0 ? true : undefined), {
        what: 'the delivery log emptied',
        timeoutMs: 10_000,
      });
      expect(receiver.requests).toHaveLength(3);
    } finally {
      await service.close();
      await receiver.close();
    }
  }, 30_000);
});
