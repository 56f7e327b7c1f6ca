// Queries compiled once and run with new values (server/store/prepared.ts), on both stores: every run binds its
// own values, in every place a value appears, next to the query's own constants; a query whose fields differ is
// compiled as a shape of its own; and a value used inside an expression (which would bind the stand-in) is refused.
import type { Insertable } from 'kysely';
import { describe, expect, it } from 'vitest';
import { rowLimit } from '../../server/store/dialect.js';
import { prepared } from '../../server/store/prepared.js';
import type { ApiKeysTable } from '../../server/store/schema.js';
import { backends, withMigratedStore } from '../support/backends.js';

const key = (n: number, tenant = 't'): Insertable<ApiKeysTable> => ({
  id: `key-${n}`,
  tenant_id: tenant,
  token_hash: `hash-${n}`,
  token_prefix: `whk_${n}`,
  permissions: JSON.stringify(['WEBHOOKS:VIEW']),
  created_at: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(),
  expires_at: null,
  revoked_at: null,
});

const insertKey = prepared((db, row: Insertable<ApiKeysTable>) => db.insertInto('api_keys').values(row));

/** Keys of one tenant created before `before` and not revoked: `before` is used twice, next to a constant. */
const keysBefore = prepared((db, { tenant, before, limit }: { tenant: string; before: string; limit: number }) =>
  db
    .selectFrom('api_keys')
    .select('id')
    .where('tenant_id', '=', tenant)
    .where('revoked_at', 'is', null)
    .where((eb) => eb.or([eb('created_at', '<', before), eb('expires_at', '<', before)]))
    .where('permissions', '!=', '[]')
    .orderBy('created_at')
    .limit(rowLimit(limit)),
);

for (const backend of backends) {
  describe.skipIf(!backend.available)(`prepared queries on ${backend.name}`, () => {
    it('binds each run its own values, wherever a value appears, and keeps the query its constants', async () => {
      await withMigratedStore(backend, async (db) => {
        for (let n = 1; n <= 5; n++) await insertKey(db, key(n));
        await insertKey(db, key(6, 'other'));
        const ids = async (values: { tenant: string; before: string; limit: number }) =>
          (await keysBefore(db, values)).rows.map((row) => row.id);
        const at = (second: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, second)).toISOString();
        expect(await ids({ tenant: 't', before: at(3), limit: 10 })).toEqual(['key-1', 'key-2']);
        expect(await ids({ tenant: 't', before: at(9), limit: 3 })).toEqual(['key-1', 'key-2', 'key-3']);
        expect(await ids({ tenant: 'other', before: at(9), limit: 10 })).toEqual(['key-6']);
        // The same as the builder answers with the same values.
        const built = await db
          .selectFrom('api_keys')
          .select('id')
          .where('tenant_id', '=', 't')
          .where('created_at', '<', at(5))
          .orderBy('created_at')
          .execute();
        expect(await ids({ tenant: 't', before: at(5), limit: 10 })).toEqual(built.map((row) => row.id));
      });
    });

    it('compiles a query with other fields as a shape of its own', async () => {
      await withMigratedStore(backend, async (db) => {
        await insertKey(db, key(1));
        await insertKey(db, key(2));
        const revoke = prepared((db, { id, ...set }: { id: string; revoked_at?: string; expires_at?: string }) =>
          db.updateTable('api_keys').set(set).where('id', '=', id),
        );
        const revokedAt = new Date(Date.UTC(2026, 1, 1)).toISOString();
        const expiresAt = new Date(Date.UTC(2026, 2, 1)).toISOString();
        const first = await revoke(db, { id: 'key-1', revoked_at: revokedAt });
        const second = await revoke(db, { id: 'key-2', expires_at: expiresAt });
        expect([first.numAffectedRows, second.numAffectedRows]).toEqual([1n, 1n]);
        const rows = await db.selectFrom('api_keys').select(['id', 'revoked_at', 'expires_at']).orderBy('id').execute();
        expect(rows).toEqual([
          { id: 'key-1', revoked_at: revokedAt, expires_at: null },
          { id: 'key-2', revoked_at: null, expires_at: expiresAt },
        ]);
      });
    });

    it('refuses a value used inside an expression, which would bind the stand-in', async () => {
      await withMigratedStore(backend, async (db) => {
        const misused = prepared((db, { tenant }: { tenant: string }) =>
          db.selectFrom('api_keys').select('id').where('tenant_id', '=', `tenant-${tenant}`),
        );
        await expect(misused(db, { tenant: 't' })).rejects.toThrow(/used a value in an expression/);
      });
    });
  });
}
