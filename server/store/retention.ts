// Retention of the delivery log: without it every delivery, attempt and event would be kept for ever and the store
// would only grow. Deliveries that have ended (succeeded or failed) are deleted with their attempts once older than
// the retention; events once older than the retention and the idempotency window both. A pending delivery stays
// whatever its age: a disabled webhook's deliveries wait, paused, until it is enabled again.
//
// Rows are found through their primary key: ids are UUIDv7, ordered by creation time, so "made before the cutoff"
// is a range of the key, and no index is added for this (each one would cost every publish a page write). The
// creation time is checked too, so a row whose id is not time-ordered is never deleted early.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import { rowLimit } from './dialect.js';
import { idempotencyWindowMs } from './events.js';
import { firstRowIdAt } from './row-ids.js';
import type { Database } from './schema.js';
import { writesOf } from './write-batcher.js';

export interface PrunedRows {
  deliveries: number;
  events: number;
}

/**
 * Deliveries (or events) deleted per transaction. A delivery and its attempt cost SQLite about 0.1 ms to delete
 * (eight B-tree entries), all of it on the event loop: 100 hold it about 13 ms, 500 about 55 ms (with checkpoints,
 * up to 38 and 80 ms; 50,000 deliveries, 2026-12-02).
 */
const chunkRows = 100;

export interface PruneOptions {
  now?: Date;
  /** Stops between chunks once aborted (the worker stopping): a chunk that has begun still commits. */
  signal?: AbortSignal;
}

/** Deletes what has outlived `retentionMs` (see above), a chunk at a time; answers how many rows went. */
export async function pruneDeliveryLog(
  db: Kysely<Database>,
  retentionMs: number,
  { now = new Date(), signal }: PruneOptions = {},
): Promise<PrunedRows> {
  const deliveriesBefore = new Date(now.getTime() - retentionMs);
  const eventsBefore = new Date(now.getTime() - Math.max(retentionMs, idempotencyWindowMs));
  const batcher = writesOf(db);
  // `chunk(tx, after)` deletes up to chunkRows rows with ids above `after` and answers their ids. Each chunk starts
  // after the highest id the last one deleted, so rows that stay (old pending deliveries) are read once per pass.
  const inChunks = async (chunk: (tx: Kysely<Database>, after: string) => Promise<string[]>) => {
    let total = 0;
    let after = '';
    while (!signal?.aborted) {
      const started = performance.now();
      const ids = await batcher.run((tx) => chunk(tx, after), (deleted) => deleted.length === 0);
      total += ids.length;
      if (ids.length < chunkRows) break;
      after = ids.reduce((highest, id) => (id > highest ? id : highest));
      // Each chunk is a transaction of its own, and a pause as long as it took follows it: a backlog (the first
      // start after months of log) takes at most half of the store's time, and requests go on in between.
      // An abort ends the pause early (rejecting); the loop's condition then ends the pass.
      await sleep(Math.min(performance.now() - started, 1_000), undefined, { signal }).catch(() => {});
    }
    return total;
  };
  // Attempts go with their deliveries (ON DELETE CASCADE). The conditions are checked again on the rows themselves:
  // on PostgreSQL a delivery retried (set pending) after the subquery's snapshot must stay.
  const deliveries = await inChunks(async (tx, after) => {
    const rows = await tx
      .deleteFrom('deliveries')
      .where('id', 'in', (eb) =>
        eb
          .selectFrom('deliveries')
          .select('id')
          .where('id', '>', after)
          .where('id', '<', firstRowIdAt(deliveriesBefore))
          .where('created_at', '<', deliveriesBefore.toISOString())
          .where('status', '<>', 'pending')
          .orderBy('id')
          .limit(rowLimit(chunkRows)),
      )
      .where('status', '<>', 'pending')
      .returning('id')
      .execute();
    return rows.map((row) => row.id);
  });
  const events = await inChunks(async (tx, after) => {
    const rows = await tx
      .deleteFrom('events')
      .where('id', 'in', (eb) =>
        eb
          .selectFrom('events')
          .select('id')
          .where('id', '>', after)
          .where('id', '<', firstRowIdAt(eventsBefore))
          .where('created_at', '<', eventsBefore.toISOString())
          .orderBy('id')
          .limit(rowLimit(chunkRows)),
      )
      .returning('id')
      .execute();
    return rows.map((row) => row.id);
  });
  return { deliveries, events };
}
