// Publishing: the event and one delivery per subscribed webhook are written in one transaction, so an answered
// publish is never half done. An idempotency key seen in the last 24 hours answers the first event instead.
import { isDeepStrictEqual } from 'node:util';
import type { Insertable, Kysely, Selectable } from 'kysely';
import { newMessageId } from '../delivery/signature.js';
import { insertDelivery } from './deliveries.js';
import { isUniqueViolation } from './dialect.js';
import { prepared } from './prepared.js';
import { newRowId } from './row-ids.js';
import type { Database, EventsTable } from './schema.js';
import { webhookCacheOf } from './webhook-cache.js';
import { subscribersTo } from './webhooks.js';
import { writesOf } from './write-batcher.js';

export const idempotencyWindowMs = 24 * 3_600_000;

export interface EventInput {
  type: string;
  data: Record<string, unknown>;
  idempotencyKey?: string;
}

export interface PublishedEvent {
  id: string;
  type: string;
  createdAt: string;
  deliveries: number;
}

export interface PublishResult {
  event: PublishedEvent;
  /** True when the idempotency key answered an earlier event and nothing new was published. */
  replayed: boolean;
}

export class IdempotencyKeyReusedError extends Error {
  constructor(readonly key: string, readonly eventId: string) {
    super(`idempotency key ${key} was used for event ${eventId}`);
  }
}

const toPublished = (row: Selectable<EventsTable>): PublishedEvent => ({
  id: row.id,
  type: row.type,
  createdAt: row.created_at,
  deliveries: row.delivery_count,
});

/** Rows per multi-row INSERT, well under SQLite's bound on statement variables. */
const insertChunk = 200;

export class EventStore {
  /** `firstAttemptDelayMs`: the retry schedule's first entry, the wait before a new delivery's first attempt. */
  constructor(
    private readonly db: Kysely<Database>,
    private readonly firstAttemptDelayMs = 0,
  ) {}

  async publish(tenantId: string, input: EventInput): Promise<PublishResult> {
    try {
      return await writesOf(this.db).run((tx) => this.publishIn(tx, tenantId, input));
    } catch (error) {
      // Two publishes with one key raced; the other committed first, so answer its event.
      if (input.idempotencyKey && isUniqueViolation(error)) {
        const replay = await this.replay(this.db, tenantId, input);
        if (replay) return replay;
      }
      throw error;
    }
  }

  private async replay(db: Kysely<Database>, tenantId: string, input: EventInput): Promise<PublishResult | undefined> {
    const existing = await db
      .selectFrom('events')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('idempotency_key', '=', input.idempotencyKey!)
      .executeTakeFirst();
    if (!existing) return undefined;
    if (Date.parse(existing.created_at) <= Date.now() - idempotencyWindowMs) {
      // Older than the window: the key is free again.
      await db.updateTable('events').set({ idempotency_key: null }).where('id', '=', existing.id).execute();
      return undefined;
    }
    if (existing.type !== input.type || !isDeepStrictEqual(JSON.parse(existing.data), input.data)) {
      throw new IdempotencyKeyReusedError(input.idempotencyKey!, existing.id);
    }
    return { event: toPublished(existing), replayed: true };
  }

  private async publishIn(tx: Kysely<Database>, tenantId: string, input: EventInput): Promise<PublishResult> {
    if (input.idempotencyKey) {
      const replay = await this.replay(tx, tenantId, input);
      if (replay) return replay;
    }
    const webhookIds = await subscribersTo(tx, tenantId, input.type, webhookCacheOf(this.db));
    const createdAt = new Date().toISOString();
    const event = {
      id: newRowId(),
      tenant_id: tenantId,
      type: input.type,
      data: JSON.stringify(input.data),
      idempotency_key: input.idempotencyKey ?? null,
      delivery_count: webhookIds.length,
      created_at: createdAt,
    };
    await insertEvent(tx, event);
    const payload = JSON.stringify({ type: input.type, timestamp: createdAt, data: input.data });
    const firstAttemptAt = new Date(Date.parse(createdAt) + this.firstAttemptDelayMs).toISOString();
    const rows = webhookIds.map((webhookId) => ({
      id: newRowId(),
      tenant_id: tenantId,
      webhook_id: webhookId,
      event_id: event.id,
      event_type: input.type,
      message_id: newMessageId(),
      payload,
      status: 'pending' as const,
      attempt_count: 0,
      next_attempt_at: firstAttemptAt,
      lease_until: null,
      lease_id: null,
      created_at: createdAt,
      updated_at: createdAt,
    }));
    // One subscriber (the common case) through the prepared insert; more in multi-row chunks, so a wide fan-out
    // costs PostgreSQL a round trip per chunk, not per webhook.
    if (rows.length === 1) await insertDelivery(tx, rows[0]!);
    else {
      for (let i = 0; i < rows.length; i += insertChunk) {
        await tx.insertInto('deliveries').values(rows.slice(i, i + insertChunk)).execute();
      }
    }
    return { event: toPublished(event), replayed: false };
  }
}

const insertEvent = prepared((db, row: Insertable<EventsTable>) => db.insertInto('events').values(row));
