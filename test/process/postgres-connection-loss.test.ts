// PostgreSQL ends an idle pooled connection (a restart, a failover, pg_terminate_backend): `serve` and `worker` say
// so in their log, at warn, and go on with a new connection. The sessions are found by an application_name of
// their own, given in the URL, so that no other test's sessions are touched.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { backends, type StoreSetup } from '../support/backends.js';
import { startServe, startWorker } from '../support/process.js';

const postgres = backends.find((backend) => backend.name === 'postgres')!;
const lostLine = /^\{.*"level":40.*"msg":"PostgreSQL closed an idle connection; the pool opens a new one for the next query".*\}$/m;

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

  /** Ends every idle session named `name`, once one is there; answers how many it ended. */
  async function terminateIdle(name: string): Promise<number> {
    return until(`an idle session named ${name}`, async () => {
      await admin.query('select pg_stat_clear_snapshot()');
      const { rows } = await admin.query<{ ended: boolean }>(
        `select pg_terminate_backend(pid) as ended from pg_stat_activity
          where application_name = $1 and state = 'idle'`,
        [name],
      );
      const ended = rows.filter((row) => row.ended).length;
      return ended > 0 ? ended : undefined;
    });
  }

  it('serve logs it at warn and answers /healthz from a new connection', async () => {
    const { store, url, name } = await storeWithName();
    // No worker: nothing queries between requests, so the session is idle when it is ended.
    const serve = await startServe({ DATA_DIR: store.dataDir, DATABASE_URL: url, DELIVERY_WORKER: 'false' });
    stops.push(async () => {
      serve.child.kill('SIGTERM');
      await serve.exited;
    });
    expect((await fetch(`${serve.baseUrl}/healthz`)).status).toBe(200);

    expect(await terminateIdle(name)).toBeGreaterThan(0);
    await until('the warning', async () => (lostLine.test(serve.output()) ? true : undefined));

    expect(serve.child.exitCode).toBeNull();
    expect((await fetch(`${serve.baseUrl}/healthz`)).status).toBe(200);
  });

  it('worker logs it at warn and goes on claiming from a new connection', async () => {
    const { store, url, name } = await storeWithName();
    // A claim every 2 s, a millisecond or two each: the session is idle when it is ended (a claim running then would
    // fail and be logged as such instead), and a new one must appear for the next claim.
    const worker = await startWorker({ DATA_DIR: store.dataDir, DATABASE_URL: url, DELIVERY_POLL_INTERVAL: '2s' });
    stops.push(async () => {
      worker.child.kill('SIGTERM');
      await worker.exited;
    });

    expect(await terminateIdle(name)).toBeGreaterThan(0);
    await until('the warning', async () => (lostLine.test(worker.output()) ? true : undefined));

    expect(worker.child.exitCode).toBeNull();
    // The pool opened a new session for the claims that followed, and no claim failed for want of one.
    await until('a new session', async () => {
      await admin.query('select pg_stat_clear_snapshot()');
      const { rows } = await admin.query('select 1 from pg_stat_activity where application_name = $1', [name]);
      return rows.length > 0 ? true : undefined;
    });
    expect(worker.output()).not.toMatch(/could not claim deliveries/);
  });
});
