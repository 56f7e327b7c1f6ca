// Child processes of the bench: every one is registered here so that a normal end, an error, Ctrl-C or SIGTERM
// stops them all, and temp folders are removed. Also the small /proc readers (RSS, CPU time) and port helpers.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = fileURLToPath(new URL('../..', import.meta.url));

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

const isRunning = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

/** Kills every child still running, by its own pid (never by name). Synchronous, so it works in 'exit'. */
export function killAllChildren(signal: NodeJS.Signals = 'SIGKILL'): void {
  for (const child of children) {
    if (isRunning(child)) {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
    }
  }
}

export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `webhooks-bench-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

function removeTempDirs(): void {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

let stopping = false;

/** Clean-ups that need I/O (a PostgreSQL schema to drop), by what they do, for the message when one cannot finish. */
const asyncCleanups = new Map<() => Promise<void>, string>();

/**
 * Registers clean-up that needs I/O, run also when the bench is stopped early (a signal, the time budget, an
 * uncaught error). `what` names it in a message if it cannot finish. Returns the function that unregisters it,
 * for when it ran normally. Once the bench is stopping it refuses, so nothing new is started that the stop misses.
 */
export function onStop(what: string, cleanup: () => Promise<void>): () => void {
  if (stopping) throw new Error('the bench is stopping');
  asyncCleanups.set(cleanup, what);
  return () => asyncCleanups.delete(cleanup);
}

/** Longest the early stop waits for the registered clean-ups before it exits anyway. */
const cleanupBoundMs = 10_000;

/** True once stopBench ran: the bench's own flow must not end the process with its normal exit code then. */
export const isStopping = () => stopping;

/**
 * Ends the bench early with `code`: kills the children (whose connections would hold locks a clean-up waits for),
 * runs the registered clean-ups (bounded by cleanupBoundMs; the timer holds the process until then), then exits;
 * 'exit' removes the temp folders. What did not finish in time is named.
 */
export function stopBench(code: number): void {
  if (stopping) return;
  stopping = true;
  killAllChildren('SIGKILL');
  const unfinished = new Set(asyncCleanups.values());
  const cleanups = [...asyncCleanups].map(([cleanup, what]) =>
    Promise.resolve()
      .then(cleanup)
      .catch((error: unknown) =>
        process.stderr.write(`bench: could not ${what}: ${error instanceof Error ? error.message : String(error)}\n`),
      )
      .finally(() => unfinished.delete(what)),
  );
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, cleanupBoundMs)));
  void Promise.race([Promise.all(cleanups), bound]).then(() => {
    clearTimeout(timer);
    // Those that failed said so already; these were still running.
    for (const what of unfinished) process.stderr.write(`bench: did not ${what} within ${cleanupBoundMs / 1000} s\n`);
    process.exit(code);
  });
}

let installed = false;

/** Makes sure children, temp folders and registered clean-ups go away however the bench ends. Call once, first. */
export function installCleanup(): void {
  if (installed) return;
  installed = true;
  process.once('exit', () => {
    killAllChildren('SIGKILL');
    removeTempDirs();
  });
  const exitCodes = { SIGINT: 130, SIGHUP: 129, SIGTERM: 143 } as const;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal} received, stopping ${children.size} child process(es)\n`);
      stopBench(exitCodes[signal]);
    });
  }
  process.on('uncaughtException', (error) => {
    if (stopping) return;
    process.stderr.write(`bench: failed: ${error.stack ?? String(error)}\n`);
    stopBench(1);
  });
  process.on('unhandledRejection', (error) => {
    // While stopping, the bench's own flow fails as its children die: that is not news.
    if (stopping) return;
    process.stderr.write(`bench: failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    stopBench(1);
  });
}

export interface NodeChild {
  child: ChildProcess;
  pid: number;
  /** The last 64 KiB the child printed (stdout and stderr), for error messages. */
  output(): string;
  exited: Promise<number | null>;
  /** Throws, naming how the process ended and what it printed, when it is no longer running. */
  assertRunning(name: string): void;
  /** SIGTERM, then SIGKILL after graceMs; resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
}

export interface SpawnNodeOptions {
  /** Arguments for node itself, before `--import tsx` (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** Run the entry through tsx (default); false for compiled JavaScript (dist/). */
  tsx?: boolean;
  env: Record<string, string>;
  /** Adds an IPC channel (child.send / process.send). */
  ipc?: boolean;
}

/** Runs a TypeScript entry (path relative to the project root) in its own Node process through tsx. */
export function spawnNode(entry: string, args: string[], options: SpawnNodeOptions): NodeChild {
  // Started after killAllChildren, a child would outlive the stop.
  if (stopping) throw new Error(`the bench is stopping; not starting ${entry}`);
  const loader = options.tsx === false ? [] : ['--import', 'tsx'];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...loader, entry, ...args], {
    cwd: projectRoot,
    env: { ...process.env, ...options.env },
    stdio: options.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start ${entry}`);
  children.add(child);
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-65_536);
  };
  // Always drained: a child blocks once a pipe nobody reads is full.
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  const pid = child.pid;
  return {
    child,
    pid,
    output: () => output,
    exited,
    assertRunning(name) {
      if (!isRunning(child)) {
        const how = child.signalCode ? `was killed by ${child.signalCode}` : `exited with ${child.exitCode}`;
        throw new Error(`${name} (pid ${pid}) ${how} during the bench:\n${output.slice(-4_000)}`);
      }
    },
    async stop(graceMs = 10_000) {
      if (isRunning(child)) child.kill('SIGTERM');
      const timer = setTimeout(() => isRunning(child) && child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** A TCP port free on 127.0.0.1 right now (the service cannot report its port at LOG_LEVEL=warn). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

/** Polls `url` until it answers 200; fails when the child exits first or after timeoutMs. */
export async function waitForHttp(url: string, child: NodeChild, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exitCode: number | null | undefined;
  void child.exited.then((code) => (exitCode = code));
  for (;;) {
    if (exitCode !== undefined) throw new Error(`${url}: the process exited with ${exitCode}:\n${child.output()}`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      await response.arrayBuffer();
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await child.stop(1_000);
      throw new Error(`${url} did not answer 200 within ${timeoutMs} ms:\n${child.output()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export interface MemorySample {
  /** VmRSS: resident now, MB. */
  rssMb: number;
  /** VmHWM: the highest resident size so far, MB. */
  peakRssMb: number;
}

/** Resident memory of a process from /proc/<pid>/status. */
export function memoryOf(pid: number): MemorySample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMb: round(kb('VmRSS') / 1024, 1), peakRssMb: round(kb('VmHWM') / 1024, 1) };
}

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat (clock ticks of 1/100 s on Linux). */
export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which is in parentheses and may hold spaces): state is field 3, utime 14.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * CPU seconds the whole machine spent busy (all cores, every process), from /proc/stat. Steal (time the hypervisor
 * gave our virtual cores to other machines) is left out: no process here used it.
 */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  // cpu user nice system idle iowait irq softirq steal …
  const [user, nice, system, , , irq, softirq] = line.trim().split(/\s+/).slice(1).map(Number);
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0)) / 100;
}

export const round = (value: number, digits = 2) => {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
};
