// Runs the project's Prism CLI (`prism mock …` or `prism proxy …`) as a child process on a free 127.0.0.1 port:
// resolves once it answers HTTP (bounded poll, no fixed sleep) and stops its whole process group again.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const readyDeadlineMs = 30_000; // Prism starts in ~2 s; a slow CI box gets room, a broken spec still ends the wait
const stopDeadlineMs = 5_000;
const startAttempts = 3; // the free port is only probed, so another process may take it before Prism binds

export interface PrismProcess {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** The tail of what Prism logged, to explain a failure. */
  output(): string;
  /** Stops Prism and everything it forked; resolves once it has exited. Safe to call twice. */
  stop(): Promise<void>;
}

// Process groups still running, killed as a last resort when the test process exits without stopping them (a
// failed hook, an aborted run): Prism runs detached, so nothing else would end it.
const running = new Set<number>();
process.once('exit', () => {
  for (const pgid of running) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

async function stopGroup(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, name);
    } catch {
      // the group is already gone
    }
  };
  signal('SIGTERM');
  const timer = setTimeout(() => signal('SIGKILL'), stopDeadlineMs);
  await exited;
  clearTimeout(timer);
}

async function startOnce(args: readonly string[]): Promise<PrismProcess & { addressInUse(): boolean }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // Its own process group (detached), so stop() reaches Prism and anything it forks (`--multiprocess`) at once.
  const child = spawn(`${root}node_modules/.bin/prism`, [...args, '-h', '127.0.0.1', '-p', String(port)], {
    cwd: root,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid !== undefined) {
    const pgid = child.pid;
    running.add(pgid);
    child.once('exit', () => running.delete(pgid));
  }
  let output = '';
  // Read the logs, or Prism blocks once the pipe fills; keep the tail to explain a failed start.
  const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-20_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let spawnError: Error | undefined;
  child.once('error', (error) => (spawnError = error));
  const prism = {
    url,
    output: () => output,
    stop: () => stopGroup(child),
    addressInUse: () => /EADDRINUSE/.test(output),
  };

  const deadline = Date.now() + readyDeadlineMs;
  while (Date.now() < deadline) {
    if (spawnError) throw new Error(`prism could not be started: ${spawnError.message}`);
    if (child.exitCode !== null || child.signalCode !== null) {
      throw Object.assign(new Error(`prism ${args.join(' ')} exited with ${child.exitCode ?? child.signalCode}:\n${output}`), {
        prism,
      });
    }
    // A path outside the contract is answered by Prism itself (never forwarded upstream nor mocked), with a body
    // no other process on a stolen port would send.
    const answered = await fetch(`${url}/__prism_ready__`).then(
      async (response) => (await response.text()).includes('prism/errors#NO_PATH_MATCHED_ERROR'),
      () => false,
    );
    if (answered) return prism;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await prism.stop();
  throw new Error(`prism ${args.join(' ')} did not answer within ${readyDeadlineMs} ms:\n${output}`);
}

/**
 * Starts `prism <args…> -h 127.0.0.1 -p <free port>` from the project root, e.g.
 * `startPrism(['proxy', 'openapi/webhooks.yaml', upstream, '--errors'])`.
 */
export async function startPrism(args: readonly string[]): Promise<PrismProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      const { addressInUse: _, ...prism } = await startOnce(args);
      return prism;
    } catch (error) {
      const failed = (error as { prism?: { addressInUse(): boolean } }).prism;
      if (attempt >= startAttempts || !failed?.addressInUse()) throw error;
    }
  }
}
