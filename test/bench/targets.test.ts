// The bench's verdicts on issue 6's targets: every target gets a row, and a row says met only when the number
// reaches its goal. The bench itself runs in CI as a smoke (`npm run bench -- --quick`); this checks its judging.
import { describe, expect, it } from 'vitest';
import { type EventDeliveryResult, medianRun } from '../../scripts/bench/events.js';
import { type BenchResults, evaluateTargets } from '../../scripts/bench/report.js';

const latency = { count: 1, p50: 1, p99: 1, mean: 1, max: 1 };

function results(events?: EventDeliveryResult): Omit<BenchResults, 'targets'> {
  return {
    command: 'npm run bench',
    startedAt: '2026-12-02T00:00:00.000Z',
    finishedAt: '2026-12-02T00:06:00.000Z',
    elapsedSec: 360,
    machine: {
      cpuModel: 'test',
      cores: 2,
      memoryMb: 1,
      os: 'test',
      node: process.version,
      gitCommit: '',
      gitDirty: false,
      loadAverageAtStart: 0,
    },
    settings: {
      mode: 'full',
      serviceFrom: 'dist',
      connections: 10,
      durationSec: 10,
      warmupSec: 2,
      rounds: 2,
      seedWebhooks: 1_000,
      growthSizes: [1_000, 100_000],
      testDeliverySamples: 2_000,
      events: 10_000,
      eventRuns: 3,
      postgresRuns: 2,
      eventsOtherWebhooks: 10_000,
    },
    compared: [],
    growth: [],
    memory: [],
    ...(events ? { events } : {}),
    profiles: [],
    warnings: [],
  };
}

function sqliteEvents(deliveriesPerSec: number, delivered = 10_000): EventDeliveryResult {
  return {
    status: 'measured',
    note: '',
    events: 10_000,
    delivered,
    duplicates: 0,
    deliveriesPerSec,
    endToEnd: latency,
    cpu: { serviceMsPerEvent: 0.94, serviceCores: 1.1, machineCores: 1.5 },
  };
}

function compared(scenario: 'read' | 'update', service: number[], baseline: number[]): BenchResults['compared'][number] {
  const side = (reqPerSec: number[]) => ({
    reqPerSec: reqPerSec.reduce((a, b) => a + b, 0) / reqPerSec.length,
    p50: 1,
    p99: 1,
    runs: [],
  });
  const s = side(service);
  const b = side(baseline);
  return {
    scenario,
    label: scenario,
    service: s,
    baseline: b,
    ratio: s.reqPerSec / b.reqPerSec,
    roundRatios: service.map((value, i) => value / baseline[i]!),
  };
}

const eventRow = (events?: EventDeliveryResult) =>
  evaluateTargets(results(events)).find((check) => check.target === 'event delivery, SQLite');

describe('the bench targets', () => {
  it('has a row for every target of the issue, unmeasured ones marked so', () => {
    const checks = evaluateTargets(results());
    expect(checks.map((check) => check.target)).toEqual([
      'read req/s vs baseline',
      'list req/s vs baseline',
      'create req/s vs baseline',
      'update req/s vs baseline',
      'test-delivery overhead, p50',
      'read p50 at 100,000 vs 1,000 webhooks',
      'service RSS with 100,000 webhooks',
      'event delivery, SQLite',
      'PostgreSQL: 2 workers faster than 1',
    ]);
    expect(checks.every((check) => check.met === null && check.measured === 'not measured')).toBe(true);
  });

  it('judges a comparison on the ratio of the mean req/s and shows how far the rounds spread', () => {
    const check = (c: BenchResults['compared'][number]) =>
      evaluateTargets({ ...results(), compared: [c] }).find((row) => row.target === `${c.scenario} req/s vs baseline`);
    // Two quiet rounds at 0.9 and one where the baseline ran much faster: 0.77 on the means, missed.
    expect(check(compared('read', [13_500, 13_500, 17_000], [15_000, 15_000, 27_500]))).toEqual({
      target: 'read req/s vs baseline',
      goal: '≥ 0.8 ×',
      measured: '0.77 × (14,667 / 19,167; rounds 0.62–0.9 ×)',
      met: false,
    });
    expect(check(compared('read', [16_000], [20_000]))).toMatchObject({ measured: '0.8 × (16,000 / 20,000)', met: true });
    expect(check(compared('update', [3_000, 3_200], [6_000, 6_500]))?.met).toBe(false);
    expect(check(compared('update', [3_000, 3_400], [6_000, 6_500]))?.met).toBe(true);
  });

  it('judges resident memory from dist/ only: through tsx a process holds about 30 MB more', () => {
    const growth = { section: 'growth' as const, what: 'service, after load' };
    const memory = [
      { ...growth, what: 'service, idle after start', webhooks: 100_000, rssMb: 131.2, peakRssMb: 131.2 },
      { ...growth, webhooks: 100_000, rssMb: 149.6, peakRssMb: 151 },
      { ...growth, webhooks: 1_000, rssMb: 170, peakRssMb: 170 },
      // The A/B service after write load, its store grown past the size by the creates: not this target's state.
      { section: 'ab' as const, what: 'service, after the A/B runs', webhooks: 120_000, rssMb: 210, peakRssMb: 215 },
    ];
    const rss = (serviceFrom: 'dist' | 'tsx', records = memory) =>
      evaluateTargets({ ...results(), settings: { ...results().settings, serviceFrom }, memory: records }).find(
        (check) => check.target === 'service RSS with 100,000 webhooks',
      );
    // The worst growth record at the large size counts; the small store's is not about this target.
    expect(rss('dist')).toMatchObject({ measured: '149.6 MB (dist)', met: true });
    expect(rss('dist', [...memory, { ...memory[1]!, rssMb: 150.1 }])?.met).toBe(false);
    expect(rss('tsx')).toMatchObject({
      measured: '149.6 MB (through tsx, ~30 MB more than from dist/: not judged)',
      met: null,
    });
  });

  it('judges SQLite event delivery against 3,000 deliveries/s', () => {
    expect(eventRow(sqliteEvents(1_204))).toEqual({
      target: 'event delivery, SQLite',
      goal: '≥ 3,000 deliveries/s',
      measured: '1,204/s (10,000 of 10,000 delivered; 0.94 ms service CPU per event)',
      met: false,
    });
    expect(eventRow(sqliteEvents(2_999.6))?.met).toBe(false);
    expect(eventRow(sqliteEvents(3_000))?.met).toBe(true);
  });

  it('judges the median of several event-delivery runs and shows their range', () => {
    // measureEventDelivery answers the median run with every run's rate; the verdict is the median's.
    expect(eventRow({ ...sqliteEvents(2_950), runs: [3_108, 2_950, 2_665] })).toMatchObject({
      measured: '2,950/s, median of 3 runs (2,665–3,108/s) (10,000 of 10,000 delivered; 0.94 ms service CPU per event)',
      met: false,
    });
    expect(eventRow({ ...sqliteEvents(3_010), runs: [2_700, 3_010, 3_200] })?.met).toBe(true);
  });

  it('takes the median run of several, by deliveries/s, keeping every run in the order run', () => {
    const runs = [3_108, 2_665, 2_799].map((rate) => sqliteEvents(rate));
    expect(medianRun(runs)).toMatchObject({ deliveriesPerSec: 2_799, runs: [3_108, 2_665, 2_799] });
    expect(medianRun(runs.slice(0, 2))).toMatchObject({ deliveriesPerSec: 2_665, runs: [3_108, 2_665] });
    expect(medianRun(runs.slice(0, 1))).toEqual(runs[0]);
  });

  it('does not call event delivery met when events went missing', () => {
    const row = eventRow(sqliteEvents(3_500, 9_990));
    expect(row?.met).toBe(false);
    expect(row?.measured).toContain('9,990 of 10,000 delivered');
  });

  it('does not call event delivery met when a delivery came twice, or another run than the median lost one', () => {
    expect(eventRow({ ...sqliteEvents(3_500), duplicates: 2 })).toMatchObject({
      measured: expect.stringContaining('10,000 of 10,000 delivered, 2 twice'),
      met: false,
    });
    // Runs at 3,300, 2,500 (3 events lost) and 3,100/s: the median run is complete and fast, the verdict is not met.
    const runs = [sqliteEvents(3_300), sqliteEvents(2_500, 9_997), sqliteEvents(3_100)];
    const median = medianRun(runs);
    expect(median).toMatchObject({ deliveriesPerSec: 3_100, delivered: 10_000, incompleteRuns: 1 });
    expect(eventRow(median)).toMatchObject({
      measured: expect.stringContaining('median of 3 runs (2,500–3,300/s; 1 incomplete)'),
      met: false,
    });
    expect(eventRow(medianRun([sqliteEvents(3_300), sqliteEvents(3_050), sqliteEvents(3_100)]))?.met).toBe(true);
  });

  it('judges two PostgreSQL workers on the median drain of each side, every run complete and without duplicates', () => {
    const drain = (rate: number, extra: Partial<EventDeliveryResult> = {}): EventDeliveryResult => ({
      ...sqliteEvents(0),
      deliveriesPerSec: undefined,
      drain: { workers: 1, deliveriesPerSec: rate, durationMs: 1, workersReadyMs: 1, readySpreadMs: 0, firstDeliveryAfterReadyMs: 1 },
      ...extra,
    });
    const byDrain = (r: EventDeliveryResult) => r.drain!.deliveriesPerSec;
    const pgRow = (one: EventDeliveryResult[], two: EventDeliveryResult[]) =>
      evaluateTargets({
        ...results(),
        postgresEvents: { oneWorker: medianRun(one, byDrain), twoWorkers: medianRun(two, byDrain) },
      }).find((check) => check.target === 'PostgreSQL: 2 workers faster than 1');
    expect(pgRow([drain(1_000), drain(1_100)], [drain(1_300), drain(1_250)])).toEqual({
      target: 'PostgreSQL: 2 workers faster than 1',
      goal: '2 workers > 1 worker (queue drain)',
      measured: '1,250 vs 1,000 queue drain deliveries/s (1.25 ×; medians of 2 and 2 runs; duplicates 0 / 0)',
      met: true,
    });
    // The lower middle run of each side is the median: 1,000 against 950 here, not met, though one run of two
    // workers was the fastest of all.
    expect(pgRow([drain(1_000), drain(1_100)], [drain(950), drain(1_400)])?.met).toBe(false);
    // Faster, but a delivery came twice in the run not shown.
    const twice = pgRow([drain(1_000), drain(1_100)], [drain(1_300), drain(1_250, { duplicates: 1 })]);
    expect(twice).toMatchObject({ met: false, measured: expect.stringContaining('incomplete runs 1 / 0') });
    expect(pgRow([drain(1_000)], [drain(1_300, { duplicates: 3 })])?.met).toBe(false);
  });

  it('leaves event delivery unjudged when the run did not measure it', () => {
    expect(eventRow({ status: 'not measured', note: 'POST /api/web/v1/events does not exist' })).toMatchObject({
      measured: 'not measured',
      met: null,
    });
  });
});
