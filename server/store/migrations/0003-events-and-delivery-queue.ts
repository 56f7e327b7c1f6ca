import type { Kysely } from 'kysely';

// Published events; what the delivery queue needs (a lease id as a fencing token); secret rotation and
// automatic disabling on webhooks.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('events')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('tenant_id', 'text', (col) => col.notNull())
    .addColumn('type', 'text', (col) => col.notNull())
    .addColumn('data', 'text', (col) => col.notNull())
    .addColumn('idempotency_key', 'text')
    .addColumn('delivery_count', 'integer', (col) => col.notNull())
    .addColumn('created_at', 'text', (col) => col.notNull())
    .addUniqueConstraint('events_tenant_idempotency_key', ['tenant_id', 'idempotency_key'])
    .execute();

  await db.schema.alterTable('deliveries').addColumn('lease_id', 'text').execute();
  await db.schema
    .createIndex('deliveries_webhook_status_created')
    .on('deliveries')
    .columns(['webhook_id', 'status', 'created_at'])
    .execute();

  for (const column of ['previous_secret', 'previous_secret_expires_at', 'disabled_reason', 'disabled_at', 'failing_since']) {
    await db.schema.alterTable('webhooks').addColumn(column, 'text').execute();
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const column of ['previous_secret', 'previous_secret_expires_at', 'disabled_reason', 'disabled_at', 'failing_since']) {
    await db.schema.alterTable('webhooks').dropColumn(column).execute();
  }
  await db.schema.dropIndex('deliveries_webhook_status_created').execute();
  await db.schema.alterTable('deliveries').dropColumn('lease_id').execute();
  await db.schema.dropTable('events').execute();
}
