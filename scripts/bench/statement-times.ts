// Where a service's SQLite time goes, statement by statement: a diagnostic preload, not part of the service.
//
//   STATEMENT_TIMES=/tmp/statements.txt NODE_OPTIONS="--import tsx --import ./scripts/bench/statement-times.ts" \
//     npm run bench -- --only events --event-runs 1
//
// Every Node process of the run loads it, but only a `serve` or `worker` process with STATEMENT_TIMES set counts:
// it wraps better-sqlite3's run/get/all, sums the time of each statement's calls, and when the process exits
// writes the statements by total time to the file named (a worker's file gets its pid appended: a run may start two).
// The timer's own cost (two hrtime calls a statement, about 1 µs) is inside the numbers; a CPU profile shows these
// calls only as Kysely's executeQuery.
import { writeFileSync } from 'node:fs';
import SQLite from 'better-sqlite3';

const file = process.env.STATEMENT_TIMES;
const role = process.argv.slice(2).find((arg) => arg === 'serve' || arg === 'worker');

type Run = (this: SQLite.Statement, ...args: unknown[]) => unknown;

if (file && role) {
  const totals = new Map<string, { calls: number; ns: bigint }>();
  const probe = new SQLite(':memory:');
  const statement = Object.getPrototypeOf(probe.prepare('select 1')) as Record<'run' | 'get' | 'all', Run>;
  probe.close();
  for (const method of ['run', 'get', 'all'] as const) {
    const original = statement[method];
    statement[method] = function timed(this: SQLite.Statement, ...args: unknown[]) {
      const started = process.hrtime.bigint();
      try {
        return original.apply(this, args);
      } finally {
        const key = this.source.replace(/\s+/g, ' ').slice(0, 120);
        const total = totals.get(key) ?? { calls: 0, ns: 0n };
        total.calls++;
        total.ns += process.hrtime.bigint() - started;
        totals.set(key, total);
      }
    };
  }
  process.on('exit', () => {
    const rows = [...totals].sort(([, a], [, b]) => (b.ns > a.ns ? 1 : -1));
    const allMs = Number(rows.reduce((sum, [, t]) => sum + t.ns, 0n)) / 1e6;
    const lines = rows.map(([sql, { calls, ns }]) => {
      const ms = Number(ns) / 1e6;
      const perCall = ((ms * 1000) / calls).toFixed(1);
      return `${ms.toFixed(1).padStart(9)} ms ${String(calls).padStart(8)} × ${perCall.padStart(7)} µs  ${sql}`;
    });
    const out = `${role} (pid ${process.pid}): ${allMs.toFixed(1)} ms in SQLite statements\n${lines.join('\n')}\n`;
    writeFileSync(role === 'serve' ? file : `${file}.${process.pid}`, out);
  });
}
