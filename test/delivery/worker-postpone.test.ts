// The worker's stop() and the postponement of a slow webhook's deliveries: stop() must wait until the
// postponements being written are written, or the deliveries they give back stay leased (sent only after the
// lease runs out) and the write meets a closed store. The window is a few milliseconds in real use, too short for
// test/delivery/slow-receivers.test.ts to land a stop in; here the store's postpone waits for the test to let it
// go (the one stand-in: a real write cannot be paused halfway). Everything else is real: SQLite, the sender, a
// receiver on 127.0.0.1.
import { sql } from 'kysely';
import pino from 'pino';
import { afterAll, expect, it } from 'vitest';
import { createAddressGuard } from '../../server/delivery/address-guard.js';
import { createHttpSender } from '../../server/delivery/http-sender.js';
import { DeliveryWorker } from '../../server/delivery/worker.js';
import { DeliveryStore } from '../../server/store/deliveries.js';
import { EventStore } from '../../server/store/events.js';
import { WebhookStore } from '../../server/store/webhooks.js';
import { backends, webhookInput, withMigratedStore } from '../support/backends.js';
import { eventually, receiverPool } from '../support/receiver-log.js';

const sender = createHttpSender({ guard: createAddressGuard({ allowedCidrs: ['127.0.0.0/8'] }), userAgent: 'test' });
const receivers = receiverPool();
afterAll(async () => {
  await sender.close();
  await receivers.closeAll();
});

const secret = `whsec_${Buffer.alloc(32, 9).toString('base64')}`;
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The real store, whose postpone() waits for `release` before it writes, and counts its calls. */
class HeldPostponements extends DeliveryStore {
  calls = 0;
  release!: () => void;
  private readonly released = new Promise<void>((resolve) => (this.release = resolve));

  override async postpone(items: Parameters<DeliveryStore['postpone']>[0]): Promise<void> {
    this.calls++;
    await this.released;
    return super.postpone(items);
  }
}

it('stops only once the postponements being written are written, leaving no delivery leased', async () => {
  await withMigratedStore(backends[0]!, async (db) => {
    // Slow enough to be limited at once (slowAfterMs 10), fast enough for the test.
    const receiver = await receivers.start(() => ({ status: 204, holdUntil: pause(50) }));
    const webhook = await new WebhookStore(db).create(
      't',
      webhookInput('unused', { callbackUrl: receiver.url, callbackUrlKey: receiver.url }),
      secret,
    );
    const events = new EventStore(db);
    for (let i = 0; i < 20; i++) await events.publish('t', { type: 'order.created', data: { i } });

    const deliveries = new HeldPostponements(db);
    const worker = new DeliveryWorker({
      deliveries,
      webhooks: new WebhookStore(db),
      sender,
      retrySchedule: [0],
      leaseMs: 60_000,
      pollMs: 20,
      maxInFlight: 8,
      slowWebhooks: {
        slowAfterMs: 10,
        perWebhook: 1,
        total: 2,
        forgetAfterMs: 600_000,
        horizonMs: 60_000,
        spreadAtMostMs: 60_000,
      },
      disableAfterMs: 86_400_000,
      log: pino({ level: 'silent' }),
    });
    worker.start();
    await eventually(async () => (deliveries.calls > 0 ? true : undefined), { what: 'a postponement began' });

    let stopped = false;
    const stopping = worker.stop().then(() => (stopped = true));
    // Every attempt in flight (50 ms each) has ended by now; only the held postponement is left.
    await pause(300);
    expect(stopped, 'stop() returned while a postponement was still being written').toBe(false);
    deliveries.release();
    await stopping;

    const leased = await db.selectFrom('deliveries').select('id').where('lease_id', 'is not', null).execute();
    expect(leased).toEqual([]);
    const states = await db
      .selectFrom('deliveries')
      .select(['status', sql<number>`count(*)`.as('count')])
      .where('webhook_id', '=', webhook.id)
      .groupBy('status')
      .execute();
    // Those sent succeeded; the rest wait, due again, for the next start.
    expect(states.reduce((sum, row) => sum + Number(row.count), 0)).toBe(20);
    expect(states.find((row) => row.status === 'pending')?.count ?? 0).toBeGreaterThan(0);
  });
});
