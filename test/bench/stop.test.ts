// A bench stopped with Ctrl-C while it measures on PostgreSQL drops the schema it made there, and exits 130.
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

  const schemasOf = async (pid: number) => {
    const { rows } = await admin.query<{ nspname: string }>(
      "select nspname from pg_namespace where nspname like 'bench\\_' || $1::text || '\\_%'",
      [pid],
    );
    return rows.map((row) => row.nspname);
  };

  it('drops its bench_<pid>_* schema and exits 130', async () => {
    await connected;
    // The sources through tsx (no build), event delivery only: one SQLite run, then the PostgreSQL runs.
    const bench = spawn(
      process.execPath,
      ['--import', 'tsx', 'scripts/bench.ts', '--tsx', '--only', 'events', '--event-runs', '1', '--postgres-runs', '1'],
      { env: { ...process.env, TEST_DATABASE_URL: databaseUrl }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    bench.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    bench.stdout.resume();
    const exited = new Promise<number | null>((resolve) => bench.once('exit', (code) => resolve(code)));
    const pid = bench.pid!;
    try {
      const deadline = Date.now() + 120_000;
      let made: string[] = [];
      while (made.length === 0) {
        if (bench.exitCode !== null) throw new Error(`the bench ended before it made a schema:\n${stderr}`);
        if (Date.now() > deadline) throw new Error(`no bench_${pid}_* schema within 120 s:\n${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
        made = await schemasOf(pid);
      }
      // Let the workers connect and hold the schema's tables: the drop must get past them.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      bench.kill('SIGINT');
      const code = await Promise.race([exited, new Promise((resolve) => setTimeout(() => resolve('hung'), 30_000))]);
      expect(code).toBe(130);
      expect(stderr).toContain('bench: SIGINT received');
      expect(await schemasOf(pid)).toEqual([]);
    } finally {
      if (bench.exitCode === null) bench.kill('SIGKILL');
    }
  }, 180_000);
});
