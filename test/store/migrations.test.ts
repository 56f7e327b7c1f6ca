// Migrations on both stores: idempotent, and on PostgreSQL confined to the schema in use, so two deployments (or
// test runs) sharing one database each get their own tables.
import { describe, expect, it } from 'vitest';
import { migrateToLatest, openDatabase } from '../../server/store/database.js';
import { backends } from '../support/backends.js';

for (const backend of backends) {
  describe.skipIf(!backend.available)(`migrations on ${backend.name}`, () => {
    it('apply once, then find the store up to date', async () => {
      const store = await backend.setup();
      const db = openDatabase(store);
      try {
        expect((await migrateToLatest(db)).length).toBeGreaterThan(0);
        expect(await migrateToLatest(db)).toEqual([]);
      } finally {
        await db.destroy();
        await store.cleanup();
      }
    });
  });
}

describe.skipIf(!backends[1]!.available)('migrations on postgres, two schemas in one database', () => {
  it('migrate each schema on its own', async () => {
    const [first, second] = [await backends[1]!.setup(), await backends[1]!.setup()];
    try {
      for (const store of [first, second]) {
        const db = openDatabase(store);
        try {
          expect((await migrateToLatest(db)).length).toBeGreaterThan(0);
          await db.selectFrom('webhooks').select('id').execute();
        } finally {
          await db.destroy();
        }
      }
    } finally {
      await first.cleanup();
      await second.cleanup();
    }
  });
});
