// A read cache of webhooks for the embedded store. Reads of webhooks far outnumber their writes (every API read,
// every published event's fan-out, every delivery the worker sends), and a SQLite read costs the event loop tens
// of microseconds, so the answers are kept in memory and thrown away whenever a webhook may have changed:
//
// - this process's writes call `changing()` when their statement runs, and the write batcher calls
//   `transactionEnded()` when that transaction has committed or rolled back, so nothing read while a write was
//   uncommitted outlives it (reads inside the transaction see it; reads outside wait for the connection);
// - other processes' commits (a `webhooks-api worker` disabling a webhook, a second server on the same file) are
//   seen through SQLite's `PRAGMA data_version`, asked only when the WAL-index header shows a commit
//   (sqlite-changes.ts), after each read is asked for: a read sees every commit made before it. Such a commit
//   clears the cache only if it changed a webhook, which the `webhooks` change counter (moved by triggers,
//   migration 0004) tells: a worker process recording outcomes, or a second server publishing, leaves it
//   standing. The API's reads (`readChecked`) share one check per turn of the event loop: the requests read from
//   their sockets in one turn ask during it, and the check runs after all of them, at the turn's end;
// - a read stores what it found only if nothing was invalidated while it ran.
//
// PostgreSQL is shared by many processes with no cheap change signal, so there the store reads every time.
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

/**
 * Entries per kind at most; the oldest go first. Pages hold up to 100 webhooks each, so they get few slots; a
 * fan-out entry is the ids of the webhooks one event type of one tenant goes to, up to `maxCachedSubscribers`.
 * Filled to these bounds the cache held about 15.5 MB of heap, measured with realistic records when fan-out entries
 * were 100 lists of 100 webhooks with their filters: 6.3 MB of webhooks, 2.5 MB of pages, 6.7 MB of fan-out lists
 * (the service's resident memory target is 150 MB with 100,000 webhooks). Fan-out entries now hold ids only: 500
 * entries of 100 ids read from SQLite took 3.2 MB, so the cache stays under about 12 MB when full. An event type
 * going to more than 100 webhooks reads its fan-out at each publish (one indexed query).
 */
export const cacheLimits = { webhook: 5_000, page: 25, subscribers: 500 } as const;

/** A fan-out longer than this is read each time instead of being kept. */
export const maxCachedSubscribers = 100;

export type CacheKind = keyof typeof cacheLimits;

export class WebhookCache {
  private generation = 0;
  private uncommittedChanges = false;
  private lastDataVersion: number;
  /**
   * The webhooks change counter when the cache last checked it; undefined when unknown (at start, and after this
   * process's own webhook writes, whose uncommitted or rolled-back moves of it a check may have seen).
   */
  private lastWebhooksVersion: number | undefined;
  private readonly entries: Record<CacheKind, Map<string, unknown>> = {
    webhook: new Map(),
    page: new Map(),
    subscribers: new Map(),
  };

  /**
   * `dataVersion` changes when another connection commits (sqlite-changes.ts, on the connection the store reads);
   * `webhooksVersion` reads the webhooks change counter, which moves with every change to a webhook.
   */
  constructor(
    private readonly dataVersion: () => number,
    private readonly webhooksVersion: () => number,
  ) {
    this.lastDataVersion = dataVersion();
  }

  /** The cached answer for `key`, or what `load` reads (kept unless a write happened meanwhile). */
  async read<T>(kind: CacheKind, key: string, load: () => Promise<T>): Promise<T> {
    return this.answer(this.fresh()[kind], kind, key, load);
  }

  /**
   * `read`, with other processes' commits checked for once per turn of the event loop for every read asked in it,
   * instead of once per read: the check is a system call, and it cost a cached read about 10 µs of its CPU on the
   * bench's machine (docs/performance-history.md, fourth round). The answer waits for the turn's check phase
   * (`setImmediate`), so use it only outside a transaction, where nothing waits on it. Every read still sees every
   * commit made before it was asked for: the check runs after the ask.
   */
  async readChecked<T>(kind: CacheKind, key: string, load: () => Promise<T>): Promise<T> {
    await this.checkThisTurn();
    return this.answer(this.entries[kind], kind, key, load);
  }

  private turnCheck: Promise<void> | undefined;

  private checkThisTurn(): Promise<void> {
    this.turnCheck ??= new Promise<void>((resolve, reject) =>
      setImmediate(() => {
        this.turnCheck = undefined;
        try {
          this.fresh();
          resolve();
        } catch (error) {
          reject(error);
        }
      }),
    );
    return this.turnCheck;
  }

  private async answer<T>(map: Map<string, unknown>, kind: CacheKind, key: string, load: () => Promise<T>) {
    if (map.has(key)) return map.get(key) as T;
    const generation = this.generation;
    const value = await load();
    this.remember(kind, key, value, generation);
    return value;
  }

  /** The cached answers among `keys`; read the rest, then `remember` them with the generation returned here. */
  lookup<T>(kind: CacheKind, keys: readonly string[]): { found: Map<string, T>; generation: number } {
    const map = this.fresh()[kind];
    const found = new Map<string, T>();
    for (const key of keys) if (map.has(key)) found.set(key, map.get(key) as T);
    return { found, generation: this.generation };
  }

  remember(kind: CacheKind, key: string, value: unknown, generation: number): void {
    if (generation !== this.generation) return;
    if (kind === 'subscribers' && (value as unknown[]).length > maxCachedSubscribers) return;
    const map = this.entries[kind];
    if (map.size >= cacheLimits[kind]) map.delete(map.keys().next().value as string);
    map.set(key, value);
  }

  /** A webhook is being written in the open transaction: forget every answer now, and again when it ends. */
  changing(): void {
    this.uncommittedChanges = true;
    this.invalidate();
  }

  /** The write transaction committed or rolled back (called by the write batcher before it answers anyone). */
  transactionEnded(): void {
    if (!this.uncommittedChanges) return;
    this.uncommittedChanges = false;
    this.lastWebhooksVersion = undefined;
    this.invalidate();
  }

  private invalidate(): void {
    this.generation++;
    for (const map of Object.values(this.entries)) map.clear();
  }

  private fresh(): Record<CacheKind, Map<string, unknown>> {
    const version = this.dataVersion();
    if (version !== this.lastDataVersion) {
      this.lastDataVersion = version;
      // Read after the data version: a webhook change committed after that read shows in the next check.
      const webhooksVersion = this.webhooksVersion();
      if (webhooksVersion !== this.lastWebhooksVersion) {
        this.lastWebhooksVersion = webhooksVersion;
        this.invalidate();
      }
    }
    return this.entries;
  }
}

const caches = new WeakMap<Kysely<Database>, WebhookCache>();

/** Gives the store handle `db` a webhook cache (the embedded store does, when it opens). */
export function attachWebhookCache(db: Kysely<Database>, cache: WebhookCache): void {
  caches.set(db, cache);
}

/**
 * The cache of a store handle, if it has one. A transaction handle has none of its own; code that reads or writes
 * webhooks inside a transaction uses the cache of the handle that opened it (safe on SQLite: the one connection
 * runs one transaction at a time, and every webhook write in it calls `changing()` first).
 */
export function webhookCacheOf(db: Kysely<Database>): WebhookCache | undefined {
  return caches.get(db);
}
