// A bench stopped with Ctrl-C while it works on PostgreSQL drops the schema it made there, ending the sessions that
// still use it, and exits 130. The test holds one such session itself: a lock on one of the schema's tables, in a
// session named after the schema as the bench's own are, which the drop would wait for if it did not end it.
import { spawn } from 'node:child_process';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';

const databaseUrl = process.env.TEST_DATABASE_URL;

describe.skipIf(!databaseUrl)('npm run bench, stopped with Ctrl-C during the PostgreSQL runs', () => {
  const admin = new pg.Client({ connectionString: databaseUrl });
  const connected = admin.connect();
  afterAll(async () => {
    await connected;
    await admin.end();
  });

  /** The schemas the bench with this pid made (bench_<pid>_<random>), and the sessions named after them. */
  const leftOf = async (pid: number) => {
    const prefix = `bench\\_${pid}\\_%`;
    await admin.query('select pg_stat_clear_snapshot()');
    const schemas = await admin.query<{ name: string }>(
      'select nspname as name from pg_namespace where nspname like $1',
      [prefix],
    );
    const sessions = await admin.query<{ name: string }>(
      'select application_name as name from pg_stat_activity where application_name like $1',
      [prefix],
    );
    return { schemas: schemas.rows.map((row) => row.name), sessions: sessions.rows.map((row) => row.name) };
  };

  /** A session named `schema` holding a lock on its webhooks table, once the table exists; ended by the bench. */
  async function holdLockIn(schema: string, deadline: number): Promise<pg.Client> {
    for (;;) {
      const { rows } = await admin.query("select to_regclass($1 || '.webhooks') is not null as made", [schema]);
      if (rows[0]?.made) break;
      if (Date.now() > deadline) throw new Error(`no ${schema}.webhooks table`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const holder = new pg.Client({ connectionString: databaseUrl, application_name: schema });
    holder.on('error', () => {}); // terminated by the bench, as it should be
    await holder.connect();
    await holder.query('begin');
    await holder.query(`lock table ${schema}.webhooks in access share mode`);
    return holder;
  }

  it('drops its bench_<pid>_* schema, leaves no session behind, and exits 130', async () => {
    await connected;
    // The sources through tsx (no build), event delivery only, small: 500 events in one SQLite run, then the
    // PostgreSQL queue drains, which a --quick run makes only when given --postgres-runs.
    const bench = spawn(
      process.execPath,
      ['--import', 'tsx', 'scripts/bench.ts', '--tsx', '--quick', '--only', 'events', '--postgres-runs', '1'],
      { env: { ...process.env, TEST_DATABASE_URL: databaseUrl }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    bench.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    bench.stdout.resume();
    const exited = new Promise<number | null>((resolve) => bench.once('exit', (code) => resolve(code)));
    const pid = bench.pid!;
    let holder: pg.Client | undefined;
    try {
      // Stopped as soon as a session works in the schema (the bench's own migration and seeding on) and the test
      // holds its lock there.
      const deadline = Date.now() + 120_000;
      let made: string[] = [];
      while (made.length === 0) {
        if (bench.exitCode !== null) throw new Error(`the bench ended before it used PostgreSQL:\n${stderr}`);
        if (Date.now() > deadline) throw new Error(`no session of a bench_${pid}_* schema within 120 s:\n${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
        made = (await leftOf(pid)).sessions;
      }
      holder = await holdLockIn(made[0]!, deadline);
      bench.kill('SIGINT');
      const code = await Promise.race([exited, new Promise((resolve) => setTimeout(() => resolve('hung'), 30_000))]);
      expect(code, stderr).toBe(130);
      expect(stderr).toContain('bench: SIGINT received');
      expect(stderr).not.toMatch(/could not drop|did not drop/);
      expect(await leftOf(pid)).toEqual({ schemas: [], sessions: [] });
    } finally {
      if (bench.exitCode === null) bench.kill('SIGKILL');
      await holder?.end().catch(() => {});
    }
  }, 180_000);
});
