// Every statement the service runs holds the event loop while SQLite runs it (better-sqlite3 is synchronous). A
// statement that scans a whole table costs more the more webhooks or deliveries the store holds, across every
// tenant. So the statements of the delivery queue and of the API are checked here by SQLite's own query plan: each
// must find its rows through an index. And none may make SQLite prepare it again at every run (a bare LIMIT
// parameter does). Timings would be noise on a shared machine; a plan is exact.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiKeyStore } from '../../server/store/api-keys.js';
import { migrateToLatest } from '../../server/store/database.js';
import { type CompletedAttempt, DeliveryStore } from '../../server/store/deliveries.js';
import { EventStore } from '../../server/store/events.js';
import { pruneDeliveryLog } from '../../server/store/retention.js';
import type { Database } from '../../server/store/schema.js';
import { WebhookStore } from '../../server/store/webhooks.js';
import { webhookInput } from '../support/backends.js';

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

/** The statements among `executed` that read or write rows, with any step of their plan that scans a table. */
function scansIn(executed: Executed[], planOf: (query: Executed) => string[]) {
  return executed
    .filter(({ sql }) => /^\s*(select|update|delete|insert|with)/i.test(sql))
    .map((query) => ({ sql: query.sql, plan: planOf(query) }))
    // A multi-row INSERT "scans" its own VALUES list; that is no table.
    .filter(({ plan }) => plan.some((step) => /^SCAN (?!\d+-ROW VALUES CLAUSE|CONSTANT ROW)/.test(step)));
}

/**
 * Statements with a bare `LIMIT ?`: SQLite reads that parameter while planning, so every run with a new binding
 * (better-sqlite3 binds at every run) prepares the statement again. The store writes `rowLimit(n)` instead.
 */
function bareLimitsIn(executed: Executed[]): string[] {
  return [...new Set(executed.map(({ sql }) => sql).filter((sql) => /\blimit\s+\?/i.test(sql)))];
}

const hook = (n: number, enabled = true) => webhookInput(`hook${n}`, { enabled });

describe('query plans and statements on SQLite', () => {
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
      await webhooks.create(`other-${i}`, webhookInput(`other${i}`, { events: ['*'], enabled: i % 2 === 0 }), secret);
    }
    await webhooks.create('t', webhookInput('receiver'), secret);
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
    for (let n = 3; n < 6; n++) await events.publish('t', { type: 'order.paid', data: { n } });
    const held = await deliveries.claimDue(10, 60_000, new Date(Date.now() + 1_000));
    expect(held).toHaveLength(3);
    await deliveries.postpone(held.map((delivery, i) => ({ delivery, until: new Date(Date.now() + 60_000 + i) })));

    const queries = executed.map(({ sql }) => sql);
    // Every kind of statement the queue runs was seen: the check below covers them all.
    const kinds = [
      'insert into "events"',
      'insert into "deliveries"',
      'set "lease_until"',
      'set "status"',
      'insert into "delivery_attempts"',
      'set "next_attempt_at"',
    ];
    for (const kind of kinds) expect(queries.some((sql) => sql.includes(kind)), kind).toBe(true);
    expect(scansIn(executed, planOf)).toEqual([]);
    expect(bareLimitsIn(executed)).toEqual([]);
  });

  it('serves the API (webhooks, keys, the delivery log) without scanning a table', async () => {
    const { db, executed, planOf } = recording;
    const webhooks = new WebhookStore(db);
    const keys = new ApiKeyStore(db);
    const deliveries = new DeliveryStore(db);
    const events = new EventStore(db);
    for (let i = 0; i < 10; i++) await webhooks.create(`other-${i}`, hook(100 + i, i % 2 === 0), secret);
    await keys.create('other', ['WEBHOOKS:VIEW']);
    executed.length = 0;

    // Listing keys is the CLI's (`keys list`), over a table of a few keys per tenant: not checked here.
    const key = await keys.create('t', ['WEBHOOKS:VIEW', 'WEBHOOKS:EDIT']);
    expect(await keys.findByTokenHash('no such hash')).toBeUndefined();
    await keys.revoke(key.id);

    const first = await webhooks.create('t', hook(1), secret);
    const second = await webhooks.create('t', hook(2), secret);
    await expect(webhooks.create('t', hook(1), secret)).rejects.toThrow();
    await webhooks.get('t', first.id);
    const page = await webhooks.list('t', 1);
    expect(page.items).toHaveLength(1);
    await webhooks.list('t', 1, 1);
    await webhooks.getMany([first.id, second.id]);
    await webhooks.replace('t', first.id, { ...hook(3), description: 'moved' });
    await expect(webhooks.replace('t', first.id, hook(2))).rejects.toThrow();
    await webhooks.rotateSecret('t', first.id, `whsec_${Buffer.alloc(32, 6).toString('base64')}`, 60_000);

    await events.publish('t', { type: 'order.created', data: {}, idempotencyKey: 'k' });
    await events.publish('t', { type: 'order.created', data: {}, idempotencyKey: 'k' });
    await deliveries.recordSingleAttempt(
      { tenantId: 't', webhookId: first.id, eventType: 'webhook.test', messageId: 'msg_1', payload: '{}' },
      new Date(),
      { ok: false, responseStatus: 500, durationMs: 1, detail: 'HTTP 500' },
    );
    const log = await deliveries.listForWebhook('t', first.id, { limit: 1 });
    expect(log.next).toBeDefined();
    await deliveries.listForWebhook('t', first.id, { limit: 1, status: 'pending', before: log.next! });
    const [claimed] = await deliveries.claimDue(10, 60_000, new Date(Date.now() + 1_000));
    await deliveries.complete(
      [
        {
          delivery: claimed!,
          attemptedAt: new Date(),
          result: { ok: false, responseStatus: 410, durationMs: 1, detail: 'HTTP 410' },
          next: { status: 'failed' },
          disableWebhook: 'The receiver answered 410 Gone.',
        },
      ],
      { afterMs: 0, reason: 'failing' },
    );
    expect(await deliveries.retryNow('t', first.id, claimed!.id)).toMatchObject({ status: 'pending' });
    await webhooks.delete('t', second.id);

    expect(scansIn(executed, planOf)).toEqual([]);
    expect(bareLimitsIn(executed)).toEqual([]);
  });

  it('prunes the delivery log through the primary keys, without scanning a table', async () => {
    const { db, executed, planOf } = recording;
    await new WebhookStore(db).create('t', hook(1), secret);
    const events = new EventStore(db);
    for (let i = 0; i < 5; i++) await events.publish('t', { type: 'order.created', data: { i } });
    executed.length = 0;

    // A day and a half later every row is past a one-hour retention and the idempotency window; the deliveries are
    // still pending, and stay.
    const later = new Date(Date.now() + 36 * 3_600_000);
    expect(await pruneDeliveryLog(db, 3_600_000, { now: later })).toEqual({ deliveries: 0, events: 5 });
    expect(executed.map(({ sql }) => sql).filter((sql) => /^delete/i.test(sql))).toHaveLength(2);
    for (const query of executed.filter(({ sql }) => /^delete/i.test(sql))) {
      expect(planOf(query).join('\n')).toMatch(/SEARCH (deliveries|events) USING INDEX sqlite_autoindex_\w+ \(id>\? AND id<\?\)/);
    }
    expect(scansIn(executed, planOf)).toEqual([]);
    expect(bareLimitsIn(executed)).toEqual([]);
  });
});
