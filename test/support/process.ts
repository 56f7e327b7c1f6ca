// Runs `webhooks-api` as a real child process (through tsx, so no build is needed) and reads what it prints.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const entry = ['--import', 'tsx', 'server/main.ts'];

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: Record<string, string>): CliResult {
  const result = spawnSync(process.execPath, [...entry, ...args], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

export interface ServeProcess {
  child: ChildProcess;
  baseUrl: string;
  /** Everything printed on stdout so far. */
  output(): string;
  /** The bootstrap key's token, when one was printed. */
  bootstrapToken?: string;
  exited: Promise<number | null>;
}

/** Starts `serve` on a free port and resolves once it listens (bounded by timeoutMs). */
export async function startServe(env: Record<string, string>, timeoutMs = 20_000): Promise<ServeProcess> {
  const started = await spawnUntilReady(
    'serve',
    { PORT: '0', LOG_LEVEL: 'info', CALLBACK_ALLOWED_CIDRS: '127.0.0.0/8', ...env },
    /^\{.*"msg":"webhooks-api is ready".*\}$/m,
    timeoutMs,
  );
  const { url } = JSON.parse(started.readyLine) as { url: string };
  // Logged after every start-up step, the bootstrap key included, so the token is already printed.
  const token = /^ {2}(whk_\S+)$/m.exec(started.output())?.[1];
  return {
    child: started.child,
    baseUrl: url,
    output: started.output,
    ...(token ? { bootstrapToken: token } : {}),
    exited: started.exited,
  };
}

export interface WorkerProcess {
  child: ChildProcess;
  /** Everything printed on stdout so far. */
  output(): string;
  exited: Promise<number | null>;
}

/** Starts `worker` (the delivery worker alone) and resolves once it says it is ready (bounded by timeoutMs). */
export async function startWorker(env: Record<string, string>, timeoutMs = 20_000): Promise<WorkerProcess> {
  const started = await spawnUntilReady(
    'worker',
    { LOG_LEVEL: 'info', CALLBACK_ALLOWED_CIDRS: '127.0.0.0/8', ...env },
    /^\{.*"msg":"webhooks-api worker is ready".*\}$/m,
    timeoutMs,
  );
  return { child: started.child, output: started.output, exited: started.exited };
}

interface Started {
  child: ChildProcess;
  readyLine: string;
  output(): string;
  exited: Promise<number | null>;
}

function spawnUntilReady(
  command: string,
  env: Record<string, string>,
  readyLine: RegExp,
  timeoutMs: number,
): Promise<Started> {
  const child = spawn(process.execPath, [...entry, command], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let ready = false;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} did not start in ${timeoutMs} ms:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      // Once ready, stop scanning: a busy server logs every request, and rescanning all of it is quadratic.
      if (ready) return;
      const line = readyLine.exec(stdout);
      if (line) {
        ready = true;
        clearTimeout(timer);
        resolve({ child, readyLine: line[0], output: () => stdout, exited });
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${command} exited with ${code} before it was ready:\n${stdout}\n${stderr}`));
    });
  });
}
