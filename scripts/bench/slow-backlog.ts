// How long other tenants wait behind a slow (limited) webhook's backlog. Deliveries are claimed in order of their next
// attempt time, so when a limited webhook has a due backlog ahead of everyone else, the worker claims it and postpones
// it (server/delivery/slow-webhooks.ts) a batch at a time before another tenant's delivery comes up. This runs that
// loop on the store itself, as the worker does it (claim 50, postpone those of the limited webhook), with no HTTP:
// `backlog` deliveries to one webhook, then one to another tenant's, and prints the time and the rounds until the other
// tenant's delivery is claimed. On SQLite in a temporary folder; on PostgreSQL too when TEST_DATABASE_URL (or
// DATABASE_URL) is set, in a fresh schema dropped afterwards, after ANALYZE (autovacuum's first analyze of a table this
// size would have run; before it, PostgreSQL plans the claim as a sort of every due row).
//
//   npx tsx scripts/bench/slow-backlog.ts [--backlog 20000] [--no-analyze]
//
// --no-analyze leaves PostgreSQL as it is before its first ANALYZE of the tables.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import { migrateToLatest, openDatabase } from '../../server/store/database.js';
import { DeliveryStore } from '../../server/store/deliveries.js';
import { EventStore } from '../../server/store/events.js';
import { WebhookStore } from '../../server/store/webhooks.js';
import { benchPostgresUrl, inFreshSchema } from './events.js';
import { installCleanup } from './processes.js';

const { values } = parseArgs({
  options: { backlog: { type: 'string', default: '20000' }, 'no-analyze': { type: 'boolean', default: false } },
});
const backlog = Number(values.backlog);
const claimSize = 50;
const secret = `whsec_${Buffer.alloc(32, 3).toString('base64')}`;
const hook = (host: string) => ({
  callbackUrl: `https://${host}.example.com/h`,
  callbackUrlKey: `https://${host}.example.com/h`,
  events: ['*'],
  enabled: true,
  headers: {},
});

async function measure(name: string, databaseUrl?: string): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'slow-backlog-'));
  const db = openDatabase(databaseUrl ? { dataDir, databaseUrl } : { dataDir });
  try {
    await migrateToLatest(db);
    const webhooks = new WebhookStore(db);
    const slow = await webhooks.create('slow', hook('slow'), secret);
    await webhooks.create('other', hook('other'), secret);
    const events = new EventStore(db);
    for (let i = 0; i < backlog; i += 100) {
      const batch = Math.min(100, backlog - i);
      const publish = () => events.publish('slow', { type: 'order.created', data: {} });
      await Promise.all(Array.from({ length: batch }, publish));
    }
    await events.publish('other', { type: 'order.created', data: {} });
    if (databaseUrl && !values['no-analyze']) await sql`analyze`.execute(db);

    const deliveries = new DeliveryStore(db);
    let rounds = 0;
    let claimMs = 0;
    let postponeMs = 0;
    const started = performance.now();
    for (;;) {
      rounds++;
      const t0 = performance.now();
      const claimed = await deliveries.claimDue(claimSize, 60_000);
      claimMs += performance.now() - t0;
      const held = claimed.filter((delivery) => delivery.webhook_id === slow.id);
      if (held.length < claimed.length || claimed.length === 0) break;
      const t1 = performance.now();
      const until = new Date(Date.now() + 600_000);
      await deliveries.postpone(held.map((delivery) => ({ delivery, until })));
      postponeMs += performance.now() - t1;
    }
    const totalMs = performance.now() - started;
    console.log(
      `${name}: the other tenant's delivery was claimed after ${rounds} rounds, ${Math.round(totalMs)} ms ` +
        `(${((totalMs * 1000) / backlog).toFixed(1)} µs per delivery of the backlog; ` +
        `claims ${Math.round(claimMs)} ms, postponements ${Math.round(postponeMs)} ms)`,
    );
  } finally {
    await db.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

// Ctrl-C drops the PostgreSQL schema too (inFreshSchema registers it).
installCleanup();
console.log(`backlog of ${backlog} due deliveries to one limited webhook, claims of ${claimSize}`);
await measure('SQLite');
const postgresUrl = benchPostgresUrl();
if (!postgresUrl) console.log('PostgreSQL: skipped (set TEST_DATABASE_URL to measure it)');
else await inFreshSchema(postgresUrl, (databaseUrl) => measure('PostgreSQL', databaseUrl));
