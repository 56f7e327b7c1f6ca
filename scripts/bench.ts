// npm run bench [-- --quick] [--profile] [--tsx] [--only ab,delivery,growth,events]
//
// Measures the real service (child process from dist/ as `npm start` runs it, built first; SQLite in a temp
// DATA_DIR, LOG_LEVEL=warn) side by side with a bare
// Fastify baseline answering the same contract from memory, driven by autocannon from a third process on 127.0.0.1.
// Writes the table to stdout and the numbers to bench-results/<timestamp>.json. See docs/performance.md.
import { join } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import SQLite from 'better-sqlite3';
import {
  benchPostgresUrl,
  type EventBenchContext,
  eventsApiInContract,
  completeRun,
  type EventDeliveryResult,
  measureEventDelivery,
  measureEventDeliveryOnPostgres,
  medianRun,
  type PostgresEventResults,
  publishAndAwaitDeliveries,
  seedEventStore,
} from './bench/events.js';
import { type LoadJob, LoadDriver } from './bench/load.js';
import {
  cpuSecondsOf,
  installCleanup,
  isStopping,
  machineBusySeconds,
  memoryOf,
  projectRoot,
  round,
  stopBench,
} from './bench/processes.js';
import { mainProfileIn, summarizeProfile } from './bench/profile.js';
import { Receiver } from './bench/receiver.js';
import {
  type BenchResults,
  type Compared,
  evaluateTargets,
  formatReport,
  type Growth,
  machine,
  type MemoryRecord,
  type ProfileRecord,
  type Run,
  type Settings,
  side,
  writeResults,
} from './bench/report.js';
import { comparedScenarios, type ScenarioName, scenarios } from './bench/scenarios.js';
import {
  distEntry,
  buildDist,
  measureCommitCost,
  type SeededStore,
  type ServerHandle,
  seedStore,
  startBaseline,
  startService,
} from './bench/servers.js';
import { round3 } from './bench/stats.js';
import { measureTestDelivery } from './bench/test-delivery.js';

const usage = `Usage: npm run bench -- [options]

  --quick            short runs (under a minute): 1.5 s per run, 1 A/B round, growth 100 vs 1,000 webhooks
  --profile          afterwards, profile the service per scenario (node --cpu-prof) and summarise the profiles
  --tsx              run the service from server/main.ts through tsx (no build; about 30 MB more RSS, which is
                     then not judged) instead of building ${distEntry} and running that, as npm start does
  --only LIST        run only some sections: ab, delivery, growth, events, profile (comma-separated)
  --scenarios LIST   only these A/B and profile scenarios: read, list, update, create (comma-separated)
  --duration S       measured seconds per run (default 5, quick 1.5)
  --rounds N         A/B rounds (default 4, quick 1)
  --event-runs N     SQLite event-delivery runs, each on a fresh service; the median run is judged (default 3, quick 1)
  --postgres-runs N  PostgreSQL queue-drain runs per worker count, 1 and 2 workers alternated (default 2), with
                     TEST_DATABASE_URL or DATABASE_URL: in full runs, and in --quick runs that give this option;
                     each side's median run is judged
  --connections N    concurrent connections (default 10)
  --large N          the large growth size (default 100000, quick 1000)`;

const { values: args } = parseArgsOrExit({
  options: {
    quick: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    tsx: { type: 'boolean', default: false },
    only: { type: 'string' },
    scenarios: { type: 'string' },
    duration: { type: 'string' },
    rounds: { type: 'string' },
    'event-runs': { type: 'string' },
    'postgres-runs': { type: 'string' },
    connections: { type: 'string' },
    large: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});

/** parseArgs, with an unknown or malformed option answered by a line and the usage instead of a stack trace. */
function parseArgsOrExit<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const hint = process.argv.includes('--dist')
      ? ' (the service runs from dist/ by default now; --tsx runs the sources)'
      : '';
    console.error(`bench: ${message}${hint}\n\n${usage}`);
    process.exit(2);
  }
}
if (args.help) {
  console.log(usage);
  process.exit(0);
}

function positive(text: string | undefined, fallback: number, name: string): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!(value > 0) || !Number.isFinite(value)) {
    console.error(`bench: --${name} must be a positive number, not "${text}"`);
    process.exit(2);
  }
  return value;
}

const quick = args.quick;
const large = Math.round(positive(args.large, quick ? 1_000 : 100_000, 'large'));
const settings: Settings = {
  mode: quick ? 'quick' : 'full',
  serviceFrom: args.tsx ? 'tsx' : 'dist',
  connections: Math.round(positive(args.connections, 10, 'connections')),
  durationSec: positive(args.duration, quick ? 1.5 : 5, 'duration'),
  warmupSec: quick ? 0.5 : 2,
  rounds: Math.round(positive(args.rounds, quick ? 1 : 4, 'rounds')),
  seedWebhooks: 1_000,
  growthSizes: [Math.min(quick ? 100 : 1_000, large), large],
  testDeliverySamples: quick ? 200 : 2_000,
  events: quick ? 500 : 10_000,
  eventRuns: Math.round(positive(args['event-runs'], quick ? 1 : 3, 'event-runs')),
  postgresRuns: Math.round(positive(args['postgres-runs'], 2, 'postgres-runs')),
  eventsOtherWebhooks: quick ? 100 : 10_000,
};
const sections = new Set((args.only ?? 'ab,delivery,growth,events').split(',').map((s) => s.trim()));
for (const section of sections) {
  if (!['ab', 'delivery', 'growth', 'events', 'profile'].includes(section)) {
    console.error(`bench: unknown section "${section}" in --only (ab, delivery, growth, events, profile)`);
    process.exit(2);
  }
}
const profiling = args.profile || sections.has('profile');
const chosenScenarios = args.scenarios
  ? args.scenarios.split(',').map((s) => s.trim() as ScenarioName)
  : [...comparedScenarios];
for (const name of chosenScenarios) {
  if (!comparedScenarios.includes(name)) {
    console.error(`bench: unknown scenario "${name}" in --scenarios (${comparedScenarios.join(', ')})`);
    process.exit(2);
  }
}
// What `npm start` runs: the compiled service, built now so that it is the code in the tree.
if (!args.tsx) buildDist();

installCleanup();
// Every phase is bounded; this bounds the whole run too, whatever hangs.
const budgetMs = (quick ? 3 : 15) * 60_000 + (profiling ? 5 * 60_000 : 0);
setTimeout(() => {
  console.error(`bench: gave up after ${budgetMs / 60_000} minutes`);
  stopBench(1);
}, budgetMs).unref();

const log = (text: string) => process.stderr.write(`${text}\n`);
const startedAt = new Date();
const warnings: string[] = [];
const memory: MemoryRecord[] = [];
const serviceOptions = { dist: !args.tsx };

function recordMemory(section: MemoryRecord['section'], what: string, server: ServerHandle, webhooks: number): void {
  const sample = memoryOf(server.process.pid);
  memory.push({ section, what, webhooks, ...sample });
  log(`  memory: ${what} (${webhooks} webhooks): ${sample.rssMb} MB (peak ${sample.peakRssMb} MB)`);
}

function countWebhooks(dataDir: string): number {
  const db = new SQLite(join(dataDir, 'webhooks.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('select count(*) as n from webhooks').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** A random sample of ids for the read and update scenarios (the driver does not need all 100,000). */
function sample(ids: string[], size = 2_000): string[] {
  if (ids.length <= size) return ids;
  const picked = new Set<string>();
  while (picked.size < size) picked.add(ids[Math.floor(Math.random() * ids.length)]!);
  return [...picked];
}

type Job = Omit<LoadJob, 'url'>;

const job = (scenario: ScenarioName, store: Pick<SeededStore, 'token'>, ids: string[]): Job => ({
  scenario,
  token: store.token,
  ids,
  connections: settings.connections,
  durationSec: settings.durationSec,
  warmupSec: settings.warmupSec,
});

/** One load job against one server, with the CPU the server and every other process used meanwhile. */
async function measure(driver: LoadDriver, server: ServerHandle, work: Job, round: number): Promise<Run> {
  server.process.assertRunning(server.name);
  const serverBefore = cpuSecondsOf(server.process.pid);
  const driverBefore = cpuSecondsOf(driver.pid);
  const machineBefore = machineBusySeconds();
  const started = performance.now();
  const result = await driver.run({ ...work, url: server.url });
  const seconds = (performance.now() - started) / 1000;
  server.process.assertRunning(server.name);
  const serverCpuCores = round3((cpuSecondsOf(server.process.pid) - serverBefore) / seconds);
  const driverCores = (cpuSecondsOf(driver.pid) - driverBefore) / seconds;
  const otherCpuCores = round3(Math.max(0, (machineBusySeconds() - machineBefore) / seconds - serverCpuCores - driverCores));
  const l = result.latency;
  log(
    `  ${work.scenario.padEnd(6)} ${server.name.padEnd(18)} round ${round}: ${result.reqPerSec} req/s, ` +
      `p50 ${l.p50} ms, p99 ${l.p99} ms; cores: server ${serverCpuCores}, driver ${result.driverCpuCores}, ` +
      `others ${otherCpuCores}` +
      (result.non2xx || result.errors ? `; ${result.non2xx} non-2xx, ${result.errors} errors` : ''),
  );
  const where = `${work.scenario} on ${server.name}, round ${round}`;
  if (result.non2xx || result.errors) {
    warnings.push(
      `${where}: ${result.non2xx} non-2xx and ${result.errors} errors (${JSON.stringify(result.statusCodes)})` +
        (result.firstFailure ? `; first: ${result.firstFailure}` : ''),
    );
  }
  if (result.driverCpuCores > 0.9 && serverCpuCores < 0.85) {
    warnings.push(`${where}: the load driver used ${result.driverCpuCores} cores, the server ${serverCpuCores}: the driver may be the limit`);
  }
  return { round, result, serverCpuCores, otherCpuCores };
}

/** Runs a scenario on each target in turn, `rounds` times (A/B/A/B…), so drift on the machine hits all alike. */
async function alternate(
  driver: LoadDriver,
  scenario: ScenarioName,
  targets: { server: ServerHandle; store: SeededStore; ids: string[] }[],
): Promise<Run[][]> {
  const runs: Run[][] = targets.map(() => []);
  for (let round = 1; round <= settings.rounds; round++) {
    for (const [i, target] of targets.entries()) {
      runs[i]!.push(await measure(driver, target.server, job(scenario, target.store, target.ids), round));
    }
  }
  return runs;
}

const eventContext = (driver: LoadDriver, receiver: Receiver): EventBenchContext => ({
  driver,
  receiver,
  events: settings.events,
  otherWebhooks: settings.eventsOtherWebhooks,
  connections: settings.connections,
  drainTimeoutMs: quick ? 30_000 : 120_000,
  duplicateWindowMs: quick ? 250 : 1_000,
  rssOf: (pid) => memoryOf(pid).rssMb,
  service: serviceOptions,
});

const nowUs = () => Number(process.hrtime.bigint() / 1000n);

/**
 * Starts a server under node --cpu-prof, runs `work` (which answers how many requests it made), stops the server
 * and summarises the samples taken during `work` only (start-up and module loading left out).
 */
async function profile(
  title: string,
  dir: string,
  start: (nodeArgs: string[]) => Promise<ServerHandle>,
  work: (server: ServerHandle) => Promise<number>,
): Promise<ProfileRecord | undefined> {
  log(`profiling: ${title}`);
  const server = await start(['--cpu-prof', '--cpu-prof-dir', dir]);
  let window: { fromUs: number; toUs: number; requests: number };
  let onCpuCores: number;
  try {
    const fromUs = nowUs();
    const cpuBefore = cpuSecondsOf(server.process.pid);
    const requests = await work(server);
    window = { fromUs, toUs: nowUs(), requests };
    onCpuCores = round3((cpuSecondsOf(server.process.pid) - cpuBefore) / ((window.toUs - window.fromUs) / 1e6));
  } finally {
    // The profile is written when the process exits normally; both servers exit on SIGTERM.
    await server.process.stop(30_000);
  }
  const file = mainProfileIn(dir);
  if (!file) {
    warnings.push(`profile of ${title}: no .cpuprofile written in ${dir}`);
    return undefined;
  }
  return { scenario: title, onCpuCores, summary: summarizeProfile(file, 15, window) };
}

/** Profiles of the service per scenario, and of the baseline for reference. */
async function profiles(driver: LoadDriver, receiver: Receiver): Promise<ProfileRecord[]> {
  const dir = join(projectRoot, 'bench-results', `profiles-${startedAt.toISOString().replace(/[:.]/g, '-')}`);
  const records: ProfileRecord[] = [];
  const add = (record: ProfileRecord | undefined) => record && records.push(record);
  // No warm-up: the window is exactly the measured load, so µs per request is exact.
  const load = async (server: ServerHandle, name: ScenarioName, store: SeededStore) =>
    (await measure(driver, server, { ...job(name, store, sample(store.ids)), warmupSec: 0 }, 1)).result.ok;
  const store = await seedStore(settings.seedWebhooks, { keep: settings.seedWebhooks });
  for (const name of chosenScenarios) {
    const fresh = await seedStore(settings.seedWebhooks);
    add(
      await profile(
        `service, ${scenarios[name].label}`,
        join(dir, `service-${name}`),
        (nodeArgs) => startService('service (profiled)', fresh.dataDir, { ...serviceOptions, nodeArgs }),
        (server) => load(server, name, fresh),
      ),
    );
  }
  for (const name of (['read', 'list'] as const).filter((name) => chosenScenarios.includes(name))) {
    add(
      await profile(
        `baseline, ${scenarios[name].label}`,
        join(dir, `baseline-${name}`),
        (nodeArgs) => startBaseline('baseline (profiled)', store.webhooks, nodeArgs),
        (server) => load(server, name, store),
      ),
    );
  }
  const samples = settings.testDeliverySamples;
  add(
    await profile(
      'service, test delivery',
      join(dir, 'service-test-delivery'),
      (nodeArgs) => startService('service (profiled)', store.dataDir, { ...serviceOptions, nodeArgs }),
      async (server) => {
        await measureTestDelivery(server, store.token, receiver, samples, 50);
        return samples + 50;
      },
    ),
  );
  if (eventsApiInContract()) {
    const empty = await seedEventStore(eventContext(driver, receiver));
    add(
      await profile(
        `service, publish ${settings.events} events and deliver them`,
        join(dir, 'service-events'),
        (nodeArgs) => startService('service (profiled)', empty.dataDir, { ...serviceOptions, nodeArgs }),
        async (server) => {
          const result = await publishAndAwaitDeliveries(eventContext(driver, receiver), server, empty.token);
          if (result.status !== 'measured') warnings.push(`profile of event delivery: ${result.note}`);
          return result.events ?? 0;
        },
      ),
    );
  }
  const [, largeSize] = settings.growthSizes;
  const big = await seedStore(largeSize);
  add(
    await profile(
      `service, read with ${largeSize} webhooks`,
      join(dir, 'service-read-large'),
      (nodeArgs) => startService('service (profiled)', big.dataDir, { ...serviceOptions, nodeArgs }),
      (server) => load(server, 'read', big),
    ),
  );
  return records;
}

async function main(): Promise<void> {
  const compared: Compared[] = [];
  const growth: Growth[] = [];
  const profileRecords: ProfileRecord[] = [];
  let testDelivery: BenchResults['testDelivery'];
  let events: BenchResults['events'];
  let postgresEvents: PostgresEventResults | undefined;

  log(`bench (${settings.mode}): measuring the cost of a SQLite commit; starting the load driver and the receiver`);
  const machineInfo = machine(measureCommitCost());
  const [driver, receiver] = await Promise.all([LoadDriver.start(), Receiver.start()]);

  if (sections.has('ab') || sections.has('delivery')) {
    log(`seeding ${settings.seedWebhooks} webhooks, starting the service and the baseline`);
    const store = await seedStore(settings.seedWebhooks, { keep: settings.seedWebhooks });
    const [service, baseline] = await Promise.all([
      startService('service', store.dataDir, serviceOptions),
      startBaseline('baseline', store.webhooks),
    ]);
    recordMemory('ab', 'service, idle after start', service, settings.seedWebhooks);
    recordMemory('ab', 'baseline (bare Fastify), idle after start', baseline, settings.seedWebhooks);
    const ids = sample(store.ids);

    if (sections.has('ab')) {
      for (const name of chosenScenarios) {
        const scenario = scenarios[name];
        log(`A/B: ${scenario.label}`);
        const [serviceRuns, baselineRuns] = await alternate(driver, name, [
          { server: service, store, ids },
          { server: baseline, store, ids },
        ]);
        const s = side(serviceRuns!);
        const b = side(baselineRuns!);
        compared.push({
          scenario: name,
          label: scenario.label,
          ...(scenario.targetRatio ? { targetRatio: scenario.targetRatio } : {}),
          service: s,
          baseline: b,
          ratio: round(s.reqPerSec / b.reqPerSec, 3),
          roundRatios: s.runs.map((run, i) => round(run.result.reqPerSec / b.runs[i]!.result.reqPerSec, 3)),
        });
      }
      recordMemory('ab', 'service, after the A/B runs', service, countWebhooks(store.dataDir));
      recordMemory('ab', 'baseline (bare Fastify), after the A/B runs', baseline, settings.seedWebhooks);
    }

    if (sections.has('delivery')) {
      log(`test delivery: ${settings.testDeliverySamples} sequential test deliveries`);
      testDelivery = await measureTestDelivery(
        service,
        store.token,
        receiver,
        settings.testDeliverySamples,
        Math.round(settings.testDeliverySamples / 10),
      );
      log(
        `  via service p50 ${testDelivery.viaService.p50} ms, direct p50 ${testDelivery.direct.p50} ms, ` +
          `overhead p50 ${testDelivery.overheadP50Ms} ms, p99 ${testDelivery.overheadP99Ms} ms`,
      );
      if (testDelivery.failures) warnings.push(`test delivery: ${testDelivery.failures} failed; ${testDelivery.firstFailure}`);
    }
    await Promise.all([service.process.stop(), baseline.process.stop()]);
  }

  if (sections.has('growth')) {
    const [smallSize, largeSize] = settings.growthSizes;
    log(`growth: seeding ${smallSize} and ${largeSize} webhooks`);
    const small = await seedStore(smallSize);
    const big = await seedStore(largeSize);
    log(`  seeded in ${small.seedMs} ms and ${big.seedMs} ms; starting both services`);
    const [smallService, largeService] = await Promise.all([
      startService(`service @${smallSize}`, small.dataDir, serviceOptions),
      startService(`service @${largeSize}`, big.dataDir, serviceOptions),
    ]);
    recordMemory('growth', 'service, idle after start', smallService, smallSize);
    recordMemory('growth', 'service, idle after start', largeService, largeSize);
    for (const name of (['read', 'list'] as const).filter((name) => chosenScenarios.includes(name))) {
      log(`growth: ${scenarios[name].label}`);
      const [smallRuns, largeRuns] = await alternate(driver, name, [
        { server: smallService, store: small, ids: sample(small.ids) },
        { server: largeService, store: big, ids: sample(big.ids) },
      ]);
      const s = side(smallRuns!);
      const l = side(largeRuns!);
      growth.push({ scenario: name, label: scenarios[name].label, small: s, large: l, p50Ratio: round(l.p50 / s.p50, 3) });
    }
    recordMemory('growth', 'service, after read and list load', smallService, smallSize);
    recordMemory('growth', 'service, after read and list load', largeService, largeSize);
    await Promise.all([smallService.process.stop(), largeService.process.stop()]);
  }

  if (sections.has('events')) {
    log('event delivery');
    events = await measureEventDelivery(eventContext(driver, receiver), settings.eventRuns, (run, i) => {
      if (run.status === 'measured' && !completeRun(run)) {
        warnings.push(`event delivery, SQLite, run ${i + 1}: ${run.delivered} of ${run.events} delivered, ` +
          `${run.duplicates} duplicates; ${run.note}`);
      }
    });
    log(`  event delivery: ${events.status}: ${events.note}`);
    const postgresUrl = benchPostgresUrl();
    if (!postgresUrl) {
      postgresEvents = { note: 'not measured (set TEST_DATABASE_URL)' };
    } else if (quick && args['postgres-runs'] === undefined) {
      postgresEvents = { note: 'full runs only, or --quick with --postgres-runs N' };
    } else {
      postgresEvents = {};
      // One and two workers alternated, so that the machine's drift falls on both; each side's median run is judged.
      const byWorkers: Record<1 | 2, EventDeliveryResult[]> = { 1: [], 2: [] };
      for (const workers of Array.from({ length: settings.postgresRuns }, () => [1, 2] as const).flat()) {
        const which = workers === 1 ? 'oneWorker' : 'twoWorkers';
        log(`event delivery on PostgreSQL, ${workers} worker${workers === 1 ? '' : 's'}`);
        try {
          const result = await measureEventDeliveryOnPostgres(eventContext(driver, receiver), postgresUrl, workers);
          log(`  ${result.status}: ${result.drain?.deliveriesPerSec ?? '–'} queue drain deliveries/s; ${result.note}`);
          if (result.status !== 'measured' || !result.drain) {
            postgresEvents[which] = result;
            warnings.push(`event delivery on PostgreSQL, ${workers} worker(s): ${result.note}`);
            break;
          }
          if (!completeRun(result)) {
            warnings.push(`event delivery on PostgreSQL, ${workers} worker(s): ${result.delivered} of ${result.events} ` +
              `delivered, ${result.duplicates} duplicates; ${result.note}`);
          }
          byWorkers[workers].push(result);
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          postgresEvents[which] = { status: 'not measured', note: `failed: ${message.slice(0, 500)}` };
          warnings.push(`event delivery on PostgreSQL, ${workers} worker(s) failed: ${message.slice(0, 2_000)}`);
          break;
        }
      }
      const drainRate = (r: EventDeliveryResult) => r.drain!.deliveriesPerSec;
      if (!postgresEvents.oneWorker && byWorkers[1].length) postgresEvents.oneWorker = medianRun(byWorkers[1], drainRate);
      if (!postgresEvents.twoWorkers && byWorkers[2].length) postgresEvents.twoWorkers = medianRun(byWorkers[2], drainRate);
    }
  }

  if (profiling) profileRecords.push(...(await profiles(driver, receiver)));

  await Promise.all([driver.close(), receiver.close()]);

  const finishedAt = new Date();
  const partial = {
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    elapsedSec: Math.round((finishedAt.getTime() - startedAt.getTime()) / 1000),
    machine: machineInfo,
    settings,
    compared,
    ...(testDelivery ? { testDelivery } : {}),
    growth,
    memory,
    ...(events ? { events } : {}),
    ...(postgresEvents ? { postgresEvents } : {}),
    profiles: profileRecords,
    warnings,
  };
  const runs = [...compared.flatMap((c) => [...c.service.runs, ...c.baseline.runs]), ...growth.flatMap((g) => [...g.small.runs, ...g.large.runs])];
  const busy = runs.filter((r) => r.otherCpuCores > 0.3);
  if (busy.length) {
    warnings.unshift(
      `other processes used more than 0.3 cores during ${busy.length} of ${runs.length} runs (up to ` +
        `${Math.max(...busy.map((r) => r.otherCpuCores))} of ${machineInfo.cores} cores): those numbers are low and noisy; ` +
        'compare within a round, or rerun on a quiet machine',
    );
  }
  const results: BenchResults = { ...partial, targets: evaluateTargets(partial) };
  const file = writeResults(results);
  console.log(formatReport(results));
  console.log(`\nresults: ${file.slice(projectRoot.length)}`);
  if (!profiling && results.targets.some((t) => t.met === false)) {
    console.log('a target is missed: `npm run bench -- --profile` adds CPU profiles of the service per scenario');
  }
}

await main();
// Stopped meanwhile (a signal, the watchdog): stopBench exits once its clean-ups are done, with its own code.
if (!isStopping()) process.exit(0);
