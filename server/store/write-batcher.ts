// Group commit for the embedded store. better-sqlite3 is synchronous, so a commit per request would run the
// transaction machinery once per write. The batcher runs the writes that arrive in one turn of the event loop in
// one transaction, each inside its own savepoint (one failing write rolls back alone), and answers them all once
// the commit is on disk (wal-sync.ts syncs the log off the event loop): every answered write is durable, but for
// those that say they need no sync of their own (below). Writes that arrive while the log syncs cannot be answered
// before the sync after it, so they are committed together once the running sync ends, not turn by turn as they
// arrive: one commit and one disk sync serve them all (inserts of one commit share the pages they append to;
// docs/performance-history.md, sixth round). A batch whose writes all say they need no sync of their own asks for
// none (each sync is a cache flush of the disk, even of a log with nothing new in it): the delivery worker's claims,
// four times a second on an idle service and about once per 20 events in the bench, whose leases may be lost in a
// crash (the deliveries are then claimed and sent again).
// PostgreSQL overlaps commits across its connections by itself, so there each write is its own transaction.
import { CompiledQuery, type Kysely, type Transaction } from 'kysely';
import { isPostgres } from './dialect.js';
import type { Database } from './schema.js';
import { type WalSync, walSyncOf } from './wal-sync.js';
import { type WebhookCache, webhookCacheOf } from './webhook-cache.js';

export type WriteWork<T> = (tx: Transaction<Database>) => Promise<T>;

interface Queued {
  work: WriteWork<unknown>;
  needsNoSync?: (value: unknown) => boolean;
  resolve(value: unknown): void;
  reject(reason: unknown): void;
}

/** Writes per transaction at most, so one batch cannot hold the connection for long. */
const maxBatch = 100;

// Compiled once: Kysely would build and compile each of these anew for every write.
const savepoint = CompiledQuery.raw('savepoint write');
const release = CompiledQuery.raw('release savepoint write');
const rollback = CompiledQuery.raw('rollback to savepoint write');

export type Attempted<T> = { ok: true; value: T } | { ok: false; error: unknown };

/**
 * Runs `work` in a savepoint of the open transaction `tx`: if it throws, its writes are rolled back and the rest of
 * the transaction stands. Savepoints nest (the most recent of a name is the one released or rolled back to).
 */
export async function inSavepoint<T>(tx: Kysely<Database>, work: () => Promise<T>): Promise<Attempted<T>> {
  await tx.executeQuery(savepoint);
  try {
    const value = await work();
    await tx.executeQuery(release);
    return { ok: true, value };
  } catch (error) {
    await tx.executeQuery(rollback);
    await tx.executeQuery(release);
    return { ok: false, error };
  }
}

export class WriteBatcher {
  private queue: Queued[] = [];
  private draining = false;
  private readonly grouped: boolean;
  private readonly cache: WebhookCache | undefined;
  private readonly walSync: WalSync | undefined;
  /** The log sync of the last batch, and its answers (settled either way): the next batch commits after it. */
  private syncing: Promise<void> = Promise.resolve();

  constructor(private readonly db: Kysely<Database>) {
    this.grouped = !isPostgres(db);
    this.cache = webhookCacheOf(db);
    this.walSync = walSyncOf(db);
  }

  /**
   * Runs `work` in a transaction (shared with other writes on SQLite) and resolves once it is committed and on
   * disk. `needsNoSync`, given what the work answered, says its writes need not reach the disk before it is
   * answered (it changed nothing, or nothing a crash may not undo): then its answer waits only until what it may
   * have read is on disk (WalSync.readsSynced), not for a sync of its own. A later sync covers its writes too: the
   * log is synced in commit order.
   */
  run<T>(work: WriteWork<T>, needsNoSync?: (value: T) => boolean): Promise<T> {
    // A store opened on a transaction (a caller grouping writes itself) writes straight into it.
    if (this.db.isTransaction) return work(this.db as Transaction<Database>);
    if (!this.grouped) return this.db.transaction().execute(work);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({
        work,
        needsNoSync: needsNoSync as Queued['needsNoSync'],
        resolve: resolve as (value: unknown) => void,
        reject,
      });
      if (!this.draining) {
        this.draining = true;
        // Wait out this turn of the event loop: the writes of the other requests in it join the batch.
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    // Writes that arrive while a batch commits and its log syncs form the next batch.
    while (this.queue.length > 0) {
      await this.syncing;
      await this.commit(this.queue.splice(0, maxBatch));
    }
    this.draining = false;
  }

  private async commit(batch: Queued[]): Promise<void> {
    const outcomes: Attempted<unknown>[] = [];
    const rejectAll = (error: unknown) => batch.forEach(({ reject }) => reject(error));
    try {
      await this.db.transaction().execute(async (tx) => {
        for (const { work } of batch) outcomes.push(await inSavepoint(tx, () => work(tx)));
      });
    } catch (error) {
      // The commit itself failed: nothing in the batch was written.
      return rejectAll(error);
    } finally {
      this.cache?.transactionEnded();
    }
    const answer = () =>
      batch.forEach(({ resolve, reject }, i) => {
        const outcome = outcomes[i]!;
        if (outcome.ok) resolve(outcome.value);
        else reject(outcome.error);
      });
    if (!this.walSync) return answer();
    // Committed, but not yet on disk: nobody is answered before it is, and the next batch commits once this sync
    // has ended (drain). A batch that needs no sync of its own still waits until what it may have read is on
    // disk: the syncs under way, or one more if another process committed meanwhile.
    const needsNoSync = batch.every(({ needsNoSync }, i) => {
      const outcome = outcomes[i]!;
      return outcome.ok && needsNoSync?.(outcome.value) === true;
    });
    const synced = needsNoSync ? this.walSync.readsSynced() : this.walSync.sync();
    this.syncing = synced.then(answer, rejectAll);
  }
}

const batchers = new WeakMap<Kysely<Database>, WriteBatcher>();

/** The one batcher of a database handle: every store writing through the same handle shares its commits. */
export function writesOf(db: Kysely<Database>): WriteBatcher {
  let batcher = batchers.get(db);
  if (!batcher) {
    batcher = new WriteBatcher(db);
    batchers.set(db, batcher);
  }
  return batcher;
}
