// New rows get time-ordered ids (UUIDv7, server/store/row-ids.ts) so inserts append to the id indexes instead of
// landing on random pages. Pinned here through the stores themselves: a change back to random ids fails.
import { describe, expect, it } from 'vitest';
import { validate, version } from 'uuid';
import { ApiKeyStore } from '../../server/store/api-keys.js';
import { EventStore } from '../../server/store/events.js';
import { WebhookStore } from '../../server/store/webhooks.js';
import { backends, webhookInput, withMigratedStore } from '../support/backends.js';

const secret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
const hook = (n: number) => webhookInput(`ids${n}`);

const isV7 = (id: string) => validate(id) && version(id) === 7;
/** The millisecond in a UUIDv7: its first 48 bits. Ids made later must not carry an earlier one. */
const millisecondOf = (id: string) => parseInt(id.replace('-', '').slice(0, 12), 16);
const inCreationOrder = (ids: string[]) =>
  ids.every((id, i) => i === 0 || millisecondOf(id) >= millisecondOf(ids[i - 1]!));

for (const backend of backends) {
  describe.skipIf(!backend.available)(`row ids on ${backend.name}`, () => {
    it('webhooks, events, deliveries and API keys get UUIDv7 ids, in the order the rows were made', async () => {
      await withMigratedStore(backend, async (db) => {
        const webhooks = new WebhookStore(db);
        const made: string[] = [];
        for (let i = 0; i < 50; i++) made.push((await webhooks.create('ids', hook(i), secret)).id);
        expect(made.every(isV7)).toBe(true);
        expect(inCreationOrder(made)).toBe(true);

        const events = new EventStore(db);
        const published: string[] = [];
        for (let i = 0; i < 20; i++) {
          published.push((await events.publish('ids', { type: 'order.created', data: { i } })).event.id);
        }
        expect(published.every(isV7)).toBe(true);
        expect(inCreationOrder(published)).toBe(true);

        const deliveries = await db.selectFrom('deliveries').select('id').execute();
        expect(deliveries).toHaveLength(20 * 50);
        expect(deliveries.every((row) => isV7(row.id))).toBe(true);

        const key = await new ApiKeyStore(db).create('ids', ['WEBHOOKS:VIEW']);
        expect(isV7(key.id)).toBe(true);
      });
    }, 60_000);
  });
}
