// Event delivery: publish events through POST /api/web/v1/events and time them to the receiver. The section turns
// itself on when the contract has that path; until the service answers it, it reports why nothing was measured.
// measureEventDelivery sets up; publishAndAwaitDeliveries is the measurement (the profiler reuses it).
import pg from 'pg';
import type { LoadDriver, LoadResult } from './load.js';
import { cpuSecondsOf, machineBusySeconds, type NodeChild, onStop } from './processes.js';
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
  /**
   * When several runs were made (SQLite): every run's deliveries per second, in the order run. The other fields
   * are those of the median run (the lower middle one of an even number), which the target judges: runs of the
   * same commit spread by about 15 % on this machine, and one run made the verdict a lottery.
   */
  runs?: number[];
  /**
   * When several runs were made: how many lost a delivery (or a publish) or received one twice. The median run may be
   * complete while another was not; the target counts only complete runs as met.
   */
  incompleteRuns?: number;
  /** Publish (request built in the driver) to the receiver's first receipt, ms. */
  endToEnd?: LatencySummary;
  /**
   * CPU from the first publish to the last receipt: the service process's (ms per event, and cores), and the whole
   * machine's (cores), which tells how much room the service had on a shared machine.
   */
  cpu?: {
    serviceMsPerEvent: number;
    serviceCores: number;
    machineCores: number;
    /** Queue-drain runs: the worker processes' CPU from their ready lines to the last receipt, ms per event. */
    workersMsPerEvent?: number;
  };
  /**
   * Queue-drain runs only (PostgreSQL): every event was published while no worker ran, then the workers were
   * started. deliveriesPerSec is absent there; these describe the drain instead.
   */
  drain?: {
    workers: number;
    /** Deliveries / (last receipt − first receipt), seconds. The workers' throughput on a full queue. */
    deliveriesPerSec: number;
    /** First receipt to last receipt, ms. */
    durationMs: number;
    /** From starting the worker processes until all of them printed their ready line, ms. */
    workersReadyMs: number;
    /** From the first ready line to the last (a second worker may drain alone for this long), ms. */
    readySpreadMs: number;
    /**
     * From seeing the last worker's ready line to the first receipt, ms (the ready line is polled every 50 ms, so
     * it can be slightly negative).
     */
    firstDeliveryAfterReadyMs: number;
  };
  serviceRssMb?: number;
}

export interface EventBenchContext {
  driver: LoadDriver;
  receiver: Receiver;
  events: number;
  connections: number;
  /** How long to wait for the last delivery after the last publish. */
  drainTimeoutMs: number;
  /**
   * How long to keep counting after the last first receipt, before the service (or the workers) stop: a second copy of
   * one of the last events (two workers claiming one row) arrives within this, or is not seen at all.
   */
  duplicateWindowMs: number;
  /**
   * Webhooks of other tenants in the store, none subscribed: a platform's store holds many, and the queue's
   * statements must not cost more for them.
   */
  otherWebhooks: number;
  /** Reads the service's RSS (from /proc) by pid. */
  rssOf: (pid: number) => number;
  service?: ServiceOptions;
}

export function eventsApiInContract(): boolean {
  return contractHasPath(eventsPath);
}

/**
 * `runs` times: starts a service over a fresh store (no webhooks, a key with every permission), measures, stops it.
 * Answers the median run, with every run's rate in `runs`; or the first run that did not measure. `onRun` sees each
 * run as it ends (the bench warns about incomplete ones).
 */
export async function measureEventDelivery(
  ctx: EventBenchContext,
  runs = 1,
  onRun?: (result: EventDeliveryResult, index: number) => void,
): Promise<EventDeliveryResult> {
  if (!eventsApiInContract()) {
    return { status: 'not measured', note: `not measured yet (POST ${eventsPath} does not exist)` };
  }
  const results: EventDeliveryResult[] = [];
  for (let i = 0; i < runs; i++) {
    const result = await measureOnce(ctx);
    onRun?.(result, i);
    if (result.status !== 'measured' || result.deliveriesPerSec === undefined) return result;
    results.push(result);
  }
  return medianRun(results);
}

/** A run in which every event was published and delivered, each once. */
export const completeRun = (r: EventDeliveryResult) => r.delivered === r.events && r.duplicates === 0;

/**
 * The median of measured runs by rate (the lower middle one of an even number), with every run's rate and how many
 * runs were incomplete. `rateOf`: deliveries/s by default; the queue-drain rate for PostgreSQL runs.
 */
export function medianRun(
  results: readonly EventDeliveryResult[],
  rateOf: (r: EventDeliveryResult) => number = (r) => r.deliveriesPerSec!,
): EventDeliveryResult {
  if (results.length === 1) return results[0]!;
  const byRate = [...results].sort((a, b) => rateOf(a) - rateOf(b));
  return {
    ...byRate[Math.floor((byRate.length - 1) / 2)]!,
    runs: results.map(rateOf),
    incompleteRuns: results.filter((r) => !completeRun(r)).length,
  };
}

async function measureOnce(ctx: EventBenchContext): Promise<EventDeliveryResult> {
  const store = await seedEventStore(ctx);
  const service = await startService('service (events)', store.dataDir, ctx.service);
  try {
    return await publishAndAwaitDeliveries(ctx, service, store.token);
  } finally {
    await service.process.stop();
  }
}

/** The tenant whose webhooks fill the store around the one measured. */
const otherTenant = `${benchTenant}-others`;

/** A store with the bench tenant's key and `ctx.otherWebhooks` webhooks of another tenant. */
export function seedEventStore(ctx: Pick<EventBenchContext, 'otherWebhooks'>, databaseUrl?: string) {
  return seedStore(ctx.otherWebhooks, { tenant: otherTenant, ...(databaseUrl ? { databaseUrl } : {}) });
}

/** The PostgreSQL queue-drain runs: `serve` without a worker, everything published, then 1 or 2 worker processes. */
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
 * Event delivery on PostgreSQL as a queue drain, in a fresh schema `bench_<pid>_<random>` (inFreshSchema: dropped
 * afterwards, also on error or Ctrl-C). `serve` runs with DELIVERY_WORKER=false (API only) in both cases; all
 * `ctx.events` events are published while no worker runs, then `workers` `webhooks-api worker` processes (same
 * environment) are started, and the rate is the deliveries over first receipt → last receipt. Publishing is out of
 * the window, so the figure is the workers'.
 */
export async function measureEventDeliveryOnPostgres(
  ctx: EventBenchContext,
  baseUrl: string,
  workers: 1 | 2,
): Promise<EventDeliveryResult> {
  if (!eventsApiInContract()) {
    return { status: 'not measured', note: `not measured yet (POST ${eventsPath} does not exist)` };
  }
  return inFreshSchema(baseUrl, async (databaseUrl, schema) => {
    const children: NodeChild[] = [];
    const names: string[] = [];
    try {
      const store = await seedEventStore(ctx, databaseUrl);
      const env = { DATABASE_URL: databaseUrl, DELIVERY_WORKER: 'false' };
      const service = await startService('service (PostgreSQL, API only)', store.dataDir, { ...ctx.service, env });
      children.push(service.process);
      names.push(service.name);
      const startWorkers = async (): Promise<StartedWorkers> => {
        const startedAt = now();
        const readyAt: number[] = [];
        const pids: number[] = [];
        const started = await Promise.allSettled(
          Array.from({ length: workers }, async () => {
            const child = await startWorker(store.dataDir, { ...ctx.service, env });
            readyAt.push(now());
            pids.push(child.pid);
            return child;
          }),
        );
        for (const outcome of started) {
          if (outcome.status === 'fulfilled') {
            children.push(outcome.value);
            names.push(`worker ${names.length}`);
          }
        }
        const failed = started.find((outcome) => outcome.status === 'rejected');
        if (failed) throw failed.reason;
        return { startedAt, readyAt, pids };
      };
      const result = await publishAndAwaitDeliveries(ctx, service, store.token, startWorkers);
      children.forEach((child, i) => child.assertRunning(names[i] ?? `process ${i}`));
      return {
        ...result,
        note:
          `${result.note}; queue drain: all published first with no worker running, then ` +
          `${workers} worker process${workers === 1 ? '' : 'es'} started beside \`serve\` ` +
          'with DELIVERY_WORKER=false; ' +
          `PostgreSQL schema ${schema}`,
      };
    } finally {
      await Promise.all(children.map((child) => child.stop()));
    }
  });
}

/**
 * Runs `measure` with a URL of `baseUrl` whose tables live in a fresh schema `bench_<pid>_<random>`, dropped
 * afterwards (also on error, on Ctrl-C and when the time budget runs out: processes.ts, onStop), so a bench run
 * neither reads nor leaves anything in the database's own schemas. The pid names the bench process that made it.
 * Every session opened with the URL (the bench's own seeding, `serve`, the workers) carries the schema's name as its
 * application_name, so the drop can end those still open, which would otherwise hold it up with their locks.
 */
export async function inFreshSchema<T>(
  baseUrl: string,
  measure: (databaseUrl: string, schema: string) => Promise<T>,
): Promise<T> {
  const schema = `bench_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  const drop = async () => {
    const client = new pg.Client({ ...benchClientConfig(baseUrl), lock_timeout: 5_000 });
    await client.connect();
    try {
      await client.query(
        `select pg_terminate_backend(pid) from pg_stat_activity
          where application_name = $1 and pid <> pg_backend_pid()`,
        [schema],
      );
      await client.query(`drop schema if exists ${schema} cascade`);
    } finally {
      await client.end();
    }
  };
  // Registered first: a stop that comes while the schema is being made drops it too (the drop is "if exists").
  const unregister = onStop(`drop the PostgreSQL schema ${schema} (drop it by hand)`, drop);
  let measured = false;
  try {
    const admin = new pg.Client(benchClientConfig(baseUrl));
    await admin.connect();
    try {
      await admin.query(`create schema ${schema}`);
    } finally {
      await admin.end();
    }
    const url = new URL(baseUrl);
    url.searchParams.set('options', `-c search_path=${schema}`);
    url.searchParams.set('application_name', schema);
    const result = await measure(url.href, schema);
    measured = true;
    return result;
  } finally {
    unregister();
    try {
      await drop();
    } catch (error) {
      // After a failed measurement, its error is the one to report; this one is only told.
      if (measured) throw error;
      const message = error instanceof Error ? error.message : String(error);
      process.stderr.write(`bench: could not drop the PostgreSQL schema ${schema} (drop it by hand): ${message}\n`);
    }
  }
}

const now = () => performance.timeOrigin + performance.now();

/** The bench's own connections (schema create and drop): bounded, so an unreachable database fails the section. */
const benchClientConfig = (connectionString: string): pg.ClientConfig => ({
  connectionString,
  connectionTimeoutMillis: 5_000,
  statement_timeout: 60_000,
  lock_timeout: 30_000,
});

/** The worker processes of a queue-drain run, once all of them are ready. */
interface StartedWorkers {
  startedAt: number;
  readyAt: number[];
  pids: number[];
}

/**
 * Registers one webhook for `order.*` at the receiver, publishes `ctx.events` events from the load driver and waits
 * until every one has been delivered (or the drain timeout passed). With `startWorkers`, the service is expected to
 * deliver nothing by itself: the workers are started only after the last publish was answered, and the result
 * carries the queue-drain rate (first receipt → last receipt) instead of deliveriesPerSec.
 */
export async function publishAndAwaitDeliveries(
  ctx: EventBenchContext,
  service: ServerHandle,
  token: string,
  startWorkers?: () => Promise<StartedWorkers>,
): Promise<EventDeliveryResult> {
  const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const created = await fetch(`${service.url}/api/web/v1/webhooks`, {
    signal: AbortSignal.timeout(15_000),
    method: 'POST',
    headers: auth,
    body: JSON.stringify({ callbackUrl: `${ctx.receiver.url}/events`, events: ['order.*'] }),
  });
  if (created.status !== 200) {
    return { status: 'not measured', note: `creating the webhook answered ${created.status}: ${await created.text()}` };
  }
  const probe = await fetch(`${service.url}${eventsPath}`, {
    signal: AbortSignal.timeout(15_000),
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
  let firstAt = 0;
  // Every event is expected until the publishes are answered; then only those answered 2xx.
  let expected = ctx.events;
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
    if (latencies.length === 1) firstAt = receivedAt;
    lastAt = receivedAt;
    if (latencies.length >= expected) allDelivered();
  };

  try {
    const startedAt = now();
    const serviceCpuBefore = cpuSecondsOf(service.process.pid);
    const machineBefore = machineBusySeconds();
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
    if (publish.ok === 0) {
      return { status: 'not measured', note: `no publish was answered 2xx (${JSON.stringify(publish.statusCodes)})` };
    }
    expected = publish.ok;
    if (latencies.length >= expected) allDelivered();
    let workersStarted: StartedWorkers | undefined;
    let workersCpuBefore = 0;
    const workersCpu = () => workersStarted!.pids.reduce((sum, pid) => sum + cpuSecondsOf(pid), 0);
    if (startWorkers) {
      if (latencies.length > 0) {
        return { status: 'not measured', note: `${latencies.length} events were delivered before any worker ran` };
      }
      workersStarted = await startWorkers();
      workersCpuBefore = workersCpu();
    }
    const timer = setTimeout(allDelivered, ctx.drainTimeoutMs);
    await done;
    clearTimeout(timer);
    const delivered = latencies.length;
    const elapsedSec = (now() - startedAt) / 1000;
    const serviceCpu = cpuSecondsOf(service.process.pid) - serviceCpuBefore;
    const perEvent = (seconds: number) => round3((seconds * 1000) / Math.max(1, delivered));
    const cpu = {
      serviceMsPerEvent: perEvent(serviceCpu),
      serviceCores: round3(serviceCpu / elapsedSec),
      machineCores: round3((machineBusySeconds() - machineBefore) / elapsedSec),
      ...(workersStarted ? { workersMsPerEvent: perEvent(workersCpu() - workersCpuBefore) } : {}),
    };
    // Keep counting second copies a little longer: the processes stop right after this returns.
    await new Promise((resolve) => setTimeout(resolve, ctx.duplicateWindowMs));
    const failedPublishes = ctx.events - publish.ok;
    const drainMs = lastAt - firstAt;
    const drain = workersStarted && {
      workers: workersStarted.readyAt.length,
      deliveriesPerSec: delivered > 1 && drainMs > 0 ? Math.round(delivered / (drainMs / 1000)) : 0,
      durationMs: round3(drainMs),
      workersReadyMs: round3(Math.max(...workersStarted.readyAt) - workersStarted.startedAt),
      readySpreadMs: round3(Math.max(...workersStarted.readyAt) - Math.min(...workersStarted.readyAt)),
      firstDeliveryAfterReadyMs: round3(firstAt - Math.max(...workersStarted.readyAt)),
    };
    return {
      status: 'measured',
      note:
        (failedPublishes > 0
          ? `${failedPublishes} of ${ctx.events} publishes were not answered 2xx (${JSON.stringify(publish.statusCodes)}); `
          : '') +
        (delivered < expected
          ? `only ${delivered} of ${expected} deliveries arrived within ${ctx.drainTimeoutMs} ms of the last ` +
            (drain ? 'worker being ready' : 'publish')
          : `${ctx.events} events to 1 webhook of tenant "${benchTenant}", ${ctx.connections} publishing connections, ` +
            `${ctx.otherWebhooks.toLocaleString('en-US')} webhooks of tenant "${otherTenant}" in the store`),
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
      ...(drain
        ? { drain }
        : {
            deliveriesPerSec:
              delivered && lastAt > startedAt ? Math.round(delivered / ((lastAt - startedAt) / 1000)) : 0,
          }),
      endToEnd: summarize(latencies.values()),
      cpu,
      serviceRssMb: round3(ctx.rssOf(service.process.pid)),
    };
  } finally {
    ctx.receiver.onDelivery = undefined;
  }
}
