// The delivery queue's statements run many times a second, each holding the event loop while SQLite runs it
// (better-sqlite3 is synchronous). A statement that scans a whole table costs more the more webhooks or deliveries
// the store holds, across every tenant. So each statement the queue runs is checked here by SQLite's own query
// plan: it must find its rows through an index. Timings would be noise on a shared machine; a plan is exact.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrateToLatest } from '../../server/store/database.js';
import { type CompletedAttempt, DeliveryStore } from '../../server/store/deliveries.js';
import { EventStore } from '../../server/store/events.js';
import type { Database } from '../../server/store/schema.js';
import { WebhookStore } from '../../server/store/webhooks.js';

const secret = `whsec_${Buffer.alloc(32, 5).toString('base64')}`;

interface Executed {
  sql: string;
  parameters: unknown[];
}

/** A Kysely over a real SQLite file that records every statement it runs, with its parameters. */
function recordingDatabase(path: string) {
  const file = new SQLite(path);
  file.pragma('journal_mode = WAL');
  file.pragma('foreign_keys = ON');
  const executed: Executed[] = [];
  const record = (sql: string, statement: SQLite.Statement) =>
    new Proxy(statement, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (property !== 'all' && property !== 'run' && property !== 'get') return value;
        return (...parameters: unknown[]) => {
          executed.push({ sql, parameters: parameters.flat() });
          return (value as (...args: unknown[]) => unknown).apply(target, parameters);
        };
      },
    });
  const db = new Kysely<Database>({
    dialect: new SqliteDialect({
      database: { close: () => file.close(), prepare: (sql: string) => record(sql, file.prepare(sql)) },
    }),
  });
  /** SQLite's plan for a statement that ran: one line per step, like `SEARCH deliveries USING INDEX …`. */
  const planOf = ({ sql, parameters }: Executed): string[] =>
    (file.prepare(`explain query plan ${sql}`).all(...parameters) as { detail: string }[]).map((row) => row.detail);
  return { db, executed, planOf };
}

describe('query plans of the delivery queue on SQLite', () => {
  let dir: string;
  let recording: ReturnType<typeof recordingDatabase>;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'webhooks-plans-'));
    recording = recordingDatabase(join(dir, 'webhooks.db'));
    await migrateToLatest(recording.db);
  });

  afterEach(async () => {
    await recording.db.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('publishes, claims and records outcomes without scanning a table', async () => {
    const { db, executed, planOf } = recording;
    const webhooks = new WebhookStore(db);
    // Other tenants' webhooks, some disabled: the claim must not look at them one by one.
    for (let i = 0; i < 20; i++) {
      const url = `https://other${i}.example.com/h`;
      const input = { callbackUrl: url, callbackUrlKey: url, events: ['*'], enabled: i % 2 === 0, headers: {} };
      await webhooks.create(`other-${i}`, input, secret);
    }
    const url = 'https://receiver.example.com/h';
    const subscribed = { callbackUrl: url, callbackUrlKey: url, events: ['order.*'], enabled: true, headers: {} };
    await webhooks.create('t', subscribed, secret);
    const events = new EventStore(db);
    const deliveries = new DeliveryStore(db);
    executed.length = 0;

    await events.publish('t', { type: 'order.created', data: { n: 1 }, idempotencyKey: 'k1' });
    await events.publish('t', { type: 'order.paid', data: { n: 2 } });
    const claimed = await deliveries.claimDue(10, 60_000, new Date(Date.now() + 1_000));
    expect(claimed).toHaveLength(2);
    const [succeeded, retried] = claimed;
    const outcome = (delivery: (typeof claimed)[number], ok: boolean): CompletedAttempt => ({
      delivery,
      attemptedAt: new Date(),
      result: { ok, responseStatus: ok ? 200 : 500, durationMs: 2, detail: `HTTP ${ok ? 200 : 500}` },
      next: ok ? { status: 'succeeded' } : { status: 'pending', nextAttemptAt: new Date(Date.now() + 5_000) },
    });
    const autoDisable = { afterMs: 60_000, reason: 'failing' };
    await deliveries.complete([outcome(succeeded!, true), outcome(retried!, false)], autoDisable);

    const queries = executed.filter(({ sql }) => /^\s*(select|update|delete|insert)/i.test(sql));
    // Every kind of statement the queue runs was seen: the check below covers them all.
    const kinds = [
      'insert into "events"',
      'insert into "deliveries"',
      'set "lease_until"',
      'set "status"',
      'insert into "delivery_attempts"',
    ];
    for (const kind of kinds) expect(queries.some(({ sql }) => sql.includes(kind)), kind).toBe(true);
    for (const query of queries) {
      const plan = planOf(query);
      expect(plan.filter((step) => /^SCAN /.test(step)), `${query.sql}\n${plan.join('\n')}`).toEqual([]);
    }
  });
});
