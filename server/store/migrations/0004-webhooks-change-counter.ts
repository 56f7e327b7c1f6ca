import { type Kysely, sql } from 'kysely';
import { isPostgres } from '../dialect.js';

// A counter that every change to the webhooks table moves, kept by triggers so that no write can miss it. The
// embedded store's webhook cache reads it when another process has committed (webhook-cache.ts): a commit that
// touched no webhook (a delivery worker's outcomes, a publish) then leaves the cache standing. PostgreSQL has no
// such cache, so there the table stays as made here and no trigger moves it.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('change_counters')
    .addColumn('name', 'text', (col) => col.primaryKey())
    .addColumn('value', 'bigint', (col) => col.notNull())
    .execute();
  await sql`insert into change_counters (name, value) values ('webhooks', 0)`.execute(db);
  if (isPostgres(db)) return;
  for (const event of ['insert', 'update', 'delete']) {
    await sql`
      create trigger ${sql.raw(`webhooks_after_${event}`)} after ${sql.raw(event)} on webhooks
      begin
        update change_counters set value = value + 1 where name = 'webhooks';
      end`.execute(db);
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  if (!isPostgres(db)) {
    for (const event of ['insert', 'update', 'delete']) {
      await sql`drop trigger if exists ${sql.raw(`webhooks_after_${event}`)}`.execute(db);
    }
  }
  await db.schema.dropTable('change_counters').execute();
}
