// Deliveries (one message to one webhook) and their attempts. The deliveries table is also the worker's queue;
// the test operation records its single attempt here too.
import { randomUUID } from 'node:crypto';
import { type Insertable, type Kysely, type Selectable, sql } from 'kysely';
import type { Schemas } from '../contract.js';
import { isPostgres, rowLimit } from './dialect.js';
import { prepared } from './prepared.js';
import { newRowId } from './row-ids.js';
import type { Database, DeliveriesTable, DeliveryAttemptsTable, DeliveryStatus } from './schema.js';
import { webhookCacheOf } from './webhook-cache.js';
import { inSavepoint, writesOf } from './write-batcher.js';

type Delivery = Schemas['Delivery'];
type DeliveryAttempt = Schemas['DeliveryAttempt'];

/** Deliveries postponed per statement at most: 2 parameters each in it, far below either database's limits. */
const postponeChunk = 500;

/** A delivery a worker holds: it alone may record the outcome, until lease_until. */
export type ClaimedDelivery = Selectable<DeliveriesTable> & { lease_id: string };

/** What the worker decided after one attempt. */
export interface CompletedAttempt {
  delivery: ClaimedDelivery;
  attemptedAt: Date;
  result: AttemptResult;
  /** pending with the next attempt time, or a final state. */
  next: { status: 'pending'; nextAttemptAt: Date } | { status: 'succeeded' | 'failed' };
  /** Disable the webhook now (410 Gone), with this reason. */
  disableWebhook?: string;
}

export interface DeliveryPage {
  items: Delivery[];
  next?: { createdAt: string; id: string };
}

function attemptRow(deliveryId: string, attemptedAt: Date, result: AttemptResult) {
  return {
    delivery_id: deliveryId,
    attempted_at: attemptedAt.toISOString(),
    succeeded: result.ok ? 1 : 0,
    reason: result.reason ?? null,
    response_status: result.responseStatus ?? null,
    duration_ms: Math.round(result.durationMs),
    response_body: result.responseBody ?? null,
    detail: result.detail,
  };
}

function toAttempt(row: Selectable<DeliveryAttemptsTable>): DeliveryAttempt {
  return {
    attemptedAt: row.attempted_at,
    succeeded: Boolean(row.succeeded),
    ...(row.reason ? { reason: row.reason as NonNullable<DeliveryAttempt['reason']> } : {}),
    ...(row.response_status !== null ? { responseStatus: row.response_status } : {}),
    durationMs: row.duration_ms,
    ...(row.response_body !== null ? { responseBody: row.response_body } : {}),
    detail: row.detail,
  };
}

function toDelivery(row: Selectable<DeliveriesTable>, attempts: DeliveryAttempt[]): Delivery {
  return {
    id: row.id,
    webhookId: row.webhook_id,
    ...(row.event_id ? { eventId: row.event_id } : {}),
    eventType: row.event_type,
    messageId: row.message_id,
    status: row.status,
    attempts,
    ...(row.status === 'pending' && row.next_attempt_at ? { nextAttemptAt: row.next_attempt_at } : {}),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export interface AttemptResult {
  ok: boolean;
  reason?: string;
  responseStatus?: number;
  durationMs: number;
  responseBody?: string;
  detail: string;
}

export interface SentMessage {
  tenantId: string;
  webhookId: string;
  eventType: string;
  messageId: string;
  payload: string;
}

export class DeliveryStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** Records a delivery that was attempted once, right away (the test operation): the delivery and its attempt. */
  async recordSingleAttempt(message: SentMessage, attemptedAt: Date, result: AttemptResult): Promise<string> {
    const id = newRowId();
    const at = attemptedAt.toISOString();
    await writesOf(this.db).run(async (tx) => {
      await insertDelivery(tx, {
        id,
        tenant_id: message.tenantId,
        webhook_id: message.webhookId,
        event_id: null,
        event_type: message.eventType,
        message_id: message.messageId,
        payload: message.payload,
        status: result.ok ? 'succeeded' : 'failed',
        attempt_count: 1,
        next_attempt_at: null,
        lease_until: null,
        lease_id: null,
        created_at: at,
        updated_at: new Date().toISOString(),
      });
      await insertAttempt(tx, attemptRow(id, attemptedAt, result));
    });
    return id;
  }

  /**
   * Leases up to `limit` due deliveries of enabled webhooks (a disabled webhook's deliveries wait, paused). One
   * statement, so two workers never take the same row: SQLite serialises writers, PostgreSQL skips rows another
   * worker has locked.
   */
  async claimDue(limit: number, leaseMs: number, now = new Date()): Promise<ClaimedDelivery[]> {
    const at = now.toISOString();
    const lease = { leaseUntil: new Date(now.getTime() + leaseMs).toISOString(), leaseId: randomUUID() };
    const { rows } = await writesOf(this.db).run(
      (tx) => claimDueQuery(tx, { ...lease, at, limit }),
      // A lease need not reach the disk before its deliveries are sent: lost in a crash, they are claimed and sent
      // again, as at-least-once allows. An outcome's sync covers it.
      () => true,
    );
    return rows as ClaimedDelivery[];
  }

  /**
   * Gives back leased deliveries unsent, due again at their `until` (a slow webhook's deliveries the worker may not
   * send now: slow-webhooks.ts). No attempt is recorded. Only the lease holder's postponement counts, as with an
   * outcome. Like a claim, it need not reach the disk before the worker goes on: lost in a crash, the leases run out
   * and the deliveries are claimed again.
   */
  async postpone(items: readonly { delivery: ClaimedDelivery; until: Date }[]): Promise<void> {
    if (items.length === 0) return;
    const now = new Date().toISOString();
    const byLease = new Map<string, { delivery: ClaimedDelivery; until: Date }[]>();
    for (const item of items) {
      const group = byLease.get(item.delivery.lease_id);
      if (group) group.push(item);
      else byLease.set(item.delivery.lease_id, [item]);
    }
    await writesOf(this.db).run(
      async (tx) => {
        // One statement per lease (one claim's deliveries share it) and chunk: one round trip on PostgreSQL for many
        // deliveries, and `lease_id = ? and id in (…)` stays flat where an `or` per delivery would nest one level
        // deeper each, past SQLite's limit of 1,000 at about as many deliveries.
        for (const [leaseId, group] of byLease) {
          for (let start = 0; start < group.length; start += postponeChunk) {
            const [first, ...rest] = group.slice(start, start + postponeChunk);
            await tx
              .updateTable('deliveries')
              .set({
                next_attempt_at: (eb) => {
                  let when = eb.case('id').when(first!.delivery.id).then(first!.until.toISOString());
                  for (const { delivery, until } of rest) when = when.when(delivery.id).then(until.toISOString());
                  return when.end();
                },
                lease_until: null,
                lease_id: null,
                updated_at: now,
              })
              .where('lease_id', '=', leaseId)
              .where('id', 'in', [first!, ...rest].map(({ delivery }) => delivery.id))
              .execute();
          }
        }
      },
      () => true,
    );
  }

  /**
   * Records a batch of attempts in one transaction (one disk sync for many deliveries). A webhook whose deliveries
   * have failed since before `autoDisable.afterMs` ago without a success is disabled with `autoDisable.reason`.
   */
  async complete(batch: readonly CompletedAttempt[], autoDisable: { afterMs: number; reason: string }): Promise<void> {
    if (batch.length === 0) return;
    const now = new Date().toISOString();
    const cutoff = new Date(Date.now() - autoDisable.afterMs).toISOString();
    const failed: unknown[] = [];
    await writesOf(this.db).run(async (tx) => {
      if (isPostgres(tx)) await lockWebhooksInOrder(tx, batch);
      // The common case first, in three statements for the whole batch; if that fails, one outcome at a time.
      // A delivery reported twice in one batch (sent, its lease ran out, claimed and sent again) takes the careful
      // path: the bulk write matches outcomes to deliveries by id, which cannot tell the two leases apart.
      const seen = new Map<string, number>();
      for (const { delivery } of batch) seen.set(delivery.id, (seen.get(delivery.id) ?? 0) + 1);
      const successes = batch.filter(
        (item) => item.result.ok && item.next.status === 'succeeded' && seen.get(item.delivery.id) === 1,
      );
      const rest = batch.filter((item) => !successes.includes(item));
      // If the bulk write fails, why shows below: the same outcomes, one at a time, fail alone and are reported.
      if (successes.length > 0 && !(await inSavepoint(tx, () => this.recordSuccesses(tx, successes, now))).ok) {
        rest.push(...successes);
      }
      for (const item of rest) {
        // One savepoint each: an outcome that cannot be written is lost alone (its lease runs out and it is sent
        // again), never taking the rest of the batch, other tenants' outcomes included, down with it.
        const recorded = await inSavepoint(tx, () => this.recordOutcome(tx, item, now, cutoff, autoDisable.reason));
        if (!recorded.ok) failed.push(recorded.error);
      }
    });
    if (failed.length > 0) throw new AggregateError(failed, `${failed.length} delivery outcomes could not be recorded`);
  }

  /**
   * Successful attempts, all at once: the deliveries still leased by the attempts' leases become succeeded, their
   * attempts are recorded, and their webhooks stop counting as failing. The same writes as `recordOutcome` makes
   * for a success, in three statements instead of three per delivery.
   */
  private async recordSuccesses(tx: Kysely<Database>, items: readonly CompletedAttempt[], now: string): Promise<void> {
    const moved = await tx
      .updateTable('deliveries')
      .set({
        status: 'succeeded',
        attempt_count: (eb) => eb('attempt_count', '+', 1),
        next_attempt_at: null,
        lease_until: null,
        lease_id: null,
        updated_at: now,
      })
      .where((eb) =>
        eb.or(items.map(({ delivery }) => eb.and([eb('id', '=', delivery.id), eb('lease_id', '=', delivery.lease_id)]))),
      )
      .returning(['id', 'webhook_id'])
      .execute();
    if (moved.length === 0) return;
    const movedIds = new Set(moved.map((row) => row.id));
    const recorded = items.filter(({ delivery }) => movedIds.has(delivery.id));
    await tx
      .insertInto('delivery_attempts')
      .values(recorded.map(({ delivery, attemptedAt, result }) => attemptRow(delivery.id, attemptedAt, result)))
      .execute();
    // failing_since is not shown by the webhook cache, nor does it move the cache's change counter (migration 0004).
    await tx
      .updateTable('webhooks')
      .set({ failing_since: null })
      .where('id', 'in', [...new Set(moved.map((row) => row.webhook_id))])
      .where('failing_since', 'is not', null)
      .execute();
  }

  private async recordOutcome(
    tx: Kysely<Database>,
    { delivery, attemptedAt, result, next, disableWebhook }: CompletedAttempt,
    now: string,
    cutoff: string,
    autoDisableReason: string,
  ): Promise<void> {
    // Only the lease holder moves the state. A worker whose lease ran out has lost the delivery to another (or it
    // was deleted with its webhook): then nothing of this attempt is written.
    const moved = await tx
      .updateTable('deliveries')
      .set({
        status: next.status,
        attempt_count: (eb) => eb('attempt_count', '+', 1),
        next_attempt_at: next.status === 'pending' ? next.nextAttemptAt.toISOString() : null,
        lease_until: null,
        lease_id: null,
        updated_at: now,
      })
      .where('id', '=', delivery.id)
      .where('lease_id', '=', delivery.lease_id)
      .executeTakeFirst();
    if (moved.numUpdatedRows === 0n) return;
    await tx.insertInto('delivery_attempts').values(attemptRow(delivery.id, attemptedAt, result)).execute();
    if (result.ok) {
      await tx
        .updateTable('webhooks')
        .set({ failing_since: null })
        .where('id', '=', delivery.webhook_id)
        .where('failing_since', 'is not', null)
        .execute();
      return;
    }
    await tx
      .updateTable('webhooks')
      .set({ failing_since: attemptedAt.toISOString() })
      .where('id', '=', delivery.webhook_id)
      .where('failing_since', 'is', null)
      .execute();
    let disable = tx
      .updateTable('webhooks')
      .set({ enabled: 0, disabled_reason: disableWebhook ?? autoDisableReason, disabled_at: now, updated_at: now })
      .where('id', '=', delivery.webhook_id)
      .where('enabled', '=', 1);
    if (!disableWebhook) disable = disable.where('failing_since', '<=', cutoff);
    const disabled = await disable.executeTakeFirst();
    // Before any other write of this batch runs (they run one after another), so none of them reads it cached.
    if (disabled.numUpdatedRows > 0n) webhookCacheOf(this.db)?.changing();
  }

  /** A webhook's deliveries, newest first, with their attempts. */
  async listForWebhook(
    tenantId: string,
    webhookId: string,
    options: { status?: DeliveryStatus; limit: number; before?: { createdAt: string; id: string } },
  ): Promise<DeliveryPage> {
    // Deliveries and their attempts are two reads; one snapshot keeps a worker's outcome from landing between
    // them (a delivery shown with its new attempt but its old state).
    return inReadSnapshot(this.db, async (tx) => {
      let query = tx
        .selectFrom('deliveries')
        .selectAll()
        .where('tenant_id', '=', tenantId)
        .where('webhook_id', '=', webhookId);
      if (options.status) query = query.where('status', '=', options.status);
      const before = options.before;
      if (before) {
        query = query.where((eb) =>
          eb.or([
            eb('created_at', '<', before.createdAt),
            eb.and([eb('created_at', '=', before.createdAt), eb('id', '<', before.id)]),
          ]),
        );
      }
      const rows = await query
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .limit(rowLimit(options.limit + 1))
        .execute();
      const page = rows.slice(0, options.limit);
      const attempts = await attemptsOf(tx, page.map((row) => row.id));
      const last = page.at(-1);
      return {
        items: page.map((row) => toDelivery(row, attempts.get(row.id) ?? [])),
        ...(rows.length > options.limit && last ? { next: { createdAt: last.created_at, id: last.id } } : {}),
      };
    });
  }

  /** Makes the delivery due now; 'in-flight' while a worker holds it; undefined when there is no such delivery. */
  async retryNow(tenantId: string, webhookId: string, deliveryId: string): Promise<Delivery | 'in-flight' | undefined> {
    const now = new Date().toISOString();
    // Through the batcher like every answered write: on SQLite it is synced to disk before the answer.
    const row = await writesOf(this.db).run((tx) =>
      tx
        .updateTable('deliveries')
        // Clearing the lease id also fences off a worker whose lease ran out: its late outcome cannot undo this.
        .set({ status: 'pending', next_attempt_at: now, lease_until: null, lease_id: null, updated_at: now })
        .where('tenant_id', '=', tenantId)
        .where('webhook_id', '=', webhookId)
        .where('id', '=', deliveryId)
        .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
        .returningAll()
        .executeTakeFirst(),
    );
    if (row) return toDelivery(row, (await attemptsOf(this.db, [row.id])).get(row.id) ?? []);
    const exists = await this.db
      .selectFrom('deliveries')
      .select('id')
      .where('tenant_id', '=', tenantId)
      .where('webhook_id', '=', webhookId)
      .where('id', '=', deliveryId)
      .executeTakeFirst();
    return exists ? 'in-flight' : undefined;
  }
}

/**
 * PostgreSQL: locks, in id order, the webhooks that recording `batch` may update (those of failed attempts, which set
 * failing_since or disable, and failing ones, which a success clears), before any outcome is written. Batches of
 * two worker processes that reach two such webhooks in opposite orders then wait for each other in turn instead of
 * deadlocking (PostgreSQL would abort one outcome; test/store/outcome-locks.test.ts). The webhook row comes before
 * the delivery rows, as in a webhook's deletion. A healthy webhook's successes lock nothing here. SQLite has one
 * writer at a time.
 */
async function lockWebhooksInOrder(tx: Kysely<Database>, batch: readonly CompletedAttempt[]): Promise<void> {
  const all = [...new Set(batch.map(({ delivery }) => delivery.webhook_id))];
  const failedIn = [...new Set(batch.filter(({ result }) => !result.ok).map(({ delivery }) => delivery.webhook_id))];
  await tx
    .selectFrom('webhooks')
    .select('id')
    .where('id', 'in', all)
    .where((eb) =>
      failedIn.length > 0
        ? eb.or([eb('id', 'in', failedIn), eb('failing_since', 'is not', null)])
        : eb('failing_since', 'is not', null),
    )
    .orderBy('id')
    .forNoKeyUpdate()
    .execute();
}

/** One delivery row: a publish writes one per subscribed webhook, the test operation one for its attempt. */
export const insertDelivery = prepared((db, row: Insertable<DeliveriesTable>) => db.insertInto('deliveries').values(row));

const insertAttempt = prepared((db, row: Insertable<DeliveryAttemptsTable>) =>
  db.insertInto('delivery_attempts').values(row),
);

/** The claim of `claimDue`: one statement (see there). */
const claimDueQuery = prepared((db, { leaseUntil, leaseId, at, limit }: ClaimValues) =>
  db
    .updateTable('deliveries')
    .set({ lease_until: leaseUntil, lease_id: leaseId })
    .where('id', 'in', (eb) => {
      const due = eb
        .selectFrom('deliveries')
        .select('id')
        .where('status', '=', 'pending')
        .where('next_attempt_at', '<=', at)
        .where((w) => w.or([w('lease_until', 'is', null), w('lease_until', '<', at)]))
        // Per candidate row, by the webhook's primary key. `webhook_id in (select id from webhooks where
        // enabled = 1)` made SQLite scan every webhook of every tenant on each claim (2 ms at 2,000 webhooks,
        // growing with the table, all of it holding the event loop).
        .where(({ exists, selectFrom }) =>
          exists(
            selectFrom('webhooks')
              .select(sql.lit(1).as('one'))
              .whereRef('webhooks.id', '=', 'deliveries.webhook_id')
              .where('webhooks.enabled', '=', 1),
          ),
        )
        .orderBy('next_attempt_at')
        .limit(rowLimit(limit));
      return isPostgres(db) ? due.forUpdate().skipLocked() : due;
    })
    .returningAll(),
);

type ClaimValues = { leaseUntil: string; leaseId: string; at: string; limit: number };

/**
 * Runs `read` in one snapshot. PostgreSQL: a repeatable-read transaction. SQLite: a deferred transaction on the one
 * connection, held for the reads; not `db.transaction()`, whose `begin immediate` would take the write lock and
 * make a read wait behind another process's writes.
 */
async function inReadSnapshot<T>(db: Kysely<Database>, read: (tx: Kysely<Database>) => Promise<T>): Promise<T> {
  if (isPostgres(db)) return db.transaction().setIsolationLevel('repeatable read').execute(read);
  return db.connection().execute(async (connection) => {
    await sql`begin deferred`.execute(connection);
    try {
      return await read(connection);
    } finally {
      await sql`commit`.execute(connection);
    }
  });
}

/** The attempts of these deliveries, oldest first, by delivery. */
async function attemptsOf(db: Kysely<Database>, deliveryIds: string[]): Promise<Map<string, DeliveryAttempt[]>> {
  const byDelivery = new Map<string, DeliveryAttempt[]>();
  if (deliveryIds.length === 0) return byDelivery;
  const rows = await db
    .selectFrom('delivery_attempts')
    .selectAll()
    .where('delivery_id', 'in', deliveryIds)
    .orderBy('seq')
    .execute();
  for (const row of rows) {
    const list = byDelivery.get(row.delivery_id) ?? [];
    list.push(toAttempt(row));
    byDelivery.set(row.delivery_id, list);
  }
  return byDelivery;
}
