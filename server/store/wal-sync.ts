// Durable commits on the embedded store without stopping the event loop for the disk.
//
// better-sqlite3 is synchronous: with `synchronous=FULL` every commit holds the event loop for the fsync of the
// write-ahead log (0.3 ms on a quiet disk here, several ms on a busy one), and nothing else runs meanwhile. So the
// store runs with `synchronous=NORMAL` instead, where a commit writes its frames to the WAL without syncing it, and
// syncs the WAL itself, here, on a thread of its own, before any write of the commit is answered. Every write the
// service answers goes through the write batcher, so an answered write is as durable as with FULL (in WAL mode,
// FULL differs from NORMAL only by that sync at each commit). A write made outside the batcher is synced only by
// the next batch's sync: keep answered writes in the batcher. The one exception is a write that says it needs no
// sync of its own (the delivery worker's claim, whose lease may be lost in a crash): it is answered once what it
// may have read is on disk (readsSynced), and its own writes ride on the next sync.
// While one sync runs, the event loop goes on parsing and batching the next writes; a commit that lands while a
// sync runs waits for the next one, and every commit that landed meanwhile shares it.
//
// What differs from FULL: for the fraction of a millisecond between a commit and its sync, a reader in this
// process can see the commit before it is durable. A power loss in that window loses a write nobody was told
// succeeded, but that a concurrent reader may have seen. And if the sync itself fails (an I/O error: the disk is
// failing), the writes are committed but their callers get the error (500), so a client that retries a create
// may make a second webhook.
//
// The sync runs on a thread of its own, not on libuv's shared pool of four: the delivery sender resolves callback
// hosts with dns.lookup on that pool, and a few hosts whose DNS hangs would otherwise hold every write's answer.
import { closeSync, openSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

/** The sync thread: syncs the descriptor it is sent, answers null or the error's message. */
const syncThreadSource = `
const { parentPort } = require('node:worker_threads');
const { fdatasyncSync } = require('node:fs');
parentPort.on('message', (fd) => {
  try {
    fdatasyncSync(fd);
    parentPort.postMessage(null);
  } catch (error) {
    parentPort.postMessage(String(error && error.message || error));
  }
});`;

/** One thread per store, started at the first sync and ended with the store. One sync at a time (WalSync). */
class SyncThread {
  private worker: Worker | undefined;
  private waiting: { resolve(): void; reject(error: Error): void } | undefined;

  sync(fd: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.thread().postMessage(fd);
    });
  }

  end(): void {
    void this.worker?.terminate();
    this.worker = undefined;
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(syncThreadSource, { eval: true });
    // The thread never keeps the process alive; a sync in flight does, through the promise its caller awaits.
    worker.unref();
    worker.on('message', (error: string | null) => this.settle(error === null ? undefined : new Error(error)));
    worker.on('error', (error) => this.settle(error));
    worker.on('exit', (code) => {
      if (this.worker === worker) this.worker = undefined;
      this.settle(new Error(`the log sync thread exited (code ${code})`));
    });
    this.worker = worker;
    return worker;
  }

  private settle(error: Error | undefined): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    if (!waiting) return;
    if (error) waiting.reject(error);
    else waiting.resolve();
  }
}

export class WalSync {
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  private closed = false;
  private readonly thread = new SyncThread();
  /**
   * The first sync that failed. After a failed fdatasync Linux may drop the unwritten pages and report the error
   * only once, so a later sync could "succeed" without the earlier commits on disk: like PostgreSQL after a failed
   * fsync, the store refuses every write from then on, and /healthz answers 503, until it is restarted.
   */
  failure: Error | undefined;

  /**
   * `othersCommitted()` at the start of the last sync; none before the first, so the first `readsSynced()` syncs:
   * another process may have committed, and died or not yet synced, before this store was opened.
   */
  private othersCommittedAtSync = Number.NaN;

  /**
   * `walPath` is the database's `-wal` file. It is opened once and kept open: SQLite keeps that file (same inode)
   * for as long as any connection, this one included, has the database open, and fdatasync flushes the file's
   * data whichever descriptor wrote it. `othersCommitted` answers a number that changes whenever another
   * connection (another process) has committed to the file (sqlite-changes.ts); without it, none is assumed to.
   */
  constructor(
    private readonly fd: number,
    private readonly othersCommitted: () => number = () => 0,
  ) {}

  static open(walPath: string, othersCommitted?: () => number): WalSync {
    return new WalSync(openSync(walPath, 'r'), othersCommitted);
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

  /**
   * Resolves once every sync asked for so far has ended, at once when none is under way: for a commit whose own
   * writes need not be on disk, but whose answer may show what earlier commits of this process wrote.
   */
  settled(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return this.queued ?? this.running ?? Promise.resolve();
  }

  /**
   * Resolves once every commit this process may have read is on disk, for a write that needs no sync of its own
   * (the worker's claim): this process's commits are covered by the syncs under way (settled), and another
   * process's commit since the last sync began (a second server publishing on the same file) by a sync of its
   * own, since that process may not have synced it yet.
   */
  readsSynced(): Promise<void> {
    return this.othersCommitted() === this.othersCommittedAtSync ? this.settled() : this.sync();
  }

  /** Closes the descriptor once the syncs under way have ended (never under a sync: the number could be reused). */
  close(): void {
    this.closed = true;
    const closeFd = () => {
      this.thread.end();
      closeSync(this.fd);
    };
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
    // Read before the sync begins: whatever another process committed before this point, the sync covers.
    this.othersCommittedAtSync = this.othersCommitted();
    const sync = this.thread
      .sync(this.fd)
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
