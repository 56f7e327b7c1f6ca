import { type Kysely, PostgresAdapter, type RawBuilder, sql } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any database shape will do
export function isPostgres(db: Kysely<any>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/** A unique constraint refused the write (SQLite and PostgreSQL spell it differently). */
export function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === '23505';
}

/**
 * A LIMIT of `rows`, for both stores: `.limit(rowLimit(n))`. The SQLite bundled with better-sqlite3 looks at a
 * bare `LIMIT ?` parameter's value while planning, so a new binding of it makes SQLite prepare the statement
 * again at its next run, and better-sqlite3 binds anew at every run: a claim took 240 µs instead of 137 µs. Behind a
 * cast the value is only read when the statement runs.
 */
export function rowLimit(rows: number): RawBuilder<number> {
  return sql<number>`cast(${rows} as integer)`;
}
