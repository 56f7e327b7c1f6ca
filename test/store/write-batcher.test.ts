// Group commit: writes that arrive together share one transaction, yet each succeeds or fails on its own.
import { describe, expect, it } from 'vitest';
import { migrateToLatest, openDatabase } from '../../server/store/database.js';
import { WebhookStore, DuplicateCallbackUrlError } from '../../server/store/webhooks.js';
import { backends } from '../support/backends.js';

const input = (n: number) => ({
  callbackUrl: `https://batch${n}.example.com/h`,
  callbackUrlKey: `https://batch${n}.example.com/h`,
  events: ['*'],
  enabled: true,
  headers: {},
});

for (const backend of backends) {
  describe.skipIf(!backend.available)(`writes grouped on ${backend.name}`, () => {
    it('commits the good writes of a batch and fails only the bad one', async () => {
      const store = await backend.setup();
      const db = openDatabase(store);
      try {
        await migrateToLatest(db);
        const webhooks = new WebhookStore(db);
        const secret = `whsec_${Buffer.alloc(32, 1).toString('base64')}`;
        // Issued in one turn of the event loop, so on SQLite they share one transaction; #2 repeats #1's URL.
        const results = await Promise.allSettled([1, 2, 1, 3].map((n) => webhooks.create('t', input(n), secret)));
        expect([results[1]!.status, results[3]!.status]).toEqual(['fulfilled', 'fulfilled']);
        // One of the two writes of URL 1 wins (on PostgreSQL they run concurrently, so either may).
        const [winner, loser] = results[0]!.status === 'fulfilled' ? [results[0]!, results[2]!] : [results[2]!, results[0]!];
        expect(winner.status).toBe('fulfilled');
        expect(loser.status).toBe('rejected');
        const failure = (loser as PromiseRejectedResult).reason;
        expect(failure).toBeInstanceOf(DuplicateCallbackUrlError);
        expect((failure as DuplicateCallbackUrlError).existingWebhookId).toBe(
          (winner as PromiseFulfilledResult<{ id: string }>).value.id,
        );
        const page = await webhooks.list('t', 10);
        expect(page.items.map((w) => w.callbackUrl).sort()).toEqual([1, 2, 3].map((n) => input(n).callbackUrl));
      } finally {
        await db.destroy();
        await store.cleanup();
      }
    });
  });
}
