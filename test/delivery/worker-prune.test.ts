// The worker's pruning timer: a pass at start and then every `everyMs`, none after stop(), and stop() ends a pass
// in progress (through its signal) instead of waiting for it: a backlog can take minutes, longer than a SIGTERM's
// grace period. The pass is the worker's injected `prune.run`; what it deletes is retention.test.ts's subject.
import pino from 'pino';
import { afterAll, expect, it } from 'vitest';
import { createAddressGuard } from '../../server/delivery/address-guard.js';
import { createHttpSender } from '../../server/delivery/http-sender.js';
import { DeliveryWorker, type WorkerOptions } from '../../server/delivery/worker.js';
import { DeliveryStore } from '../../server/store/deliveries.js';
import type { PrunedRows } from '../../server/store/retention.js';
import { WebhookStore } from '../../server/store/webhooks.js';
import { backends, withMigratedStore } from '../support/backends.js';
import { eventually } from '../support/receiver-log.js';

const sender = createHttpSender({ guard: createAddressGuard({ allowedCidrs: [] }), userAgent: 'test' });
afterAll(() => sender.close());

function withWorker(prune: WorkerOptions['prune'], test: (worker: DeliveryWorker) => Promise<void>) {
  return withMigratedStore(backends[0]!, async (db) => {
    const worker = new DeliveryWorker({
      deliveries: new DeliveryStore(db),
      webhooks: new WebhookStore(db),
      sender,
      retrySchedule: [0],
      leaseMs: 60_000,
      pollMs: 1_000,
      maxInFlight: 10,
      slowWebhooks: {
        slowAfterMs: 1_000,
        perWebhook: 2,
        total: 5,
        forgetAfterMs: 600_000,
        horizonMs: 60_000,
        spreadAtMostMs: 60_000,
      },
      disableAfterMs: 86_400_000,
      log: pino({ level: 'silent' }),
      prune,
    });
    try {
      await test(worker);
    } finally {
      await worker.stop();
    }
  });
}

const nothing: PrunedRows = { deliveries: 0, events: 0 };

it('prunes at start and every everyMs, and never after stop()', async () => {
  let passes = 0;
  await withWorker(
    {
      everyMs: 20,
      run: async () => {
        passes++;
        return nothing;
      },
    },
    async (worker) => {
      worker.start();
      await eventually(async () => (passes >= 3 ? true : undefined), { what: 'three passes' });
      await worker.stop();
      const afterStop = passes;
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(passes).toBe(afterStop);
    },
  );
});

it('ends a pass in progress when stopped, instead of waiting for it to finish', async () => {
  let signalSeen: AbortSignal | undefined;
  await withWorker(
    {
      everyMs: 60_000,
      // A pass that would run for ever: only its signal ends it.
      run: (signal) => {
        signalSeen = signal;
        return new Promise((resolve) => signal.addEventListener('abort', () => resolve(nothing), { once: true }));
      },
    },
    async (worker) => {
      worker.start();
      await eventually(async () => signalSeen, { what: 'a pass under way' });
      expect(signalSeen!.aborted).toBe(false);
      await worker.stop(); // without the signal this never returns, and the test times out
      expect(signalSeen!.aborted).toBe(true);
    },
  );
}, 5_000);

it('tries a failed pass again at the next interval', async () => {
  let passes = 0;
  await withWorker(
    {
      everyMs: 20,
      run: async () => {
        passes++;
        if (passes === 1) throw new Error('disk full');
        return nothing;
      },
    },
    async (worker) => {
      worker.start();
      await eventually(async () => (passes >= 2 ? true : undefined), { what: 'a second pass after a failure' });
    },
  );
});
