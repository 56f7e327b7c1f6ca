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
export function startServe(env: Record<string, string>, timeoutMs = 20_000): Promise<ServeProcess> {
  const child = spawn(process.execPath, [...entry, 'serve'], {
    cwd: root,
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'info', CALLBACK_ALLOWED_CIDRS: '127.0.0.0/8', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`serve did not start in ${timeoutMs} ms:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    const check = () => {
      // Logged after every start-up step, the bootstrap key included, so the token is already printed.
      const ready = /^\{.*"msg":"webhooks-api is ready".*\}$/m.exec(stdout);
      if (ready) {
        clearTimeout(timer);
        const { url } = JSON.parse(ready[0]) as { url: string };
        const token = /^ {2}(whk_\S+)$/m.exec(stdout)?.[1];
        resolve({ child, baseUrl: url, output: () => stdout, ...(token ? { bootstrapToken: token } : {}), exited });
      }
    };
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      check();
    });
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code} before listening:\n${stdout}\n${stderr}`));
    });
  });
}
