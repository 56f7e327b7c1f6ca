import { type Kysely, sql } from 'kysely';
import { isPostgres } from '../dialect.js';

// A counter that every change to what the webhook cache shows moves, kept by triggers so that no write can miss it.
// The embedded store's webhook cache reads it when another process has committed (webhook-cache.ts): a commit that
// changed no webhook (a delivery worker's outcomes, a publish) then leaves the cache standing. PostgreSQL has no
// such cache, so there the table stays as made here and no trigger moves it.
//
// - The update trigger names every column but `failing_since`, which the cache does not show and the worker sets at
//   a webhook's first failure and clears at its recovery. A column added later must be added to it (a migration
//   re-creating the trigger); test/store/webhook-cache.test.ts fails until it is. A migration that rebuilds the
//   table must re-create all three (the store falls back to clearing at every commit of another process when they
//   are missing: database.ts).
// - Each change writes a random value, not the last one plus one: a counter that can go back (migrations run down
//   and up, an older copy of the file restored) could come back to a value a cache saw before the webhooks changed.
export const cachedWebhookColumns = [
  'seq',
  'id',
  'tenant_id',
  'callback_url',
  'callback_url_key',
  'events',
  'description',
  'enabled',
  'headers',
  'secret',
  'created_at',
  'updated_at',
  'previous_secret',
  'previous_secret_expires_at',
  'disabled_reason',
  'disabled_at',
] as const;

export const webhookTriggers = ['webhooks_after_insert', 'webhooks_after_update', 'webhooks_after_delete'] as const;

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('change_counters')
    .addColumn('name', 'text', (col) => col.primaryKey())
    .addColumn('value', 'bigint', (col) => col.notNull())
    .execute();
  await sql`insert into change_counters (name, value) values ('webhooks', 0)`.execute(db);
  if (isPostgres(db)) return;
  const events = {
    webhooks_after_insert: 'insert',
    webhooks_after_update: `update of ${cachedWebhookColumns.join(', ')}`,
    webhooks_after_delete: 'delete',
  };
  for (const trigger of webhookTriggers) {
    // random() >> 11: a 53-bit value, exact as a JavaScript number.
    await sql`
      create trigger ${sql.raw(trigger)} after ${sql.raw(events[trigger])} on webhooks
      begin
        update change_counters set value = random() >> 11 where name = 'webhooks';
      end`.execute(db);
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  if (!isPostgres(db)) {
    for (const trigger of webhookTriggers) await sql`drop trigger if exists ${sql.raw(trigger)}`.execute(db);
  }
  await db.schema.dropTable('change_counters').execute();
}
