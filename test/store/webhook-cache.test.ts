// The webhook read cache of the embedded store (server/store/webhook-cache.ts) must never answer with a webhook
// that has changed. What this file pins, each on real SQLite files (and PostgreSQL when TEST_DATABASE_URL is set):
//
// - another connection's commit (another process: a worker, a second server) is seen by the very next read, through
//   every cached read (get, list, getMany, subscribersTo): the WAL-index header and PRAGMA data_version path;
// - this handle's own writes are seen at once (data_version does not move for a connection's own commits, so only
//   `changing()` covers them), including by a publish in the same write batch as a delete, which would otherwise
//   fan out to a webhook that no longer exists;
// - the worker's automatic disable (410 Gone, or failing for too long) stops the fan-out at once;
// - a webhook cached by id is never handed to another tenant;
// - the cache itself stays bounded, and does not keep what was read while a write was under way.
// PostgreSQL has no cache: two handles on one schema see each other's writes with no wait at all.
import { describe, expect, it } from 'vitest';
import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import { ApiKeyStore } from '../../server/store/api-keys.js';
import { cachedWebhookColumns } from '../../server/store/migrations/0004-webhooks-change-counter.js';
import { migrateToLatest, openDatabase } from '../../server/store/database.js';
import { type CompletedAttempt, DeliveryStore } from '../../server/store/deliveries.js';
import { EventStore } from '../../server/store/events.js';
import type { Database } from '../../server/store/schema.js';
import { cacheLimits, maxCachedSubscribers, WebhookCache, webhookCacheOf } from '../../server/store/webhook-cache.js';
import { type WebhookInput, WebhookStore, subscribersTo } from '../../server/store/webhooks.js';
import { type Backend, backends, webhookInput } from '../support/backends.js';

const [sqlite, postgres] = backends as [Backend, Backend];

const secret = `whsec_${Buffer.alloc(32, 5).toString('base64')}`;
const otherSecret = `whsec_${Buffer.alloc(32, 6).toString('base64')}`;
const hook = (n: number, change: Partial<WebhookInput> = {}): WebhookInput =>
  webhookInput(`cache${n}`, { description: 'first', ...change });

/** No wait at all: every read looks for other connections' commits. */
const noWait = async () => {};

/** Opens `handles` store handles (separate connections, as separate processes would have) on one fresh store. */
async function withStore(
  backend: Backend,
  handles: number,
  run: (...dbs: Kysely<Database>[]) => Promise<void>,
): Promise<void> {
  const store = await backend.setup();
  const dbs: Kysely<Database>[] = [];
  try {
    dbs.push(openDatabase(store));
    await migrateToLatest(dbs[0]!);
    while (dbs.length < handles) dbs.push(openDatabase(store));
    await run(...dbs);
  } finally {
    for (const db of dbs) await db.destroy();
    await store.cleanup();
  }
}

/** A read through the cache of `db` under a key of its own, and how many times it had to load (was not cached). */
function probe(db: Kysely<Database>) {
  const cache = webhookCacheOf(db)!;
  let loads = 0;
  return { read: () => cache.read('webhook', 'probe', async () => (loads++, 'value')), loads: () => loads };
}

/** What each cached read of `db` answers about one tenant's webhooks, reduced to the fields the tests change. */
async function seenThrough(db: Kysely<Database>, tenantId: string, id: string) {
  const webhooks = new WebhookStore(db);
  const record = await webhooks.get(tenantId, id);
  const fromMany = (await webhooks.getMany([id])).get(id);
  const shown = (w: { id: string; description?: string; enabled: boolean; events: string[] } | undefined) =>
    w && { id: w.id, description: w.description, enabled: w.enabled, events: w.events };
  return {
    get: shown(record),
    getSecret: record?.secret,
    getMany: shown(fromMany),
    getManySecret: fromMany?.secret,
    list: (await webhooks.list(tenantId, 10)).items.map(shown),
    subscribers: {
      order: await subscribersTo(db, tenantId, 'order.created'),
      invoice: await subscribersTo(db, tenantId, 'invoice.paid'),
    },
  };
}

/**
 * Handle `writer` changes webhooks while handle `reader` has each of them cached; after `settle`, the reader must
 * see every change through every read. Shared by SQLite and PostgreSQL; both settle with no wait.
 */
async function readerSeesWriterChanges(writer: Kysely<Database>, reader: Kysely<Database>, settle: () => Promise<void>) {
  const writes = new WebhookStore(writer);
  const created = await writes.create('t', hook(1), secret);
  const { id } = created;
  const first = { id, description: 'first', enabled: true, events: ['order.*'] };
  // The reader fills its cache.
  expect(await seenThrough(reader, 't', id)).toMatchObject({
    get: first,
    getMany: first,
    list: [first],
    subscribers: { order: [id], invoice: [] },
  });

  await writes.replace('t', id, hook(1, { description: 'second', events: ['invoice.*'] }), otherSecret);
  await settle();
  const second = { id, description: 'second', enabled: true, events: ['invoice.*'] };
  expect(await seenThrough(reader, 't', id)).toEqual({
    get: second,
    getSecret: otherSecret,
    getMany: second,
    getManySecret: otherSecret,
    list: [second],
    subscribers: { order: [], invoice: [id] },
  });

  await writes.replace('t', id, hook(1, { description: 'second', events: ['invoice.*'], enabled: false }));
  await settle();
  const disabled = { ...second, enabled: false };
  expect(await seenThrough(reader, 't', id)).toMatchObject({
    get: disabled,
    getMany: disabled,
    list: [disabled],
    subscribers: { order: [], invoice: [] },
  });

  await writes.delete('t', id);
  await settle();
  expect(await seenThrough(reader, 't', id)).toEqual({
    get: undefined,
    getSecret: undefined,
    getMany: undefined,
    getManySecret: undefined,
    list: [],
    subscribers: { order: [], invoice: [] },
  });

  // The reader has an empty list and no subscribers cached; a new webhook must appear in both.
  const added = await writes.create('t', hook(2), secret);
  await settle();
  const shown = { id: added.id, description: 'first', enabled: true, events: ['order.*'] };
  expect(await seenThrough(reader, 't', added.id)).toMatchObject({
    get: shown,
    getMany: shown,
    list: [shown],
    subscribers: { order: [added.id], invoice: [] },
  });
}

describe('webhook cache on sqlite', () => {
  it("sees another connection's commits through every read, at once", async () => {
    await withStore(sqlite, 2, async (writer, reader) => {
      expect(webhookCacheOf(reader)).toBeInstanceOf(WebhookCache);
      await readerSeesWriterChanges(writer, reader, noWait);
    });
  });

  it("keeps its answers through another connection's commits that change no webhook, and only those", async () => {
    await withStore(sqlite, 2, async (writer, reader) => {
      const { id } = await new WebhookStore(writer).create('t', hook(1), secret);
      const { read, loads } = probe(reader);
      // This first read saw the other connection's create: the cache knows the webhooks counter from here on.
      await read();
      expect(loads()).toBe(1);
      // A worker process's kind of commits, and an API key: a publish, a claim, outcomes of deliveries that succeeded.
      await new ApiKeyStore(writer).create('t', ['WEBHOOKS:VIEW']);
      await read();
      await new EventStore(writer).publish('t', { type: 'order.created', data: {} });
      await read();
      const deliveries = new DeliveryStore(writer);
      const [claimed] = await deliveries.claimDue(10, 60_000);
      await read();
      const success = { ok: true, responseStatus: 200, durationMs: 1, detail: 'The receiver answered HTTP 200.' } as const;
      await deliveries.complete([{ delivery: claimed!, attemptedAt: new Date(), result: success, next: { status: 'succeeded' } }], {
        afterMs: 60_000,
        reason: 'failing',
      });
      await read();
      // A failed attempt sets the webhook's failing_since, which the cache does not show.
      await new EventStore(writer).publish('t', { type: 'order.created', data: {} });
      const [failed] = await deliveries.claimDue(10, 60_000);
      const failure = { ok: false, responseStatus: 500, durationMs: 1, detail: 'The receiver answered HTTP 500.' } as const;
      await deliveries.complete([{ delivery: failed!, attemptedAt: new Date(), result: failure, next: { status: 'failed' } }], {
        afterMs: 60_000,
        reason: 'failing',
      });
      expect(await writer.selectFrom('webhooks').select('failing_since').executeTakeFirstOrThrow()).not.toEqual({
        failing_since: null,
      });
      await read();
      expect(loads()).toBe(1);
      // Any change to a webhook by the other connection clears it.
      await new WebhookStore(writer).replace('t', id, hook(1, { description: 'changed' }));
      await read();
      expect(loads()).toBe(2);
      await new WebhookStore(writer).delete('t', id);
      await read();
      expect(loads()).toBe(3);
    });
  });

  it('moves the change counter for every column of a webhook but failing_since (a new column must be added)', async () => {
    await withStore(sqlite, 1, async (db) => {
      const { rows } = await sql<{ name: string }>`select name from pragma_table_info('webhooks')`.execute(db);
      const columns = rows.map((row) => row.name).filter((name) => name !== 'failing_since');
      expect([...cachedWebhookColumns].sort()).toEqual(columns.sort());
    });
  });

  it('clears at every commit of another process when a trigger of the change counter is missing', async () => {
    await withStore(sqlite, 2, async (writer, reader) => {
      // As a later migration that rebuilt the table and forgot the trigger would leave it.
      await sql`drop trigger webhooks_after_update`.execute(writer);
      const { read, loads } = probe(reader);
      await read();
      await new ApiKeyStore(writer).create('t', ['WEBHOOKS:VIEW']);
      await read();
      await new ApiKeyStore(writer).create('t', ['WEBHOOKS:VIEW']);
      await read();
      expect(loads()).toBe(3);
    });
  });

  it('notices a webhook change that a read snapshot of the delivery log did not see, once it ends', async () => {
    await withStore(sqlite, 2, async (writer, reader) => {
      const { id } = await new WebhookStore(writer).create('t', hook(1), secret);
      const { read, loads } = probe(reader);
      await read();
      await reader.connection().execute(async (connection) => {
        await sql`begin deferred`.execute(connection);
        await sql`select count(*) from deliveries`.execute(connection); // the snapshot starts here
        await new WebhookStore(writer).replace('t', id, hook(1, { description: 'changed' }));
        await read(); // inside the snapshot, which does not show the change
        await sql`commit`.execute(connection);
      });
      await read();
      expect(loads()).toBe(2);
    });
  });

  // Each write of this handle, made while its reads are cached, and what every read must answer right after it.
  const ownWrites: [
    string,
    {
      write: (webhooks: WebhookStore, id: string) => Promise<string>;
      want: (id: string) => Partial<Awaited<ReturnType<typeof seenThrough>>>;
    },
  ][] = [
    [
      'create',
      {
        write: async (webhooks) => (await webhooks.create('t', hook(2), secret)).id,
        want: (id) => ({
          get: { id, description: 'first', enabled: true, events: ['order.*'] },
          list: [expect.anything(), expect.objectContaining({ id })],
          subscribers: { order: [expect.anything(), id], invoice: [] },
        }),
      },
    ],
    [
      'replace',
      {
        write: async (webhooks, id) => {
          await webhooks.replace('t', id, hook(1, { description: 'second', events: ['invoice.*'] }));
          return id;
        },
        want: (id) => {
          const shown = { id, description: 'second', enabled: true, events: ['invoice.*'] };
          return { get: shown, getMany: shown, list: [shown], subscribers: { order: [], invoice: [id] } };
        },
      },
    ],
    [
      'rotateSecret',
      {
        write: async (webhooks, id) => {
          await webhooks.rotateSecret('t', id, otherSecret, 60_000);
          return id;
        },
        // The worker signs with what getMany answers: an old secret there would sign with the wrong key.
        want: () => ({ getSecret: otherSecret, getManySecret: otherSecret }),
      },
    ],
    [
      'delete',
      {
        write: async (webhooks, id) => {
          await webhooks.delete('t', id);
          return id;
        },
        want: () => ({ get: undefined, getMany: undefined, list: [], subscribers: { order: [], invoice: [] } }),
      },
    ],
  ];

  for (const [name, { write, want }] of ownWrites) {
    it(`answers reads after this handle's ${name} with what it wrote, at once`, async () => {
      await withStore(sqlite, 1, async (db) => {
        const webhooks = new WebhookStore(db);
        const { id } = await webhooks.create('t', hook(1), secret);
        await seenThrough(db, 't', id); // cached now
        const readId = await write(webhooks, id);
        expect(await seenThrough(db, 't', readId)).toMatchObject(want(readId));
      });
    });
  }

  it('fans a publish out without a webhook deleted just before it in the same write batch', async () => {
    await withStore(sqlite, 1, async (db) => {
      const webhooks = new WebhookStore(db);
      const events = new EventStore(db);
      const doomed = await webhooks.create('t', hook(1), secret);
      const kept = await webhooks.create('t', hook(2), secret);
      expect(await subscribersTo(db, 't', 'order.created')).toHaveLength(2); // cached now
      // Issued in one turn, so the batcher runs them in one transaction: the delete first, then the publish, whose
      // fan-out reads the subscribers inside that transaction.
      const [deleted, published] = await Promise.all([
        webhooks.delete('t', doomed.id),
        events.publish('t', { type: 'order.created', data: {} }),
      ]);
      expect(deleted).toBe(true);
      expect(published.event.deliveries).toBe(1);
      const deliveries = await db.selectFrom('deliveries').select('webhook_id').execute();
      expect(deliveries).toEqual([{ webhook_id: kept.id }]);
    });
  });

  it("reads a big tenant's fan-out once per event type, not at every publish", async () => {
    await withStore(sqlite, 1, async (db) => {
      const webhooks = new WebhookStore(db);
      // 150 webhooks: more than one fan-out entry may hold, but only one of them takes order events.
      for (let i = 0; i < 150; i++) {
        await webhooks.create('big', hook(i, { events: i === 0 ? ['order.*'] : ['invoice.*'] }), secret);
      }
      const cache = webhookCacheOf(db)!;
      const loads: string[] = [];
      const read = cache.read.bind(cache);
      cache.read = (kind, key, load) =>
        read(kind, key, kind === 'subscribers' ? () => (loads.push(key.split('\0')[1]!), load()) : load);
      const events = new EventStore(db);
      for (let i = 0; i < 5; i++) {
        expect((await events.publish('big', { type: 'order.created', data: {} })).event.deliveries).toBe(1);
      }
      expect(loads).toEqual(['order.created']);
      // 149 webhooks take invoices: too many to keep, so that fan-out is read each time, and is right each time.
      for (let i = 0; i < 2; i++) {
        expect((await events.publish('big', { type: 'invoice.paid', data: {} })).event.deliveries).toBe(149);
      }
      expect(loads).toEqual(['order.created', 'invoice.paid', 'invoice.paid']);
    });
  });

  it("never answers one tenant with another tenant's webhook it has cached", async () => {
    await withStore(sqlite, 1, async (db) => {
      const webhooks = new WebhookStore(db);
      const { id } = await webhooks.create('owner', hook(1), secret);
      expect(await webhooks.get('owner', id)).toMatchObject({ id, tenantId: 'owner' });
      expect((await webhooks.list('owner', 10)).items).toHaveLength(1);
      expect(await subscribersTo(db, 'owner', 'order.created')).toHaveLength(1);
      // All three are cached for the owner now; another tenant asking for the same things gets nothing.
      expect(await webhooks.get('intruder', id)).toBeUndefined();
      expect((await webhooks.list('intruder', 10)).items).toEqual([]);
      expect(await subscribersTo(db, 'intruder', 'order.created')).toEqual([]);
    });
  });

  // The worker disables a webhook on a 410 Gone at once, and after failing for longer than autoDisable.afterMs.
  const disables: [
    string,
    { responseStatus: number; disableWebhook?: string; autoDisable: { afterMs: number; reason: string } },
  ][] = [
    [
      '410 Gone',
      {
        responseStatus: 410,
        disableWebhook: 'The receiver answered 410 Gone.',
        autoDisable: { afterMs: 86_400_000, reason: 'failing' },
      },
    ],
    ['failing too long', { responseStatus: 500, autoDisable: { afterMs: 0, reason: 'Failing for too long.' } }],
  ];

  for (const [name, { responseStatus, disableWebhook, autoDisable }] of disables) {
    it(`stops answering a webhook as enabled once the worker disabled it (${name})`, async () => {
      await withStore(sqlite, 1, async (db) => {
        const webhooks = new WebhookStore(db);
        const deliveries = new DeliveryStore(db);
        const { id } = await webhooks.create('t', hook(1), secret);
        await new EventStore(db).publish('t', { type: 'order.created', data: {} });
        const [claimed] = await deliveries.claimDue(10, 60_000);
        expect(await seenThrough(db, 't', id)).toMatchObject({ get: { enabled: true }, subscribers: { order: [id] } });
        const attempt: CompletedAttempt = {
          delivery: claimed!,
          attemptedAt: new Date(),
          result: { ok: false, responseStatus, durationMs: 2, detail: `The receiver answered HTTP ${responseStatus}.` },
          next: { status: 'failed' },
          ...(disableWebhook ? { disableWebhook } : {}),
        };
        await deliveries.complete([attempt], autoDisable);
        const reason = disableWebhook ?? autoDisable.reason;
        const seen = await seenThrough(db, 't', id);
        expect(seen).toMatchObject({ get: { enabled: false }, getMany: { enabled: false }, list: [{ enabled: false }] });
        expect(seen.subscribers).toEqual({ order: [], invoice: [] });
        expect((await webhooks.get('t', id))?.disabledReason).toBe(reason);
      });
    });
  }
});

describe('WebhookCache', () => {
  /** A cache over a data version and webhooks counter the test moves by hand, and a loader that counts its calls. */
  function cacheWithCountingLoader() {
    let dataVersion = 1;
    let webhooksVersion = 1;
    const cache = new WebhookCache(
      () => dataVersion,
      () => webhooksVersion,
    );
    const loads: string[] = [];
    const read = (kind: 'webhook' | 'page', key: string) =>
      cache.read(kind, key, async () => {
        loads.push(key);
        return `value of ${key}`;
      });
    return {
      cache,
      loads,
      read,
      otherConnectionCommits: ({ webhooks = true } = {}) => {
        dataVersion++;
        if (webhooks) webhooksVersion++;
      },
      /** This process's own write moves the counter too (its triggers fire on this connection). */
      ownWebhookWrite: () => {
        cache.changing();
        webhooksVersion++;
        cache.transactionEnded();
      },
    };
  }

  it('checks for other connections\' commits once per event-loop turn for the API reads asked in it, after them', async () => {
    let dataVersion = 1;
    let checks = 0;
    const cache = new WebhookCache(
      () => (checks++, dataVersion),
      () => 1,
    );
    const value = (v: string) => async () => v;
    expect(await cache.readChecked('webhook', 'w', value('before'))).toBe('before');
    checks = 0;
    const asked = [cache.readChecked('webhook', 'w', value('after')), cache.readChecked('page', 'p', value('page'))];
    dataVersion++; // another connection commits after those asks, before the last one, in the same turn
    asked.push(cache.readChecked('webhook', 'w', value('after')));
    expect(await Promise.all(asked)).toEqual(['after', 'page', 'after']);
    expect(checks).toBe(1);
  });

  it(`keeps at most ${cacheLimits.page} pages, dropping the oldest first`, async () => {
    const { read, loads } = cacheWithCountingLoader();
    const keys = Array.from({ length: cacheLimits.page + 1 }, (_, i) => `page ${i}`);
    for (const key of keys) await read('page', key);
    loads.length = 0;
    for (const key of keys.slice(1)) expect(await read('page', key)).toBe(`value of ${key}`);
    expect(loads).toEqual([]);
    await read('page', 'page 0');
    expect(loads).toEqual(['page 0']);
  });

  it(`does not keep a fan-out list longer than ${maxCachedSubscribers} webhooks`, async () => {
    const { cache } = cacheWithCountingLoader();
    let loads = 0;
    const load = (length: number) => async () => {
      loads++;
      return Array.from({ length }, (_, i) => String(i));
    };
    await cache.read('subscribers', 'big', load(maxCachedSubscribers + 1));
    await cache.read('subscribers', 'big', load(maxCachedSubscribers + 1));
    await cache.read('subscribers', 'small', load(maxCachedSubscribers));
    await cache.read('subscribers', 'small', load(maxCachedSubscribers));
    expect(loads).toBe(3);
  });

  it('does not keep a value read while a write was under way', async () => {
    const { cache, read, loads } = cacheWithCountingLoader();
    let finishLoad!: () => void;
    const loading = cache.read('webhook', 'k', () => new Promise<string>((resolve) => (finishLoad = () => resolve('old'))));
    cache.changing(); // a write begins while the read is loading
    finishLoad();
    expect(await loading).toBe('old');
    await read('webhook', 'k');
    expect(loads).toEqual(['k']);
  });

  it('forgets what was read inside a write transaction once that transaction ends', async () => {
    const { cache, read, loads } = cacheWithCountingLoader();
    cache.changing();
    await read('webhook', 'k'); // read inside the open transaction: may be rolled back
    await read('webhook', 'k');
    expect(loads).toEqual(['k']); // kept while the transaction is open
    cache.transactionEnded();
    await read('webhook', 'k');
    expect(loads).toEqual(['k', 'k']);
  });

  it("forgets everything at the first read after another connection's commit that changed a webhook", async () => {
    const { read, loads, otherConnectionCommits } = cacheWithCountingLoader();
    await read('webhook', 'k');
    await read('webhook', 'k');
    expect(loads).toEqual(['k']);
    otherConnectionCommits();
    await read('webhook', 'k');
    expect(loads).toEqual(['k', 'k']);
  });

  it('does not trust a counter it read while a webhook write of its own was uncommitted', async () => {
    let dataVersion = 1;
    let webhooksVersion = 5;
    const cache = new WebhookCache(
      () => dataVersion,
      () => webhooksVersion,
    );
    let loads = 0;
    const read = () => cache.read('webhook', 'k', async () => (loads++, 'value'));
    cache.changing(); // a write of this process begins
    webhooksVersion = 6; // its trigger moved the counter, uncommitted
    dataVersion++; // an earlier commit of another connection, noticed at the next read
    await read(); // inside the transaction: the counter read says 6
    webhooksVersion = 5; // the write rolled back
    cache.transactionEnded();
    await read();
    expect(loads).toBe(2);
    webhooksVersion = 6; // another connection changes a webhook: the counter says 6 again
    dataVersion++;
    await read();
    expect(loads).toBe(3);
  });

  it("keeps its answers through another connection's commits that changed no webhook", async () => {
    const { read, loads, otherConnectionCommits, ownWebhookWrite } = cacheWithCountingLoader();
    await read('webhook', 'k');
    // The first such commit checks the counter for the first time: the cache cannot know it has not moved.
    otherConnectionCommits({ webhooks: false });
    await read('webhook', 'k');
    otherConnectionCommits({ webhooks: false });
    await read('webhook', 'k');
    otherConnectionCommits({ webhooks: false });
    await read('webhook', 'k');
    expect(loads).toEqual(['k', 'k']);
    // After this process's own webhook write the counter is unknown again (the write may have rolled back).
    ownWebhookWrite();
    await read('webhook', 'k');
    otherConnectionCommits({ webhooks: false });
    await read('webhook', 'k');
    otherConnectionCommits({ webhooks: false });
    await read('webhook', 'k');
    expect(loads).toEqual(['k', 'k', 'k', 'k']);
  });
});

describe.skipIf(!postgres.available)('webhook reads on postgres', () => {
  it("have no cache: two handles on one schema see each other's writes with no wait", async () => {
    await withStore(postgres, 2, async (writer, reader) => {
      expect(webhookCacheOf(reader)).toBeUndefined();
      await readerSeesWriterChanges(writer, reader, async () => {});
    });
  });
});
