// The bench's side of the load driver: the driver (load-driver.ts) runs autocannon in its own child process, so
// the load generator never shares an event loop with a server under test (nor with the bench's receiver). Jobs
// and results travel over the IPC channel.
import type { ScenarioName } from './scenarios.js';
import { type NodeChild, spawnNode } from './processes.js';
import type { LatencySummary } from './stats.js';

export interface LoadJob {
  /** Origin of the server under test, http://127.0.0.1:PORT. */
  url: string;
  scenario: ScenarioName;
  /** Sent as `Authorization: Bearer …` to every target (the baseline ignores it), so requests are the same size. */
  token: string;
  ids: string[];
  connections: number;
  /** Measured seconds; ignored when `amount` is set. */
  durationSec: number;
  /** Seconds of the same load before measuring (JIT, connection set-up, caches); its numbers are dropped. */
  warmupSec: number;
  /** A fixed number of requests instead of a duration (the event scenario). */
  amount?: number;
}

export interface LoadResult {
  scenario: ScenarioName;
  url: string;
  connections: number;
  durationSec: number;
  /** 2xx answers. */
  ok: number;
  reqPerSec: number;
  /** Milliseconds, 2xx answers only, exact (not autocannon's whole-millisecond histogram). */
  latency: LatencySummary;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  /** First non-2xx answer of the warm-up, to say why. */
  firstFailure?: string;
  /** CPU the driver used, in cores (1 = one core busy for the whole run). */
  driverCpuCores: number;
}

export type DriverMessage =
  | { type: 'ready' }
  | { type: 'result'; id: number; result: LoadResult }
  | { type: 'error'; id: number; message: string };

/** `cancel` stops a job the bench gave up on, so that it does not keep loading a server (or a dead port). */
export type DriverRequest = { type: 'run'; id: number; job: LoadJob } | { type: 'cancel'; id: number };

export class LoadDriver {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: LoadResult) => void; reject: (e: Error) => void }>();

  private constructor(private readonly child: NodeChild) {
    child.child.on('message', (message: DriverMessage) => {
      if (message.type === 'ready') return;
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.type === 'result') waiter.resolve(message.result);
      else waiter.reject(new Error(`load driver: ${message.message}`));
    });
    void child.exited.then((code) => {
      for (const waiter of this.pending.values()) {
        waiter.reject(new Error(`the load driver exited with ${code}:\n${child.output()}`));
      }
      this.pending.clear();
    });
  }

  static async start(): Promise<LoadDriver> {
    const child = spawnNode('scripts/bench/load-driver.ts', [], { ipc: true, env: {} });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the load driver did not start:\n${child.output()}`)), 30_000);
      child.child.once('message', () => {
        clearTimeout(timer);
        resolve();
      });
      void child.exited.then((code) => reject(new Error(`the load driver exited with ${code}:\n${child.output()}`)));
    });
    return new LoadDriver(child);
  }

  get pid(): number {
    return this.child.pid;
  }

  /**
   * Runs one job; bounded by its own duration plus a margin (and 10 ms a request for a job of a fixed number of
   * requests: at 100 requests/s something is wrong). A job that overruns is stopped in the driver too.
   */
  run(
    job: LoadJob,
    timeoutMs = (job.warmupSec + job.durationSec) * 1000 + 60_000 + (job.amount ?? 0) * 10,
  ): Promise<LoadResult> {
    const id = this.nextId++;
    return new Promise<LoadResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        const cancel: DriverRequest = { type: 'cancel', id };
        if (this.child.child.connected) this.child.child.send(cancel);
        reject(new Error(`load job ${job.scenario} on ${job.url} did not finish in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (result) => {
          clearTimeout(timer);
          resolve(result);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      const request: DriverRequest = { type: 'run', id, job };
      this.child.child.send(request);
    });
  }

  async close(): Promise<void> {
    await this.child.stop(2_000);
  }
}
