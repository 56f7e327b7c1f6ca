// The first API key (the one a first start prints): made once on an empty store, even when several processes start
// at once, and never when a key exists. Each "process" here is a store handle of its own on the same database.
import { describe, expect, it } from 'vitest';
import { ApiKeyStore } from '../../server/store/api-keys.js';
import { openDatabase } from '../../server/store/database.js';
import { backends, withMigratedStore } from '../support/backends.js';

const permissions = ['WEBHOOKS:VIEW', 'WEBHOOKS:ADD'];

for (const backend of backends) {
  describe.skipIf(!backend.available)(`the first API key on ${backend.name}`, () => {
    it('is made when the store holds no key, with a token that finds it, and not when one exists', async () => {
      await withMigratedStore(backend, async (db) => {
        const keys = new ApiKeyStore(db);
        const first = await keys.createFirst('default', permissions);
        expect(first).toMatchObject({ tenant: 'default', permissions, token: expect.stringMatching(/^whk_/) });
        expect(await keys.list()).toEqual([expect.objectContaining({ id: first!.id })]);
        expect(await keys.createFirst('default', permissions)).toBeUndefined();
        await keys.revoke(first!.id);
        // A revoked key is still a key: the store was set up once, a first key is not made again.
        expect(await keys.createFirst('default', permissions)).toBeUndefined();
        expect(await keys.list()).toHaveLength(1);
      });
    });

    // On SQLite the handles of one process do not overlap their transactions (each runs within one turn of the
    // event loop), so there this checks the statement, not the lock; PostgreSQL's connections do overlap, and on
    // PostgreSQL it also runs with the server's default isolation at repeatable read.
    const isolations = backend.name === 'postgres' ? ['read committed', 'repeatable read'] : ['the default'];
    it.each(isolations)('is made once when several processes start at once on an empty store (%s)', async (isolation) => {
      await withMigratedStore(backend, async (db, store) => {
        const url = store.databaseUrl ? new URL(store.databaseUrl) : undefined;
        const options = `${url?.searchParams.get('options')} -c default_transaction_isolation=${isolation.replace(' ', '\\ ')}`;
        url?.searchParams.set('options', options);
        const handles = Array.from({ length: 4 }, () => openDatabase(url ? { ...store, databaseUrl: url.href } : store));
        try {
          for (let round = 0; round < 10; round++) {
            await db.deleteFrom('api_keys').execute();
            const made = await Promise.all(handles.map((h) => new ApiKeyStore(h).createFirst('default', permissions)));
            expect(made.filter(Boolean), `round ${round}`).toHaveLength(1);
            expect(await new ApiKeyStore(db).list(), `round ${round}`).toHaveLength(1);
          }
        } finally {
          await Promise.all(handles.map((h) => h.destroy()));
        }
      });
    });
  });
}
