// Durable commits on the embedded store without stopping the event loop for the disk.
//
// better-sqlite3 is synchronous: with `synchronous=FULL` every commit holds the event loop for the fsync of the
// write-ahead log (0.3 ms on a quiet disk here, several ms on a busy one), and nothing else runs meanwhile. So the
// store runs with `synchronous=NORMAL` instead, where a commit writes its frames to the WAL without syncing it, and
// syncs the WAL itself, here, on libuv's thread pool, before any write of the commit is answered. An answered write
// is exactly as durable as with FULL (in WAL mode, FULL differs from NORMAL only by that sync at each commit).
// While one sync runs, the event loop goes on parsing and batching the next writes; a commit that lands while a
// sync runs waits for the next one, and every commit that landed meanwhile shares it.
//
// What differs from FULL: for the fraction of a millisecond between a commit and its sync, a reader in this
// process can see the commit before it is durable. A power loss in that window loses a write nobody was told
// succeeded, but that a concurrent reader may have seen. And if the sync itself fails (an I/O error: the disk is
// failing), the writes are committed but their callers get the error (500), so a client that retries a create
// may make a second webhook.
import { closeSync, fdatasync, openSync } from 'node:fs';
import { promisify } from 'node:util';
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

const syncData = promisify(fdatasync);

export class WalSync {
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  private closed = false;
  /**
   * The first sync that failed. After a failed fdatasync Linux may drop the unwritten pages and report the error
   * only once, so a later sync could "succeed" without the earlier commits on disk: like PostgreSQL after a failed
   * fsync, the store refuses every write from then on, and /healthz answers 503, until it is restarted.
   */
  failure: Error | undefined;

  /**
   * `walPath` is the database's `-wal` file. It is opened once and kept open: SQLite keeps that file (same inode)
   * for as long as any connection, this one included, has the database open, and fdatasync flushes the file's
   * data whichever descriptor wrote it.
   */
  constructor(private readonly fd: number) {}

  static open(walPath: string): WalSync {
    return new WalSync(openSync(walPath, 'r'));
  }

  /** Resolves once everything committed before this call is on disk. */
  sync(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new Error('the store is closed'));
    // A queued sync has not started yet, so it covers this caller too (checked first: between the running sync
    // settling and the queued one starting, `running` is already cleared).
    if (this.queued) return this.queued;
    if (!this.running) return this.start();
    // The running sync may have begun before this caller's commit was written: wait for the one after it, which
    // every caller arriving meanwhile shares.
    this.queued ??= this.running.then(
      () => this.startQueued(),
      () => this.startQueued(),
    );
    return this.queued;
  }

  /** Closes the descriptor once the syncs under way have ended (never under a sync: the number could be reused). */
  close(): void {
    this.closed = true;
    const closeFd = () => closeSync(this.fd);
    const pending = this.queued ?? this.running;
    if (pending) void pending.then(closeFd, closeFd);
    else closeFd();
  }

  private startQueued(): Promise<void> {
    this.queued = undefined;
    if (this.failure) return Promise.reject(this.failure);
    return this.start();
  }

  private start(): Promise<void> {
    const sync = syncData(this.fd)
      .catch((error: unknown) => {
        this.failure ??= new Error('the store could not sync its write-ahead log to disk; restart the service', {
          cause: error,
        });
        throw this.failure;
      })
      .finally(() => {
        if (this.running === sync) this.running = undefined;
      });
    this.running = sync;
    return sync;
  }
}

const syncs = new WeakMap<Kysely<Database>, WalSync>();

export function attachWalSync(db: Kysely<Database>, sync: WalSync): void {
  syncs.set(db, sync);
}

/** The WAL sync of an embedded store handle; undefined on PostgreSQL (its commits are durable when they return). */
export function walSyncOf(db: Kysely<Database>): WalSync | undefined {
  return syncs.get(db);
}
