// Group commit: writes that arrive together share one transaction, yet each succeeds or fails on its own.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { migrateToLatest, openDatabase } from '../../server/store/database.js';
import { DeliveryStore } from '../../server/store/deliveries.js';
import { EventStore } from '../../server/store/events.js';
import { walSyncOf } from '../../server/store/wal-sync.js';
import { WebhookStore, DuplicateCallbackUrlError } from '../../server/store/webhooks.js';
import { backends, withMigratedStore } from '../support/backends.js';

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
      await withMigratedStore(backend, async (db) => {
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
      });
    });
  });
}

describe('writes on SQLite that arrive while the log syncs', () => {
  it('commits them together once the sync ends, and answers each after a sync that covers it', async () => {
    const [sqlite] = backends;
    await withMigratedStore(sqlite!, async (db, store) => {
      const webhooks = new WebhookStore(db);
      const secret = `whsec_${Buffer.alloc(32, 2).toString('base64')}`;
      // Hold the first log sync until released; every sync still runs for real. Count the batcher's syncs.
      const walSync = walSyncOf(db)!;
      const realSync = walSync.sync.bind(walSync);
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let syncs = 0;
      walSync.sync = () => (++syncs === 1 ? held.then(realSync) : realSync());
      const answered: number[] = [];
      const create = (n: number) => webhooks.create('t', input(n), secret).then(() => answered.push(n));

      const first = create(1);
      while (syncs === 0) await nextTurn();
      // Three writes in three turns of the event loop while the first batch's sync is held.
      const later: Promise<number>[] = [];
      for (const n of [2, 3, 4]) {
        later.push(create(n));
        await nextTurn();
      }
      await nextTurn();
      const reader = new SQLite(join(store.dataDir, 'webhooks.db'), { readonly: true, fileMustExist: true });
      try {
        const committed = () => reader.prepare('select count(*) as n from webhooks').get() as { n: number };
        // Without the wait each turn's write would have committed (and asked for a sync) by now.
        expect(committed().n).toBe(1);
        expect(syncs).toBe(1);
        expect(answered).toEqual([]);
        release();
        await Promise.all([first, ...later]);
        expect(committed().n).toBe(4);
      } finally {
        reader.close();
      }
      // One sync for the first write, one for the three that waited: one commit.
      expect(syncs).toBe(2);
      expect(answered).toEqual([1, 2, 3, 4]);
    });
  });
});

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Another process with its own better-sqlite3 connection to the store's file, running `script` (CommonJS, with
 * `db` open on the file); it prints a line once it is under way. Bounded by the script itself.
 */
function otherProcessOn(dataDir: string, script: string) {
  const sqlitePath = JSON.stringify(createRequire(import.meta.url).resolve('better-sqlite3'));
  const child = spawn(
    process.execPath,
    ['-e', `const db = new (require(${sqlitePath}))(process.argv[1]);\n${script}`, join(dataDir, 'webhooks.db')],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const started = new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
  return { child, started };
}

describe('writes on SQLite while another process commits to the same file', () => {
  it('publishes without SQLITE_BUSY (transactions take the write lock when they begin)', async () => {
    const store = await backends[0]!.setup();
    const db = openDatabase(store);
    // Another process (a `webhooks-api worker`, a CLI) committing small writes as fast as it can, for at most 20 s.
    const writer = otherProcessOn(
      store.dataDir,
      `db.pragma('busy_timeout = 5000');
       db.exec('create table if not exists contention (n integer)');
       const insert = db.prepare('insert into contention (n) values (?)');
       console.log('writing');
       const until = Date.now() + 20000;
       for (let n = 0; Date.now() < until; n++) insert.run(n);`,
    );
    try {
      await migrateToLatest(db);
      await new WebhookStore(db).create('t', input(1), `whsec_${Buffer.alloc(32, 1).toString('base64')}`);
      await writer.started;
      const events = new EventStore(db);
      let failures = 0;
      const errors = new Set<string>();
      for (let round = 0; round < 40; round++) {
        // Ten at once, so they share a batch; an idempotency key makes each publish read before it writes.
        const results = await Promise.allSettled(
          Array.from({ length: 10 }, (_, i) =>
            events.publish('t', { type: 'order.created', data: { round, i }, idempotencyKey: `k-${round}-${i}` }),
          ),
        );
        for (const result of results) {
          if (result.status === 'rejected') {
            failures++;
            errors.add(String((result.reason as Error).message));
          }
        }
        // Let the other process commit between our batches too.
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      expect({ failures, errors: [...errors] }).toEqual({ failures: 0, errors: [] });
    } finally {
      writer.child.kill('SIGKILL');
      await db.destroy();
      await store.cleanup();
    }
  }, 60_000);
});

describe('reads on SQLite while another process holds the write lock', () => {
  it('reads the delivery log without waiting for the lock (a read snapshot does not take it)', async () => {
    const store = await backends[0]!.setup();
    const db = openDatabase(store);
    let holder: ReturnType<typeof otherProcessOn> | undefined;
    try {
      await migrateToLatest(db);
      const webhook = await new WebhookStore(db).create('t', input(1), `whsec_${Buffer.alloc(32, 1).toString('base64')}`);
      await new EventStore(db).publish('t', { type: 'order.created', data: {} });
      // Only now (started earlier, it could take the lock before these writes, which then failed after busy_timeout):
      // another process takes the write lock and keeps it until told to let go (or for at most 20 s).
      holder = otherProcessOn(
        store.dataDir,
        `db.exec('begin immediate');
         console.log('locked');
         const release = () => { db.exec('commit'); process.exit(0); };
         process.stdin.once('data', release);
         setTimeout(release, 20000);`,
      );
      await holder.started;
      // Still locked by the other process: the read must answer from its snapshot, not wait busy_timeout and fail.
      const page = await new DeliveryStore(db).listForWebhook('t', webhook.id, { limit: 10 });
      expect(page.items).toHaveLength(1);
      expect(holder.child.exitCode).toBeNull();
    } finally {
      holder?.child.stdin!.end('release\n');
      holder?.child.kill('SIGKILL');
      await db.destroy();
      await store.cleanup();
    }
  }, 60_000);
});
