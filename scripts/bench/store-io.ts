// The store's disk work per write, counted rather than timed: timings on a shared machine move by 10–30 % between
// runs, these counts do not. In this process alone (no HTTP), it fills a fresh SQLite store, then makes webhooks,
// updates them and publishes events in batches of 10 through the real stores (one commit per batch, as the write
// batcher groups concurrent requests), and prints per write what /proc/self/io counted meanwhile: write and read
// system calls and bytes written (almost all of it WAL frames: SQLite writes every changed page once per commit).
//
//   npx tsx scripts/bench/store-io.ts [--webhooks 20000] [--writes 3000]
//
// Compare two versions of the store by running it at each commit.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { migrateToLatest, openDatabase } from '../../server/store/database.js';
import { EventStore } from '../../server/store/events.js';
import { WebhookStore } from '../../server/store/webhooks.js';

const { values } = parseArgs({
  options: { webhooks: { type: 'string', default: '20000' }, writes: { type: 'string', default: '3000' } },
});
const prefill = Number(values.webhooks);
const writes = Number(values.writes);
const batch = 10;

function io(): Record<'syscr' | 'syscw' | 'wchar', number> {
  const fields = Object.fromEntries(
    readFileSync('/proc/self/io', 'utf8')
      .trim()
      .split('\n')
      .map((line) => line.split(': ') as [string, string]),
  );
  return { syscr: Number(fields.syscr), syscw: Number(fields.syscw), wchar: Number(fields.wchar) };
}

async function counted(label: string, count: number, work: (i: number) => Promise<unknown>) {
  const before = io();
  for (let i = 0; i < count; i += batch) {
    await Promise.all(Array.from({ length: batch }, (_, j) => work(i + j)));
  }
  const after = io();
  const per = (key: keyof typeof before) => ((after[key] - before[key]) / count).toFixed(2);
  console.log(
    `${label.padEnd(44)} write syscalls ${per('syscw').padStart(6)}   read syscalls ${per('syscr').padStart(6)}   ` +
      `KiB written ${((after.wchar - before.wchar) / count / 1024).toFixed(1).padStart(6)}`,
  );
}

const dataDir = mkdtempSync(join(tmpdir(), 'webhooks-store-io-'));
const db = openDatabase({ dataDir });
try {
  await migrateToLatest(db);
  const webhooks = new WebhookStore(db);
  const events = new EventStore(db);
  const secret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
  const parms = (tenant: string, n: number) => {
    const url = `https://${tenant}-${n}.example.com/hooks`;
    return { callbackUrl: url, callbackUrlKey: url, events: ['order.*'], enabled: true, headers: {} };
  };
  for (let i = 0; i < prefill; i += 1000) {
    const made = Array.from({ length: 1000 }, (_, j) => webhooks.create('others', parms('others', i + j), secret));
    await Promise.all(made);
  }
  await webhooks.create('bench', parms('bench', 0), secret);
  // Warm the fan-out cache and the statements.
  for (let i = 0; i < 100; i++) await events.publish('bench', { type: 'order.created', data: { i } });

  console.log(`store: ${prefill} webhooks of another tenant; ${writes} writes per line, ${batch} per commit`);
  const made: string[] = [];
  await counted('create a webhook', writes, async (i) => {
    made.push((await webhooks.create('made', parms('made', i), secret)).id);
  });
  // As the bench's update scenario: a random one of the tenant's webhooks, a new callback URL each time.
  let updates = 0;
  await counted(`update a webhook (a random one of ${writes})`, writes, (i) =>
    webhooks.replace('made', made[(i * 7919) % made.length]!, parms('moved', updates++)),
  );
  await counted('publish an event (one delivery)', writes, (i) =>
    events.publish('bench', { type: 'order.created', data: { orderId: i, total: 4200 } }),
  );
} finally {
  await db.destroy();
  rmSync(dataDir, { recursive: true, force: true });
}
