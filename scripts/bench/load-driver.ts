// The load driver: a child process (started by load.ts) that runs autocannon jobs sent over IPC and answers with
// requests/s and exact latency percentiles. Nothing else runs on its event loop.
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type { DriverMessage, DriverRequest, LoadJob, LoadResult } from './load.js';
import { type LoadRequest, scenarios } from './scenarios.js';
import { Samples, summarize } from './stats.js';

// autocannon ships no types; this is the part of its API used here (README of autocannon 9).
interface AutocannonOptions {
  url: string;
  connections: number;
  duration?: number;
  amount?: number;
  /** Milliseconds between samples; the end of `duration` is noticed only at a sample. */
  sampleInt?: number;
  timeout: number;
  headers: Record<string, string>;
  requests: LoadRequest[];
}
interface AutocannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  statusCodeStats: Record<string, { count: number }>;
}
interface AutocannonInstance {
  on(event: 'response', listener: (client: unknown, status: number, bytes: number, ms: number) => void): void;
  stop(): void;
}
type Autocannon = (
  options: AutocannonOptions,
  done: (error: Error | null, result: AutocannonResult) => void,
) => AutocannonInstance;

const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

let current: AutocannonInstance | undefined;
/** The job `current` belongs to, and the jobs the bench gave up on (they stop, and run no further part). */
let currentJob: number | undefined;
const cancelled = new Set<number>();

function reply(message: DriverMessage): void {
  process.send?.(message);
}

async function runOnce(job: LoadJob, seconds: number, captureFailure: boolean): Promise<LoadResult> {
  const scenario = scenarios[job.scenario];
  const latencies = new Samples();
  let ok = 0;
  let firstFailure: string | undefined;
  const requests = scenario.requests({ ids: job.ids, tag: randomBytes(4).toString('hex') });
  if (captureFailure) {
    // Reading bodies costs; only the warm-up does it, to explain a non-2xx answer.
    for (const request of requests) {
      (request as LoadRequest & { onResponse: (status: number, body: string) => void }).onResponse = (status, body) => {
        if ((status < 200 || status > 299) && firstFailure === undefined) firstFailure = `${status} ${body.slice(0, 500)}`;
      };
    }
  }
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const result = await new Promise<AutocannonResult>((resolve, reject) => {
    current = autocannon(
      {
        url: job.url,
        connections: job.connections,
        ...(job.amount ? { amount: job.amount } : { duration: seconds }),
        // autocannon checks for the end of the duration once per sample, by default once a second: 1.5 s ran for 2
        // and a 0.5 s warm-up for 1. The bench counts answers and latencies itself and uses none of the samples.
        sampleInt: 100,
        timeout: 10,
        headers: { authorization: `Bearer ${job.token}` },
        requests,
      },
      (error, output) => (error ? reject(error) : resolve(output)),
    );
    current.on('response', (_client, status, _bytes, ms) => {
      if (status >= 200 && status < 300) {
        ok++;
        latencies.push(ms);
      }
    });
  });
  current = undefined;
  const wallSec = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const statusCodes = Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, s]) => [code, s.count]));
  return {
    scenario: job.scenario,
    url: job.url,
    connections: job.connections,
    durationSec: Math.round(wallSec * 100) / 100,
    ok,
    reqPerSec: Math.round(ok / wallSec),
    latency: summarize(latencies.values()),
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes,
    ...(firstFailure !== undefined ? { firstFailure } : {}),
    driverCpuCores: Math.round(((cpu.user + cpu.system) / 1e6 / wallSec) * 100) / 100,
  };
}

async function run(id: number, job: LoadJob): Promise<LoadResult> {
  let failure: string | undefined;
  currentJob = id;
  if (job.warmupSec > 0 && !job.amount) failure = (await runOnce(job, job.warmupSec, true)).firstFailure;
  if (cancelled.has(id)) throw new Error('cancelled');
  const result = await runOnce(job, job.durationSec, job.amount !== undefined);
  const firstFailure = failure ?? result.firstFailure;
  return { ...result, ...(firstFailure !== undefined ? { firstFailure } : {}) };
}

process.on('message', (message: DriverRequest) => {
  if (message.type === 'cancel') {
    cancelled.add(message.id);
    if (currentJob === message.id) current?.stop();
    return;
  }
  const { id } = message;
  run(id, message.job)
    .then(
      (result) => reply({ type: 'result', id, result }),
      (error: unknown) => reply({ type: 'error', id, message: error instanceof Error ? error.message : String(error) }),
    )
    .finally(() => {
      if (currentJob === id) currentJob = undefined;
      cancelled.delete(id);
    });
});
// The bench went away (ended, crashed, killed): stop at once.
process.on('disconnect', () => {
  current?.stop();
  process.exit(0);
});
reply({ type: 'ready' });
