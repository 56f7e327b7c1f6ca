// The stores every store-touching suite runs on: SQLite always, PostgreSQL when TEST_DATABASE_URL is set (CI
// sets it). Each PostgreSQL use gets its own schema, so runs and leftovers never collide.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import pg from 'pg';
import { migrateToLatest, openDatabase } from '../../server/store/database.js';
import type { Database } from '../../server/store/schema.js';
import type { WebhookInput } from '../../server/store/webhooks.js';

export interface StoreSetup {
  dataDir: string;
  databaseUrl?: string;
  cleanup(): Promise<void>;
}

export interface Backend {
  name: 'sqlite' | 'postgres';
  available: boolean;
  setup(): Promise<StoreSetup>;
}

const postgresUrl = process.env.TEST_DATABASE_URL;
if (!postgresUrl) {
  console.warn('PostgreSQL suites are SKIPPED: set TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test to run them.');
}

async function sqlite(): Promise<StoreSetup> {
  const dataDir = mkdtempSync(join(tmpdir(), 'webhooks-test-'));
  return { dataDir, cleanup: async () => rmSync(dataDir, { recursive: true, force: true }) };
}

async function postgres(): Promise<StoreSetup> {
  const schema = `test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  const admin = new pg.Client({ connectionString: postgresUrl });
  await admin.connect();
  await admin.query(`create schema ${schema}`);
  await admin.end();
  const url = new URL(postgresUrl!);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const dataDir = mkdtempSync(join(tmpdir(), 'webhooks-test-'));
  return {
    dataDir,
    databaseUrl: url.href,
    cleanup: async () => {
      rmSync(dataDir, { recursive: true, force: true });
      const client = new pg.Client({ connectionString: postgresUrl });
      await client.connect();
      await client.query(`drop schema ${schema} cascade`);
      await client.end();
    },
  };
}

export const backends: Backend[] = [
  { name: 'sqlite', available: true, setup: sqlite },
  { name: 'postgres', available: Boolean(postgresUrl), setup: postgres },
];

/** Runs `test` on a fresh, migrated store on `backend`, and closes and removes the store afterwards. */
export async function withMigratedStore(
  backend: Backend,
  test: (db: Kysely<Database>, store: StoreSetup) => Promise<void>,
): Promise<void> {
  const store = await backend.setup();
  const db = openDatabase(store);
  try {
    await migrateToLatest(db);
    await test(db, store);
  } finally {
    await db.destroy();
    await store.cleanup();
  }
}

/**
 * What `WebhookStore.create` takes, with a callback URL of its own per `host` (`https://<host>.example.com/h`),
 * for `order.*`, enabled; `change` overrides any field.
 */
export function webhookInput(host: string, change: Partial<WebhookInput> = {}): WebhookInput {
  const url = `https://${host}.example.com/h`;
  return { callbackUrl: url, callbackUrlKey: url, events: ['order.*'], enabled: true, headers: {}, ...change };
}
