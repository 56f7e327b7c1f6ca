// Reads of `serve` on SQLite while another process commits to the same file, as a `webhooks-api worker` beside it
// does (its claims and outcomes touch no webhook). Each such commit used to clear serve's whole webhook cache;
// since migration 0004 only a commit that changed a webhook does. It seeds 1,000 webhooks, starts the service, and
// runs autocannon reads of random webhooks (10 connections) in alternation: alone, and while a second process
// inserts an API-key row every `--every-ms` (one commit each, synchronous=NORMAL like the service's own).
//
//   npx tsx scripts/bench/foreign-commits.ts [--every-ms 5] [--duration 5] [--rounds 2]
//
// Compare two versions by running it at each commit; the numbers of one run are only comparable with each other.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { LoadDriver, type LoadResult } from './load.js';
import { seedStore, startService } from './servers.js';

const { values } = parseArgs({
  options: {
    'every-ms': { type: 'string', default: '5' },
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '2' },
  },
});
const everyMs = Number(values['every-ms']);
const durationSec = Number(values.duration);
const rounds = Number(values.rounds);

/**
 * A second process committing an API-key row every `everyMs` to the store in `dataDir`; it prints how many it made
 * when it is stopped (SIGTERM).
 */
function otherProcessCommitting(dataDir: string, round: number): ChildProcess {
  const source = `
    const SQLite = require('better-sqlite3');
    const db = new SQLite(${JSON.stringify(join(dataDir, 'webhooks.db'))});
    db.pragma('busy_timeout = 5000');
    db.pragma('synchronous = NORMAL');
    const insert = db.prepare(
      "insert into api_keys values (?, 'other', ?, 'whk_', '[]', '2026-12-02T00:00:00Z', null, null)");
    let n = 0;
    setInterval(() => { n++; insert.run('foreign-${round}-' + n, 'foreign-hash-${round}-' + n); }, ${everyMs});
    process.on('SIGTERM', () => { console.log('    (the other process made ' + n + ' commits)'); process.exit(0); });`;
  return spawn(process.execPath, ['-e', source], { stdio: 'inherit', cwd: process.cwd() });
}

const store = await seedStore(1_000);
const [service, driver] = await Promise.all([startService('service', store.dataDir), LoadDriver.start()]);
const read = (warmupSec: number) =>
  driver.run({
    url: service.url,
    scenario: 'read',
    token: store.token,
    ids: store.ids,
    connections: 10,
    durationSec,
    warmupSec,
  });
const line = (r: LoadResult) => `${Math.round(r.reqPerSec).toLocaleString('en-US')} reads/s, p99 ${r.latency.p99} ms`;
try {
  await read(2);
  for (let round = 1; round <= rounds; round++) {
    const alone = await read(0);
    const other = otherProcessCommitting(store.dataDir, round);
    let withOther: LoadResult;
    try {
      withOther = await read(0);
    } finally {
      other.kill('SIGTERM');
      await new Promise((resolve) => other.once('exit', resolve));
    }
    console.log(`round ${round}: alone ${line(alone)}; another process committing every ${everyMs} ms ${line(withOther)}`);
  }
} finally {
  await Promise.all([service.process.stop(), driver.close()]);
}
