// Two worker processes recording outcomes at once on PostgreSQL. A batch's transaction updates the webhooks of its
// failed deliveries (failing_since, and disabling), so it locks their rows. Two batches that reach two failing
// webhooks in opposite orders would wait for each other: PostgreSQL aborts one outcome after deadlock_timeout, and
// its delivery is sent again without its attempt in the log. Each batch therefore locks those webhooks in one order
// (by id) before it writes anything.
import type { Kysely } from 'kysely';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../server/store/database.js';
import { type ClaimedDelivery, type CompletedAttempt, DeliveryStore } from '../../server/store/deliveries.js';
import { EventStore } from '../../server/store/events.js';
import type { Database } from '../../server/store/schema.js';
import { WebhookStore } from '../../server/store/webhooks.js';
import { backends, withMigratedStore } from '../support/backends.js';

const postgres = backends.find((backend) => backend.name === 'postgres')!;
const secret = `whsec_${Buffer.alloc(32, 5).toString('base64')}`;
const autoDisable = { afterMs: 86_400_000, reason: 'failing' };
const hook = (n: number) => ({
  callbackUrl: `https://locks${n}.example.com/h`,
  callbackUrlKey: `https://locks${n}.example.com/h`,
  events: ['*'],
  enabled: true,
  headers: {},
});
const failed = (delivery: ClaimedDelivery): CompletedAttempt => ({
  delivery,
  attemptedAt: new Date(),
  result: {
    ok: false,
    reason: 'http_status',
    responseStatus: 503,
    durationMs: 4,
    detail: 'The receiver answered HTTP 503.',
  },
  next: { status: 'pending', nextAttemptAt: new Date(Date.now() + 60_000) },
});

/** The same store through a pool of its own, its connections named so that the test can see them wait. */
function secondWorker(databaseUrl: string, applicationName: string): Kysely<Database> {
  const url = new URL(databaseUrl);
  url.searchParams.set('application_name', applicationName);
  return openDatabase({ dataDir: '', databaseUrl: url.href });
}

describe.skipIf(!postgres.available)('outcome batches of two workers on PostgreSQL', () => {
  it('do not deadlock on two failing webhooks that their batches reach in opposite orders', async () => {
    await withMigratedStore(postgres, async (db, store) => {
      const name = `outcome-locks-${process.pid}-${Date.now()}`;
      const workerA = secondWorker(store.databaseUrl!, name);
      const workerB = secondWorker(store.databaseUrl!, name);
      const blocker = new pg.Client({ connectionString: store.databaseUrl });
      await blocker.connect();
      try {
        const webhooks = new WebhookStore(db);
        const [w1, w2] = [await webhooks.create('t', hook(1), secret), await webhooks.create('t', hook(2), secret)];
        const events = new EventStore(db);
        await events.publish('t', { type: 'order.created', data: { n: 1 } });
        await events.publish('t', { type: 'order.created', data: { n: 2 } });
        const claimed = await new DeliveryStore(db).claimDue(10, 60_000);
        expect(claimed).toHaveLength(4);
        const of = (webhook: string, event: number) =>
          claimed
            .filter((d) => d.webhook_id === webhook)
            .sort((x, y) => x.event_id!.localeCompare(y.event_id!))[event]!;
        // Worker A failed against w1 then w2; worker B against w2 then w1.
        const batchA = [of(w1.id, 0), of(w2.id, 0)];
        const batchB = [of(w2.id, 1), of(w1.id, 1)];

        // A third session holds each batch's second delivery row: each batch does its first outcome, then waits.
        await blocker.query('begin');
        const seconds = [batchA[1]!.id, batchB[1]!.id];
        await blocker.query('select id from deliveries where id = any($1) for update', [seconds]);
        const outcomes = Promise.allSettled([
          new DeliveryStore(workerA).complete(batchA.map(failed), autoDisable),
          new DeliveryStore(workerB).complete(batchB.map(failed), autoDisable),
        ]);
        // pg_stat_activity is read once per transaction, and the blocker is in one: clear that snapshot each time.
        const waiting = async () => {
          await blocker.query('select pg_stat_clear_snapshot()');
          return Number(
            (
              await blocker.query<{ n: string }>(
                "select count(*) as n from pg_stat_activity where application_name = $1 and wait_event_type = 'Lock'",
                [name],
              )
            ).rows[0]!.n,
          );
        };
        const deadline = Date.now() + 10_000;
        while ((await waiting()) < 2) {
          if (Date.now() > deadline) throw new Error('the two batches did not both wait for a lock within 10 s');
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        await blocker.query('commit');

        const settled = await outcomes;
        const recorded = settled.map((outcome) =>
          outcome.status === 'rejected' ? String(outcome.reason) : 'recorded',
        );
        expect(recorded).toEqual(['recorded', 'recorded']);
        const rows = await db
          .selectFrom('deliveries')
          .select(['id', 'attempt_count', 'status'])
          .where('id', 'in', claimed.map((d) => d.id))
          .execute();
        expect(rows.map((row) => [row.attempt_count, row.status])).toEqual(Array(4).fill([1, 'pending']));
        const attempts = await db.selectFrom('delivery_attempts').select('delivery_id').execute();
        expect(attempts).toHaveLength(4);
        const failing = await db.selectFrom('webhooks').select('failing_since').execute();
        expect(failing.every((row) => row.failing_since !== null)).toBe(true);
      } finally {
        await blocker.end();
        await Promise.all([workerA.destroy(), workerB.destroy()]);
      }
    });
  });
});
