// API keys: opaque bearer tokens `whk_…`, each bound to one tenant and a set of permissions. Only a SHA-256
// of the token is stored (the tokens are 256 random bits, so a slow hash would add nothing).
import crypto, { createHash, randomBytes } from 'node:crypto';
import { type Kysely, type Selectable, sql } from 'kysely';
import { isPostgres } from './dialect.js';
import { newRowId } from './row-ids.js';
import type { ApiKeysTable, Database } from './schema.js';
import { writesOf } from './write-batcher.js';

export const apiKeyPrefix = 'whk_';

export interface ApiKey {
  id: string;
  tenant: string;
  permissions: string[];
  tokenPrefix: string;
  createdAt: string;
  expiresAt?: string;
  revokedAt?: string;
}

/**
 * The stored form of a token, computed on every authenticated request. Node's one-shot `crypto.hash` (20.12 and
 * later) skips the Hash object: 2.2–2.6 µs of a read's busy time against 4.5–5.8 µs for `createHash` and `digest`
 * (read profiles, docs/performance-history.md, fifth round). Older Node 20 releases take the object path.
 */
export const hashToken: (token: string) => string =
  typeof crypto.hash === 'function'
    ? (token) => crypto.hash('sha256', token, 'hex')
    : (token) => createHash('sha256').update(token).digest('hex');

function toApiKey(row: Selectable<ApiKeysTable>): ApiKey {
  return {
    id: row.id,
    tenant: row.tenant_id,
    permissions: JSON.parse(row.permissions) as string[],
    tokenPrefix: row.token_prefix,
    createdAt: row.created_at,
    ...(row.expires_at ? { expiresAt: row.expires_at } : {}),
    ...(row.revoked_at ? { revokedAt: row.revoked_at } : {}),
  };
}

/** The advisory lock (PostgreSQL) that makers of a first key take turns on: any number unique to the purpose. */
const firstKeyLock = 0x7768_6b31; // "whk1"

function newKey(tenant: string, permissions: string[], expiresAt?: Date) {
  const token = apiKeyPrefix + randomBytes(32).toString('base64url');
  const row = {
    id: newRowId(),
    tenant_id: tenant,
    token_hash: hashToken(token),
    token_prefix: token.slice(0, 12),
    permissions: JSON.stringify(permissions),
    created_at: new Date().toISOString(),
    expires_at: expiresAt?.toISOString() ?? null,
    revoked_at: null,
  };
  return { row, token };
}

export class ApiKeyStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** Makes a key and returns it with its token, which is shown this once and never stored. */
  async create(tenant: string, permissions: string[], expiresAt?: Date): Promise<ApiKey & { token: string }> {
    const { row, token } = newKey(tenant, permissions, expiresAt);
    await writesOf(this.db).run((tx) => tx.insertInto('api_keys').values(row).execute());
    return { ...toApiKey(row), token };
  }

  /**
   * Makes a key only if the store holds none (the key a first start prints), and undefined when one exists. Many
   * processes starting at once on an empty store make one key between them: on SQLite the check and the insert are
   * one statement under the write lock; on PostgreSQL, where two such statements would each miss the other's
   * uncommitted row, the makers take turns on a transaction-scoped advisory lock, at read committed.
   */
  async createFirst(tenant: string, permissions: string[]): Promise<(ApiKey & { token: string }) | undefined> {
    const { row, token } = newKey(tenant, permissions);
    const columns = Object.keys(row) as (keyof typeof row)[];
    const result = await writesOf(this.db).run(async (tx) => {
      if (isPostgres(tx)) {
        // Read committed whatever the server's default: the check below must see a key committed while this
        // transaction waited for the lock, which a snapshot taken before the wait (repeatable read) would not.
        await sql`set transaction isolation level read committed`.execute(tx);
        await sql`select pg_advisory_xact_lock(${firstKeyLock})`.execute(tx);
      }
      return tx
        .insertInto('api_keys')
        .columns(columns)
        .expression(
          tx
            .selectNoFrom((eb) => columns.map((column) => eb.val(row[column]).as(column)))
            .where(({ not, exists, selectFrom }) => not(exists(selectFrom('api_keys').select('id')))),
        )
        .executeTakeFirstOrThrow();
    });
    return result.numInsertedOrUpdatedRows === 1n ? { ...toApiKey(row), token } : undefined;
  }

  async findByTokenHash(tokenHash: string): Promise<ApiKey | undefined> {
    const row = await this.db
      .selectFrom('api_keys')
      .selectAll()
      .where('token_hash', '=', tokenHash)
      .executeTakeFirst();
    return row && toApiKey(row);
  }

  async list(tenant?: string): Promise<ApiKey[]> {
    let query = this.db.selectFrom('api_keys').selectAll().orderBy('created_at').orderBy('id');
    if (tenant) query = query.where('tenant_id', '=', tenant);
    return (await query.execute()).map(toApiKey);
  }

  /** Marks the key revoked; false when there is no key with that id or it was revoked already. */
  async revoke(id: string): Promise<boolean> {
    const result = await writesOf(this.db).run((tx) =>
      tx
        .updateTable('api_keys')
        .set({ revoked_at: new Date().toISOString() })
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .executeTakeFirst(),
    );
    return result.numUpdatedRows > 0n;
  }
}
