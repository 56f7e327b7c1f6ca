// PostgreSQL ends an idle pooled connection (a restart, a failover, pg_terminate_backend): `serve` and `worker` say
// so in their log, at warn, and go on with a new connection. The sessions are found by an application_name of
// their own, given in the URL, so that no other test's sessions are touched.
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../server/store/database.js';
import { backends, type StoreSetup } from '../support/backends.js';
import { startServe, startWorker } from '../support/process.js';

const postgres = backends.find((backend) => backend.name === 'postgres')!;
const lostMessage = 'PostgreSQL closed an idle connection; the pool opens a new one for the next query';
// At warn, with pg's reason (which of its two messages comes first varies), and not the client object pg attaches.
const lostLine = new RegExp(`^\\{"level":40,[^\\n]*"reason":"[^"]+",[^\\n]*"msg":"${lostMessage}"\\}$`, 'm');

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe.skipIf(!postgres.available)('a lost idle PostgreSQL connection', () => {
  const admin = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
  const stores: StoreSetup[] = [];
  const stops: (() => Promise<unknown>)[] = [];
  let connected = false;

  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
  });
  afterAll(async () => {
    if (connected) await admin.end();
    for (const store of stores) await store.cleanup();
  });

  /** A fresh schema, and its URL with an application_name no other session has. */
  async function storeWithName(): Promise<{ store: StoreSetup; url: string; name: string }> {
    if (!connected) {
      await admin.connect();
      connected = true;
    }
    const store = await postgres.setup();
    stores.push(store);
    const name = `webhooks-loss-${randomUUID().slice(0, 8)}`;
    const url = new URL(store.databaseUrl!);
    url.searchParams.set('application_name', name);
    return { store, url: url.href, name };
  }

  /** The sessions named `name` now, by pid, with their state ('idle', 'active', ...). */
  async function sessions(name: string): Promise<Map<number, string>> {
    await admin.query('select pg_stat_clear_snapshot()');
    const { rows } = await admin.query<{ pid: number; state: string }>(
      'select pid, state from pg_stat_activity where application_name = $1',
      [name],
    );
    return new Map(rows.map((row) => [row.pid, row.state]));
  }

  /**
   * Ends every session named `name` that has been idle for `idleMs` (from, to), once there is one; answers the pids it
   * ended. A worker polling every 2 s that has been idle for 0.1 to 1 s is a second away from its next claim.
   */
  async function terminateIdle(name: string, idleMs: [number, number] = [0, 3_600_000]): Promise<number[]> {
    return until(`an idle session named ${name}`, async () => {
      // In the select list, not the where clause: only rows that passed the filter are terminated.
      const { rows } = await admin.query<{ pid: number; ended: boolean }>(
        `select pid, pg_terminate_backend(pid) as ended from pg_stat_activity
          where application_name = $1 and state = 'idle'
            and now() - state_change between $2 * interval '1 ms' and $3 * interval '1 ms'`,
        [name, ...idleMs],
      );
      const ended = rows.filter((row) => row.ended).map((row) => row.pid);
      return ended.length > 0 ? ended : undefined;
    });
  }

  it('names the sessions webhooks-api, unless the URL names them', async () => {
    const { store } = await storeWithName();
    const named = new URL(store.databaseUrl!);
    named.searchParams.set('application_name', 'named-in-the-url');
    for (const [url, expected] of [
      [store.databaseUrl!, 'webhooks-api'],
      [named.href, 'named-in-the-url'],
    ] as const) {
      const db = openDatabase({ dataDir: store.dataDir, databaseUrl: url });
      try {
        const { rows } = await sql<{ name: string }>`select current_setting('application_name') as name`.execute(db);
        expect(rows[0]?.name).toBe(expected);
      } finally {
        await db.destroy();
      }
    }
  });

  it('serve logs it at warn and answers /healthz from a new connection', async () => {
    const { store, url, name } = await storeWithName();
    // No worker: nothing queries between requests, so the session is idle when it is ended.
    const serve = await startServe({ DATA_DIR: store.dataDir, DATABASE_URL: url, DELIVERY_WORKER: 'false' });
    stops.push(async () => {
      serve.child.kill('SIGTERM');
      await serve.exited;
    });
    expect((await fetch(`${serve.baseUrl}/healthz`)).status).toBe(200);

    expect((await terminateIdle(name)).length).toBeGreaterThan(0);
    await until('the warning', async () => (lostLine.test(serve.output()) ? true : undefined));
    expect(serve.output()).not.toContain('"client":');

    expect(serve.child.exitCode).toBeNull();
    expect((await fetch(`${serve.baseUrl}/healthz`)).status).toBe(200);
  });

  it('worker logs it at warn and goes on claiming from a new connection', async () => {
    const { store, url, name } = await storeWithName();
    // A claim every 2 s, a millisecond or two each: the session is ended between two claims (one running then would
    // fail and be logged as such instead), and a new one must appear for the next claim.
    const worker = await startWorker({ DATA_DIR: store.dataDir, DATABASE_URL: url, DELIVERY_POLL_INTERVAL: '2s' });
    stops.push(async () => {
      worker.child.kill('SIGTERM');
      await worker.exited;
    });

    const ended = await terminateIdle(name, [100, 1_000]);
    expect(ended.length).toBeGreaterThan(0);
    await until('the warning', async () => (lostLine.test(worker.output()) ? true : undefined));
    expect(worker.output()).not.toContain('"client":');

    expect(worker.child.exitCode).toBeNull();
    // The pool opened a new session for the next claim, which ran on it and ended (the session is idle again)
    // without an error: no claim failed for want of a connection.
    await until('a new session, idle after a claim', async () => {
      const now = await sessions(name);
      return [...now].some(([pid, state]) => !ended.includes(pid) && state === 'idle') ? true : undefined;
    });
    expect(worker.output()).not.toMatch(/could not claim deliveries/);
  });
});
