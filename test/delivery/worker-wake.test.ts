// The worker's wake-up: a publish in this process tells the worker to look for due deliveries now instead of at
// its next poll. A publish that lands while a claim is running was committed after the claim read the queue, so
// that claim misses it, and the wake-up must not be lost with it: the worker looks again at once. Here the first
// claim is held until the test lets it go and then finds nothing, as a claim that ran just before the publish would
// (the one stand-in: a real claim cannot be paused halfway). Everything else is real: SQLite, the sender, a
// receiver on 127.0.0.1. The poll interval is a minute, so only the wake-up can bring the delivery in time.
import pino from 'pino';
import { afterAll, expect, it } from 'vitest';
import { createAddressGuard } from '../../server/delivery/address-guard.js';
import { createHttpSender } from '../../server/delivery/http-sender.js';
import { DeliveryWorker } from '../../server/delivery/worker.js';
import { DeliveryStore } from '../../server/store/deliveries.js';
import { EventStore } from '../../server/store/events.js';
import { WebhookStore } from '../../server/store/webhooks.js';
import { backends, webhookInput, withMigratedStore } from '../support/backends.js';
import { accept, eventually, receiverPool } from '../support/receiver-log.js';

const sender = createHttpSender({ guard: createAddressGuard({ allowedCidrs: ['127.0.0.0/8'] }), userAgent: 'test' });
const receivers = receiverPool();
afterAll(async () => {
  await sender.close();
  await receivers.closeAll();
});

const secret = `whsec_${Buffer.alloc(32, 4).toString('base64')}`;

/** The real store, whose first claim waits for `release` and then answers nothing. */
class HeldFirstClaim extends DeliveryStore {
  claims = 0;
  release!: () => void;
  private readonly released = new Promise<void>((resolve) => (this.release = resolve));

  override async claimDue(...args: Parameters<DeliveryStore['claimDue']>): ReturnType<DeliveryStore['claimDue']> {
    this.claims++;
    if (this.claims > 1) return super.claimDue(...args);
    await this.released;
    return [];
  }
}

it('looks again at once when told of a publish while a claim was running', async () => {
  await withMigratedStore(backends[0]!, async (db) => {
    const receiver = await receivers.start(accept);
    await new WebhookStore(db).create(
      't',
      webhookInput('unused', { callbackUrl: receiver.url, callbackUrlKey: receiver.url }),
      secret,
    );
    const deliveries = new HeldFirstClaim(db);
    const worker = new DeliveryWorker({
      deliveries,
      webhooks: new WebhookStore(db),
      sender,
      retrySchedule: [0],
      leaseMs: 60_000,
      pollMs: 60_000,
      maxInFlight: 8,
      slowWebhooks: {
        slowAfterMs: 2_000,
        perWebhook: 2,
        total: 4,
        forgetAfterMs: 600_000,
        horizonMs: 60_000,
        spreadAtMostMs: 60_000,
      },
      disableAfterMs: 86_400_000,
      log: pino({ level: 'silent' }),
    });
    worker.start();
    try {
      await eventually(async () => (deliveries.claims === 1 ? true : undefined), { what: 'the first claim began' });
      await new EventStore(db).publish('t', { type: 'order.created', data: { n: 1 } });
      worker.notify();
      deliveries.release();
      const [request] = await receiver.waitFor(1, { timeoutMs: 5_000 });
      expect(JSON.parse(request!.body)).toMatchObject({ type: 'order.created', data: { n: 1 } });
      expect(deliveries.claims).toBe(2);
    } finally {
      await worker.stop();
    }
  });
});
