// Opens the store: the embedded SQLite file by default, PostgreSQL when a postgres:// URL is given. Both run the
// same migrations and the same queries through Kysely.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import {
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  Kysely,
  Migrator,
  PostgresDialect,
  SqliteDialect,
  type SqliteDatabase,
  type SqliteDialectConfig,
  SqliteDriver,
  sql,
} from 'kysely';
import pg from 'pg';
import { isPostgres } from './dialect.js';
import { webhookTriggers } from './migrations/0004-webhooks-change-counter.js';
import { migrations } from './migrations/index.js';
import type { Database } from './schema.js';
import { changeSignalOf } from './sqlite-changes.js';
import { attachWalSync, WalSync, walSyncOf } from './wal-sync.js';
import { attachWebhookCache, WebhookCache } from './webhook-cache.js';

export interface StoreLocation {
  dataDir: string;
  databaseUrl?: string;
}

export interface OpenOptions {
  /**
   * PostgreSQL: where a lost idle pooled connection is told, at warn (the server restarted or failed over, or an
   * administrator ended the session). The pool drops it and opens a new one for the next query by itself.
   */
  log?: { warn(fields: object, message: string): void };
}

export function openDatabase(location: StoreLocation, options: OpenOptions = {}): Kysely<Database> {
  if (location.databaseUrl) {
    // Bounded waits: an unreachable database makes /healthz answer 503 and requests fail, instead of hanging.
    // The sessions are named webhooks-api in pg_stat_activity, unless the URL or PGAPPNAME names them.
    const pool = new pg.Pool({
      connectionString: location.databaseUrl,
      fallback_application_name: 'webhooks-api',
      max: 10,
      connectionTimeoutMillis: 5_000,
      statement_timeout: 30_000,
    });
    // An idle client that loses its server emits 'error'; without a listener that would crash the process. Logged
    // with pg's message and code only: its error carries the whole client object, connection parameters and all.
    pool.on('error', (error) => {
      const { code } = error as { code?: unknown };
      options.log?.warn(
        { reason: error.message, ...(typeof code === 'string' ? { code } : {}) },
        'PostgreSQL closed an idle connection; the pool opens a new one for the next query',
      );
    });
    return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  }
  mkdirSync(location.dataDir, { recursive: true });
  const path = join(location.dataDir, 'webhooks.db');
  const file = new SQLite(path);
  // WAL lets readers run beside the writer. NORMAL does not sync the WAL at each commit: the write batcher syncs it
  // off the event loop before it answers (wal-sync.ts), so every answered write is as durable as with FULL (but
  // for the delivery worker's claims, which need not be).
  // busy_timeout waits for another process's lock instead of failing at once. temp_store=MEMORY keeps the journal
  // of the batcher's savepoints in memory when it outgrows 64 KiB, instead of a temp file opened, written and
  // unlinked in the transaction (6.26 → 4.45 write system calls per publish; docs/performance-history.md, fifth
  // round).
  file.pragma('journal_mode = WAL');
  file.pragma('synchronous = NORMAL');
  file.pragma('busy_timeout = 5000');
  file.pragma('foreign_keys = ON');
  file.pragma('temp_store = MEMORY');
  // The first read creates the -wal file if no connection had yet.
  file.prepare('select count(*) from sqlite_master').get();
  const changes = changeSignalOf(file, path);
  const walSync = WalSync.open(`${path}-wal`, () => changes.dataVersion());
  const db = new Kysely<Database>({
    dialect: new ImmediateSqliteDialect({
      database: withStatementCache(file, () => {
        walSync.close();
        changes.close();
      }),
    }),
  });
  attachWalSync(db, walSync);
  attachWebhookCache(db, new WebhookCache(() => changes.dataVersion(), webhooksVersionOf(file)));
  return db;
}

/**
 * Reads the webhooks change counter (migration 0004) on `file`. Prepared at its first use: the store is opened
 * before its migrations run. Until the counter and its three triggers exist (migrations not run yet, or a later
 * migration dropped a trigger) it answers NaN, which never equals a value seen: the cache then clears at every
 * commit of another process, as it did before the counter.
 */
function webhooksVersionOf(file: SQLite.Database): () => number {
  let statement: SQLite.Statement | undefined;
  return () => {
    try {
      if (!statement) {
        const triggers = file
          .prepare("select name from sqlite_master where type = 'trigger' and tbl_name = 'webhooks'")
          .pluck()
          .all() as string[];
        if (!webhookTriggers.every((trigger) => triggers.includes(trigger))) return Number.NaN;
        statement = file.prepare("select value from change_counters where name = 'webhooks'").pluck();
      }
      return Number(statement.get());
    } catch {
      return Number.NaN;
    }
  };
}

/**
 * Transactions that take the write lock when they begin. Kysely's `begin` is deferred: a transaction that reads
 * and then writes (a publish checks its idempotency key and reads the subscribers first) fails at once with
 * SQLITE_BUSY if another process committed in between, and busy_timeout cannot help there. `begin immediate`
 * waits for the lock up front (bounded by busy_timeout) instead. Every `db.transaction()` here writes; the
 * delivery log's read snapshot opens a deferred transaction of its own (deliveries.ts, inReadSnapshot).
 */
class ImmediateSqliteDialect extends SqliteDialect {
  constructor(private readonly config: SqliteDialectConfig) {
    super(config);
  }

  override createDriver(): Driver {
    return new (class extends SqliteDriver {
      override async beginTransaction(connection: DatabaseConnection): Promise<void> {
        await connection.executeQuery(CompiledQuery.raw('begin immediate'));
      }
    })(this.config);
  }
}

/**
 * Kysely prepares every query anew; the store runs a few dozen distinct statements, so keep them prepared. Safe
 * because better-sqlite3 runs one statement at a time, to completion, on the one connection.
 */
function withStatementCache(file: SQLite.Database, afterClose: () => void, maxStatements = 100): SqliteDatabase {
  const statements = new Map<string, SQLite.Statement>();
  return {
    close: () => {
      file.close();
      afterClose();
    },
    prepare(query: string) {
      let statement = statements.get(query);
      if (!statement) {
        statement = file.prepare(query);
        // Queries with a variable number of parameters (IN lists, batch inserts) make many distinct texts.
        if (statements.size >= maxStatements) statements.delete(statements.keys().next().value as string);
        statements.set(query, statement);
      }
      return statement;
    },
  };
}

export async function migrateToLatest(db: Kysely<Database>): Promise<string[]> {
  // Kysely looks for its own bookkeeping tables in every schema unless told which one; name the one in use, or a
  // database whose other schemas were migrated too would be taken as migrated already.
  const schema = isPostgres(db)
    ? (await sql<{ schema: string }>`select current_schema() as schema`.execute(db)).rows[0]?.schema
    : undefined;
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    ...(schema ? { migrationTableSchema: schema } : {}),
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

export async function storeIsReachable(db: Kysely<Database>): Promise<boolean> {
  // A store whose log could not be synced refuses writes until restarted (wal-sync.ts).
  if (walSyncOf(db)?.failure) return false;
  try {
    await sql`select 1`.execute(db);
    return true;
  } catch {
    return false;
  }
}
