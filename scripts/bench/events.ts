// Event delivery: publish events through POST /api/web/v1/events and time them to the receiver. The section turns
// itself on when the contract has that path; until the service answers it, it reports why nothing was measured.
// measureEventDelivery sets up; publishAndAwaitDeliveries is the measurement (the profiler reuses it).
import pg from 'pg';
import type { LoadDriver, LoadResult } from './load.js';
import type { NodeChild } from './processes.js';
import type { Receiver } from './receiver.js';
import { benchTenant, seedStore, type ServerHandle, type ServiceOptions, startService, startWorker } from './servers.js';
import { contractHasPath } from './contract.js';
import { type LatencySummary, round3, Samples, summarize } from './stats.js';

export const eventsPath = '/api/web/v1/events';

export interface EventDeliveryResult {
  status: 'measured' | 'not measured';
  note: string;
  events?: number;
  publish?: Pick<LoadResult, 'reqPerSec' | 'latency' | 'non2xx' | 'errors' | 'statusCodes'>;
  delivered?: number;
  duplicates?: number;
  /** Deliveries per second from the first publish to the last delivery received. */
  deliveriesPerSec?: number;
  /** Publish (request built in the driver) to the receiver's first receipt, ms. */
  endToEnd?: LatencySummary;
  serviceRssMb?: number;
}

export interface EventBenchContext {
  driver: LoadDriver;
  receiver: Receiver;
  events: number;
  connections: number;
  /** How long to wait for the last delivery after the last publish. */
  drainTimeoutMs: number;
  /** Reads the service's RSS (from /proc) by pid. */
  rssOf: (pid: number) => number;
  service?: ServiceOptions;
}

export function eventsApiInContract(): boolean {
  return contractHasPath(eventsPath);
}

/** Starts a service over a fresh store (no webhooks, a key with every permission), measures, stops it. */
export async function measureEventDelivery(ctx: EventBenchContext): Promise<EventDeliveryResult> {
  if (!eventsApiInContract()) {
    return { status: 'not measured', note: `not measured yet (POST ${eventsPath} does not exist)` };
  }
  const store = await seedStore(0);
  const service = await startService('service (events)', store.dataDir, ctx.service);
  try {
    return await publishAndAwaitDeliveries(ctx, service, store.token);
  } finally {
    await service.process.stop();
  }
}

/** The PostgreSQL runs: one service with its built-in worker, or a service without one plus two worker processes. */
export interface PostgresEventResults {
  /** Why nothing was measured (quick run, no URL, or an error); absent when both runs happened. */
  note?: string;
  oneWorker?: EventDeliveryResult;
  twoWorkers?: EventDeliveryResult;
}

/** The PostgreSQL URL the bench may use: TEST_DATABASE_URL, else DATABASE_URL. */
export function benchPostgresUrl(): string | undefined {
  return process.env.TEST_DATABASE_URL || process.env.DATABASE_URL || undefined;
}

/**
 * Event delivery on PostgreSQL, in a fresh schema `bench_<random>` (dropped afterwards, also on error): `workers`
 * 1 is `serve` with its built-in worker; 2 is `serve` with DELIVERY_WORKER=false plus two `webhooks-api worker`
 * processes with the same environment.
 */
export async function measureEventDeliveryOnPostgres(
  ctx: EventBenchContext,
  baseUrl: string,
  workers: 1 | 2,
): Promise<EventDeliveryResult> {
  if (!eventsApiInContract()) {
    return { status: 'not measured', note: `not measured yet (POST ${eventsPath} does not exist)` };
  }
  const schema = `bench_${Math.random().toString(36).slice(2, 10)}`;
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  try {
    await admin.query(`create schema ${schema}`);
  } finally {
    await admin.end();
  }
  const children: NodeChild[] = [];
  try {
    const url = new URL(baseUrl);
    url.searchParams.set('options', `-c search_path=${schema}`);
    const databaseUrl = url.href;
    const store = await seedStore(0, 0, databaseUrl);
    const env = { DATABASE_URL: databaseUrl, DELIVERY_WORKER: workers === 1 ? 'true' : 'false' };
    const service = await startService(`service (PostgreSQL, ${workers} worker${workers === 1 ? '' : 's'})`, store.dataDir, {
      ...ctx.service,
      env,
    });
    children.push(service.process);
    if (workers === 2) {
      // Both started and ready before the first publish, so neither start-up lands in the measured window.
      const started = await Promise.allSettled([1, 2].map(() => startWorker(store.dataDir, { ...ctx.service, env })));
      for (const outcome of started) if (outcome.status === 'fulfilled') children.push(outcome.value);
      const failed = started.find((outcome) => outcome.status === 'rejected');
      if (failed) throw failed.reason;
    }
    const result = await publishAndAwaitDeliveries(ctx, service, store.token);
    children.forEach((child, i) => child.assertRunning(i === 0 ? service.name : `worker ${i}`));
    return {
      ...result,
      note: `${result.note}; PostgreSQL schema ${schema}, ${workers === 1 ? "the service's built-in worker" : 'service without a worker + 2 worker processes'}`,
    };
  } finally {
    await Promise.all(children.map((child) => child.stop()));
    const client = new pg.Client({ connectionString: baseUrl });
    await client.connect();
    try {
      await client.query(`drop schema if exists ${schema} cascade`);
    } finally {
      await client.end();
    }
  }
}

/**
 * Registers one webhook for `order.*` at the receiver, publishes `ctx.events` events from the load driver and waits
 * until every one has been delivered (or the drain timeout passed).
 */
export async function publishAndAwaitDeliveries(
  ctx: EventBenchContext,
  service: ServerHandle,
  token: string,
): Promise<EventDeliveryResult> {
  const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const created = await fetch(`${service.url}/api/web/v1/webhooks`, {
    method: 'POST',
    headers: auth,
    body: JSON.stringify({ callbackUrl: `${ctx.receiver.url}/events`, events: ['order.*'] }),
  });
  if (created.status !== 200) {
    return { status: 'not measured', note: `creating the webhook answered ${created.status}: ${await created.text()}` };
  }
  const probe = await fetch(`${service.url}${eventsPath}`, {
    method: 'POST',
    headers: auth,
    body: JSON.stringify({ type: 'order.created', data: { probe: true } }),
  });
  if (probe.status !== 202) {
    const text = (await probe.text()).slice(0, 300);
    return {
      status: 'not measured',
      note: `not measured yet (the contract has POST ${eventsPath}; the service answered ${probe.status}: ${text})`,
    };
  }

  const firstSeen = new Set<string>();
  const latencies = new Samples();
  let duplicates = 0;
  let lastAt = 0;
  let allDelivered: () => void = () => {};
  const done = new Promise<void>((resolve) => (allDelivered = resolve));
  ctx.receiver.onDelivery = ({ headers, body, receivedAt }) => {
    const messageId = String(headers['webhook-id'] ?? '');
    if (firstSeen.has(messageId)) {
      duplicates++;
      return;
    }
    firstSeen.add(messageId);
    const publishedAt = (JSON.parse(body) as { data?: { publishedAt?: number } }).data?.publishedAt;
    if (publishedAt === undefined) return; // the probe
    latencies.push(receivedAt - publishedAt);
    lastAt = receivedAt;
    if (latencies.length >= ctx.events) allDelivered();
  };

  try {
    const startedAt = performance.timeOrigin + performance.now();
    const publish = await ctx.driver.run({
      url: service.url,
      scenario: 'publish',
      token,
      ids: [],
      connections: ctx.connections,
      durationSec: 0,
      warmupSec: 0,
      amount: ctx.events,
    });
    const timer = setTimeout(allDelivered, ctx.drainTimeoutMs);
    await done;
    clearTimeout(timer);
    const delivered = latencies.length;
    return {
      status: 'measured',
      note:
        delivered < ctx.events
          ? `only ${delivered} of ${ctx.events} deliveries arrived within ${ctx.drainTimeoutMs} ms of the last publish`
          : `${ctx.events} events to 1 webhook of tenant "${benchTenant}", ${ctx.connections} publishing connections`,
      events: ctx.events,
      publish: {
        reqPerSec: publish.reqPerSec,
        latency: publish.latency,
        non2xx: publish.non2xx,
        errors: publish.errors,
        statusCodes: publish.statusCodes,
      },
      delivered,
      duplicates,
      deliveriesPerSec: delivered && lastAt > startedAt ? Math.round(delivered / ((lastAt - startedAt) / 1000)) : 0,
      endToEnd: summarize(latencies.values()),
      serviceRssMb: round3(ctx.rssOf(service.process.pid)),
    };
  } finally {
    ctx.receiver.onDelivery = undefined;
  }
}
