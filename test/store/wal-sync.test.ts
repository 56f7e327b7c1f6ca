// Durable commits off the event loop (server/store/wal-sync.ts). SQLite runs with synchronous=NORMAL, which does
// not sync the write-ahead log at commit; the write batcher syncs it on the thread pool instead and answers a write
// only after that. What this file pins, on real files in temp dirs:
//
// - sync() calls made while a sync runs share ONE next sync, never the running one (which may have begun before
//   the caller's commit reached the log), so a burst of commits costs two syncs, not one each;
// - the store really runs with synchronous=NORMAL, syncs the WAL before answering a write, and closes the WAL file
//   it keeps open when the store is destroyed;
// - the worker's claims ask for no sync (each is a disk cache flush; a lease lost in a crash only means its
//   deliveries are sent again), but are answered only after the syncs already under way, and after one of their
//   own when another process committed since the last sync (it may not have synced yet);
// - PostgreSQL has no WAL sync of ours (its commits are durable when they return).
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { pbkdf2 } from 'node:crypto';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { migrateToLatest, openDatabase, storeIsReachable } from '../../server/store/database.js';
import { DeliveryStore } from '../../server/store/deliveries.js';
import { EventStore } from '../../server/store/events.js';
import { WalSync, walSyncOf } from '../../server/store/wal-sync.js';
import { WebhookStore } from '../../server/store/webhooks.js';
import { type Backend, backends, withMigratedStore } from '../support/backends.js';

const [sqlite, postgres] = backends as [Backend, Backend];
const pbkdf2Async = promisify(pbkdf2);

const secret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
const hook = {
  callbackUrl: 'https://wal.example.com/h',
  callbackUrlKey: 'https://wal.example.com/h',
  events: ['*'],
  enabled: true,
  headers: {},
};

/** A WalSync on a real file with some unsynced data in it. */
function walSyncOnTempFile(): { walSync: WalSync; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'wal-sync-test-'));
  const path = join(dir, 'file-wal');
  writeFileSync(path, 'frames');
  const walSync = WalSync.open(path);
  return {
    walSync,
    cleanup: () => {
      walSync.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Marks when `promise` settles, so a test can ask whether it has yet. */
function tracked(promise: Promise<void>): { settled: () => boolean } {
  let settled = false;
  void promise.finally(() => (settled = true));
  return { settled: () => settled };
}

/** Records which the store's WAL sync was asked for, in order: 'sync' (a sync of its own) or 'settled'. */
function syncCalls(db: Parameters<typeof walSyncOf>[0]): string[] {
  const walSync = walSyncOf(db)!;
  const calls: string[] = [];
  const realSync = walSync.sync.bind(walSync);
  const realSettled = walSync.settled.bind(walSync);
  walSync.sync = () => (calls.push('sync'), realSync());
  walSync.settled = () => (calls.push('settled'), realSettled());
  return calls;
}

describe('WalSync', () => {
  it('makes every caller arriving during a sync share the one sync after it', async () => {
    const { walSync, cleanup } = walSyncOnTempFile();
    try {
      const calls = Array.from({ length: 10 }, () => walSync.sync());
      const [first, ...waiting] = calls;
      expect(new Set(waiting).size).toBe(1);
      expect(waiting[0]).not.toBe(first);
      await expect(Promise.all(calls)).resolves.toHaveLength(10);
    } finally {
      cleanup();
    }
  });

  it('answers a caller arriving during a sync only after a sync that began after its call', async () => {
    const { walSync, cleanup } = walSyncOnTempFile();
    try {
      const first = walSync.sync();
      const second = walSync.sync();
      const secondState = tracked(second);
      await first;
      // The first sync is done; the second caller still waits, for the sync that has just started.
      expect(secondState.settled()).toBe(false);
      // A caller arriving now is not served by that sync either, which may have begun before its commit.
      const third = walSync.sync();
      expect(third).not.toBe(second);
      const thirdState = tracked(third);
      await second;
      expect(thirdState.settled()).toBe(false);
      await third;
    } finally {
      cleanup();
    }
  });

  it('settles a caller that wrote nothing after every sync already asked for, at once when none runs', async () => {
    const { walSync, cleanup } = walSyncOnTempFile();
    try {
      const first = walSync.sync();
      const second = walSync.sync();
      const settled = tracked(walSync.settled());
      await first;
      expect(settled.settled()).toBe(false); // the queued sync has not ended yet
      await second;
      await Promise.resolve();
      expect(settled.settled()).toBe(true);
      const idle = tracked(walSync.settled());
      await Promise.resolve();
      expect(idle.settled()).toBe(true);
    } finally {
      cleanup();
    }
  });
});

/** The files this process holds a descriptor open on (Linux: /proc/self/fd). */
function openFiles(): string[] {
  const open: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      open.push(readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // The descriptor readdir itself used, closed by now.
    }
  }
  return open;
}

/** Where this process holds a file descriptor open inside `dir`. */
function openFilesIn(dir: string): string[] {
  return openFiles()
    .filter((target) => target.startsWith(`${dir}/`))
    .map((target) => target.slice(dir.length + 1))
    .sort();
}

describe('the log sync and the shared thread pool', () => {
  it("answers a write while libuv's thread pool is busy (slow DNS lookups of callback hosts use it)", async () => {
    await withMigratedStore(sqlite, async (db) => {
      const webhooks = new WebhookStore(db);
      await webhooks.create('t', hook, secret); // the sync thread is up
      // Fill every slot of the pool with long work, as hanging dns.lookup calls would.
      const slots = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
      let poolWorkDone = false;
      const poolWork = Promise.all(
        Array.from({ length: slots }, () =>
          pbkdf2Async('x', 'salt', 3_000_000, 64, 'sha512').then(() => (poolWorkDone = true)),
        ),
      );
      await webhooks.create('t', { ...hook, callbackUrl: 'https://wal2.example.com/h', callbackUrlKey: 'https://wal2.example.com/h' }, secret);
      // Answered (so synced) before any of the pool's work ended.
      expect(poolWorkDone).toBe(false);
      await poolWork;
    });
  }, 60_000);
});

describe('WalSync after a failed sync', () => {
  // After a failed fdatasync Linux may drop the pages and report the error once: a later sync that passes proves
  // nothing about the earlier commits, so the store must refuse writes from then on.
  it('remembers the failure of a sync', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wal-sync-test-'));
    const path = join(dir, 'file-wal');
    writeFileSync(path, 'frames');
    const fd = openSync(path, 'r');
    const walSync = new WalSync(fd);
    try {
      // The descriptor goes bad under it, as a disk error would make a sync fail.
      closeSync(fd);
      await expect(walSync.sync()).rejects.toThrow(/could not sync its write-ahead log/);
      expect(walSync.failure).toBeInstanceOf(Error);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('once a sync failed, refuses every later sync, even on a descriptor that would sync', async () => {
    const { walSync, cleanup } = walSyncOnTempFile();
    try {
      await walSync.sync();
      walSync.failure = new Error('an earlier sync failed');
      await expect(walSync.sync()).rejects.toThrow('an earlier sync failed');
    } finally {
      cleanup();
    }
  });

  it('makes /healthz-style reachability checks fail on a store whose sync failed', async () => {
    const store = await sqlite.setup();
    const db = openDatabase(store);
    try {
      await migrateToLatest(db);
      expect(await storeIsReachable(db)).toBe(true);
      walSyncOf(db)!.failure = new Error('simulated: fdatasync failed');
      expect(await storeIsReachable(db)).toBe(false);
      await expect(new WebhookStore(db).create('t', hook, secret)).rejects.toThrow(/simulated/);
    } finally {
      walSyncOf(db)!.failure = undefined;
      await db.destroy();
      await store.cleanup();
    }
  });
});

describe('the embedded store', () => {
  it('runs with synchronous=NORMAL in WAL mode', async () => {
    const store = await sqlite.setup();
    const db = openDatabase(store);
    try {
      const synchronous = await sql<{ synchronous: number }>`pragma synchronous`.execute(db);
      const journal = await sql<{ journal_mode: string }>`pragma journal_mode`.execute(db);
      expect(synchronous.rows).toEqual([{ synchronous: 1 }]); // NORMAL
      expect(journal.rows).toEqual([{ journal_mode: 'wal' }]);
      expect(walSyncOf(db)).toBeInstanceOf(WalSync);
    } finally {
      await db.destroy();
      await store.cleanup();
    }
  });

  it.skipIf(!existsSync('/proc/self/fd'))('keeps savepoint journals in memory, not in temp files', async () => {
    // The write batcher runs each write in a savepoint, and SQLite journals the pages a savepoint changes. Past 64 KiB
    // (a batch of publishes gets there) that journal spills, with better-sqlite3's default (TEMP_STORE=1), into a
    // temp file opened, unlinked and written in that transaction: system calls this machine makes dear
    // (docs/performance-history.md, fifth round).
    const store = await sqlite.setup();
    const db = openDatabase(store);
    const tempFilesOpen = () => openFiles().filter((target) => target.includes('etilqs_')).length;
    try {
      await sql`create table journal_probe (n integer, filler blob)`.execute(db);
      const during = await db.transaction().execute(async (trx) => {
        // About 60 pages, then all of them changed in a savepoint: a 240 KiB statement journal.
        await sql`with recursive s(n) as (select 1 union all select n + 1 from s where n < 1000)
                  insert into journal_probe (n, filler) select n, zeroblob(200) from s`.execute(trx);
        await sql`savepoint probe`.execute(trx);
        await sql`update journal_probe set n = n + 1`.execute(trx);
        const open = tempFilesOpen();
        await sql`release probe`.execute(trx);
        return open;
      });
      expect(during).toBe(0);
      const rows = await sql<{ count: number; low: number }>`select count(*) as count, min(n) as low
                                                              from journal_probe`.execute(db);
      expect(rows.rows).toEqual([{ count: 1000, low: 2 }]);
    } finally {
      await db.destroy();
      await store.cleanup();
    }
  });

  it('answers a write only after syncing the WAL, and another connection then reads it', async () => {
    const store = await sqlite.setup();
    const db = openDatabase(store);
    try {
      await migrateToLatest(db);
      // Note when the store's own WalSync finishes a sync: a pass-through wrapper, the real fdatasync still runs.
      const walSync = walSyncOf(db)!;
      const realSync = walSync.sync.bind(walSync);
      const order: string[] = [];
      walSync.sync = () => {
        const syncing = realSync();
        void syncing.then(() => order.push('WAL synced'));
        return syncing;
      };
      const created = await new WebhookStore(db).create('t', hook, secret);
      order.push('create answered');
      expect(order).toEqual(['WAL synced', 'create answered']);

      const reader = new SQLite(join(store.dataDir, 'webhooks.db'), { readonly: true, fileMustExist: true });
      try {
        expect(reader.prepare('select id from webhooks').all()).toEqual([{ id: created.id }]);
      } finally {
        reader.close();
      }
    } finally {
      await db.destroy();
      await store.cleanup();
    }
  });

  it('asks for no sync for a claim, empty or not, but waits for syncs under way', async () => {
    await withMigratedStore(sqlite, async (db) => {
      const calls = syncCalls(db);
      await new WebhookStore(db).create('t', hook, secret);
      expect(calls).toEqual(['sync']);
      // The delivery worker's claim of an empty queue: four times a second on an idle service.
      const deliveries = new DeliveryStore(db);
      for (let i = 0; i < 3; i++) expect(await deliveries.claimDue(10, 60_000)).toEqual([]);
      expect(calls).toEqual(['sync', 'settled', 'settled', 'settled']);
      const other = 'https://other.example.com/h';
      await new WebhookStore(db).create('t', { ...hook, callbackUrl: other, callbackUrlKey: other }, secret);
      calls.length = 0;
      // Publishing is answered after its own sync; claiming what it made needs none.
      await new EventStore(db).publish('t', { type: 'order.created', data: {} });
      expect(calls).toEqual(['sync']);
      expect(await deliveries.claimDue(10, 60_000)).toHaveLength(2);
      expect(calls).toEqual(['sync', 'settled']);
    });
  });

  it('syncs for a claim first after opening, and when another process committed since the last sync', async () => {
    await withMigratedStore(sqlite, async (db, store) => {
      const calls = syncCalls(db);
      const deliveries = new DeliveryStore(db);
      // Another process may have committed before this store opened, and died or not yet synced.
      await deliveries.claimDue(10, 60_000);
      expect(calls).toEqual(['sync']);
      await deliveries.claimDue(10, 60_000);
      expect(calls).toEqual(['sync', 'settled']);
      calls.length = 0;
      // A second server on the same file commits (here: another connection, in WAL mode without syncing).
      const other = new SQLite(join(store.dataDir, 'webhooks.db'), { fileMustExist: true });
      try {
        other.pragma('synchronous = NORMAL');
        other
          .prepare(`insert into api_keys values ('k', 't', 'hash', 'whk_', '[]', '2026-12-02T00:00:00Z', null, null)`)
          .run();
      } finally {
        other.close();
      }
      await deliveries.claimDue(10, 60_000);
      expect(calls).toEqual(['sync']);
      // That sync covered it: the next claim needs none.
      await deliveries.claimDue(10, 60_000);
      expect(calls).toEqual(['sync', 'settled']);
    });
  });

  it.skipIf(!existsSync('/proc/self/fd'))('closes the WAL file it keeps open when destroyed', async () => {
    const store = await sqlite.setup();
    try {
      expect(openFilesIn(store.dataDir)).toEqual([]);
      const db = openDatabase(store);
      await migrateToLatest(db);
      await new WebhookStore(db).create('t', hook, secret);
      // SQLite's own descriptors and the WalSync's second one on the -wal file.
      const walOpens = openFilesIn(store.dataDir).filter((name) => name === 'webhooks.db-wal');
      expect(walOpens.length).toBeGreaterThanOrEqual(2);
      await db.destroy();
      expect(openFilesIn(store.dataDir)).toEqual([]);
    } finally {
      await store.cleanup();
    }
  });
});

describe.skipIf(!postgres.available)('the store on postgres', () => {
  it('has no WAL sync of its own: its commits are durable when they return', async () => {
    const store = await postgres.setup();
    const db = openDatabase(store);
    try {
      await migrateToLatest(db);
      expect(walSyncOf(db)).toBeUndefined();
      const created = await new WebhookStore(db).create('t', hook, secret);
      expect(await new WebhookStore(db).get('t', created.id)).toMatchObject({ id: created.id });
    } finally {
      await db.destroy();
      await store.cleanup();
    }
  });
});
