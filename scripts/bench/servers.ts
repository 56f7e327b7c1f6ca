// The two servers under test, each in its own child process on 127.0.0.1:
// - the real service: `webhooks-api serve` from dist/ as `npm start` runs it (or through tsx), SQLite in a temp DATA_DIR, LOG_LEVEL=warn, seeded before it
//   starts with one API key and N webhooks written by the service's own store classes (so the rows are exactly what
//   the service writes), in one transaction;
// - the baseline: scripts/bench/baseline-server.ts, a bare Fastify app answering the same paths from a Map.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import type { Kysely } from 'kysely';
import { generateSecret } from '../../server/delivery/signature.js';
import { callbackUrlKey } from '../../server/http/webhook-params.js';
import { ApiKeyStore } from '../../server/store/api-keys.js';
import { migrateToLatest, openDatabase } from '../../server/store/database.js';
import type { Database } from '../../server/store/schema.js';
import { WebhookStore } from '../../server/store/webhooks.js';
import { loadContract } from './contract.js';
import { freePort, makeTempDir, type NodeChild, projectRoot, spawnNode, waitForHttp } from './processes.js';
import { type LatencySummary, summarize } from './stats.js';

export const benchTenant = 'bench';

/** What the baseline serves and what both answer for a seeded webhook (the contract's Webhook, no secret). */
export interface SeedWebhook {
  id: string;
  callbackUrl: string;
  events: string[];
  description?: string;
  enabled: boolean;
  headers: Record<string, string>;
  createdAt: string;
  updatedAt: string;
}

export interface SeededStore {
  dataDir: string;
  token: string;
  /** Ids of every seeded webhook, in creation order. */
  ids: string[];
  /** The first `keepWebhooks` webhooks as the API shows them (for the baseline). */
  webhooks: SeedWebhook[];
  seedMs: number;
}

/** Every permission the contract names (EVENTS:PUBLISH included once it is there): the bench key gets them all. */
export function contractScopes(): string[] {
  const scopes = new Set<string>();
  for (const item of Object.values(loadContract().paths)) {
    for (const operation of Object.values(item) as { security?: Record<string, string[]>[] }[]) {
      for (const requirement of operation.security ?? []) for (const scope of requirement.bearerAuth ?? []) scopes.add(scope);
    }
  }
  return [...scopes].sort();
}

const seedEvents = ['order.created', 'order.paid', 'customer.*'];

export interface SeedOptions {
  /** How many of the webhooks to return in full (for the baseline's map). */
  keep?: number;
  /** Seed a PostgreSQL database instead of SQLite in the DATA_DIR. */
  databaseUrl?: string;
  /** The tenant the webhooks belong to (the API key is always the bench tenant's). */
  tenant?: string;
}

/**
 * A fresh DATA_DIR holding one API key for the bench tenant and `count` webhooks, written through the service's own
 * ApiKeyStore and WebhookStore inside one transaction (100,000 single commits would cost 100,000 fsyncs).
 */
export async function seedStore(
  count: number,
  { keep: keepWebhooks = 0, databaseUrl, tenant = benchTenant }: SeedOptions = {},
): Promise<SeededStore> {
  const started = performance.now();
  const dataDir = makeTempDir(`store-${count}`);
  const db = openDatabase(databaseUrl ? { dataDir, databaseUrl } : { dataDir });
  try {
    await migrateToLatest(db);
    const { token } = await new ApiKeyStore(db).create(benchTenant, contractScopes());
    const ids: string[] = [];
    const webhooks: SeedWebhook[] = [];
    await db.transaction().execute(async (tx) => {
      const store = new WebhookStore(tx as Kysely<Database>);
      for (let i = 0; i < count; i++) {
        const callbackUrl = `https://seed-${i}.bench.example.com/hooks/orders`;
        const record = await store.create(
          tenant,
          {
            callbackUrl,
            callbackUrlKey: callbackUrlKey(new URL(callbackUrl)),
            events: seedEvents,
            description: `Seeded webhook ${i}`,
            enabled: true,
            headers: { 'X-Bench-Seq': String(i) },
          },
          generateSecret(),
        );
        ids.push(record.id);
        if (i < keepWebhooks) {
          webhooks.push({
            id: record.id,
            callbackUrl: record.callbackUrl,
            events: record.events,
            ...(record.description !== undefined ? { description: record.description } : {}),
            enabled: record.enabled,
            headers: record.headers,
            createdAt: record.createdAt,
            updatedAt: record.updatedAt,
          });
        }
      }
    });
    return { dataDir, token, ids, webhooks, seedMs: Math.round(performance.now() - started) };
  } finally {
    await db.destroy();
  }
}

export interface ServerHandle {
  name: string;
  url: string;
  process: NodeChild;
}

export interface ServiceOptions {
  /** Node flags for the service process, e.g. ['--cpu-prof', '--cpu-prof-dir', dir]. */
  nodeArgs?: string[];
  /** Run dist/server/main.js (built by buildDist) instead of server/main.ts through tsx. */
  dist?: boolean;
  startTimeoutMs?: number;
  /** Environment over the bench's defaults, e.g. DATABASE_URL and DELIVERY_WORKER for the PostgreSQL runs. */
  env?: Record<string, string>;
}

export const distEntry = 'dist/server/main.js';

/** Compiles the service into dist/ (`npm run build`), so that what runs is the code in the tree; exits on failure. */
export function buildDist(): void {
  process.stderr.write(`bench: building ${distEntry} (tsc -p tsconfig.build.json)\n`);
  const tsc = join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc');
  const build = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], {
    cwd: projectRoot,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (build.status !== 0) {
    process.stderr.write(`${build.stdout}${build.stderr}${build.error ? `${build.error.message}\n` : ''}`);
    process.stderr.write('bench: the build failed; fix it, or measure the sources with --tsx\n');
    process.exit(2);
  }
}

/** Starts `webhooks-api serve` (tsx, no build; or dist/) over `dataDir`; resolves once /healthz answers 200. */
export async function startService(name: string, dataDir: string, options: ServiceOptions = {}): Promise<ServerHandle> {
  const port = await freePort();
  const child = spawnNode(options.dist ? distEntry : 'server/main.ts', ['serve'], {
    ...(options.nodeArgs ? { nodeArgs: options.nodeArgs } : {}),
    tsx: !options.dist,
    env: { ...serviceEnv(dataDir), HOST: '127.0.0.1', PORT: String(port), ...options.env },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/healthz`, child, options.startTimeoutMs ?? 30_000);
  return { name, url, process: child };
}

/**
 * Starts `webhooks-api worker` (the delivery worker alone) with the same environment as the service, at
 * LOG_LEVEL=info (the worker logs nothing else at info) so that its "worker is ready" line can be awaited: it has
 * no HTTP port to poll. Resolves once that line appears; fails when the process exits first or after timeoutMs.
 */
export async function startWorker(dataDir: string, options: ServiceOptions = {}): Promise<NodeChild> {
  const child = spawnNode(options.dist ? distEntry : 'server/main.ts', ['worker'], {
    ...(options.nodeArgs ? { nodeArgs: options.nodeArgs } : {}),
    tsx: !options.dist,
    env: { ...serviceEnv(dataDir), ...options.env, LOG_LEVEL: 'info' },
  });
  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
  let exitCode: number | null | undefined;
  void child.exited.then((code) => (exitCode = code));
  while (!child.output().includes('webhooks-api worker is ready')) {
    if (exitCode !== undefined) throw new Error(`the worker exited with ${exitCode}:\n${child.output()}`);
    if (Date.now() > deadline) {
      await child.stop(1_000);
      throw new Error(`the worker was not ready within ${options.startTimeoutMs ?? 30_000} ms:\n${child.output()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return child;
}

/** The environment every service and worker process of the bench gets before its own overrides. */
function serviceEnv(dataDir: string): Record<string, string> {
  return {
    DATA_DIR: dataDir,
    // Nothing inherited may switch the store, auth or CORS set-up away from the defaults measured here.
    DATABASE_URL: '',
    JWT_PUBLIC_KEY_FILE: '',
    JWT_JWKS_FILE: '',
    JWT_ISSUER: '',
    JWT_AUDIENCE: '',
    JWT_TENANT_CLAIM: '',
    CORS_ORIGINS: '',
    // The service delivers events itself (the default); the PostgreSQL runs with separate workers turn this off.
    DELIVERY_WORKER: 'true',
    // warn: request logging off, as in production. The "ready" line is info, so readiness is polled below.
    LOG_LEVEL: 'warn',
    WEBHOOKS_BOOTSTRAP_KEY: 'false',
    // The test-delivery and event receivers listen on loopback.
    CALLBACK_ALLOWED_CIDRS: '127.0.0.0/8',
  };
}

/** Starts the bare-Fastify baseline serving `webhooks` from memory. */
export async function startBaseline(name: string, webhooks: SeedWebhook[], nodeArgs: string[] = []): Promise<ServerHandle> {
  const dir = makeTempDir('baseline');
  const seedFile = join(dir, 'seed.json');
  writeFileSync(seedFile, JSON.stringify(webhooks));
  const port = await freePort();
  const child = spawnNode('scripts/bench/baseline-server.ts', [], {
    nodeArgs,
    env: { HOST: '127.0.0.1', PORT: String(port), BENCH_SEED_FILE: seedFile },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/healthz`, child, 30_000);
  return { name, url, process: child };
}

/**
 * What one SQLite commit costs on the disk the stores live on, in WAL mode: with synchronous=FULL (the commit and
 * the sync of the log, which is what an answered write waits for) and with synchronous=NORMAL (the commit alone:
 * what the service's event loop is held for, since it syncs the log off the loop; server/store/wal-sync.ts).
 */
export function measureCommitCost(commits = 200): { full: LatencySummary; normal: LatencySummary } {
  const dir = makeTempDir('fsync');
  const run = (synchronous: 'FULL' | 'NORMAL') => {
    const db = new SQLite(join(dir, `commit-${synchronous}.db`));
    try {
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${synchronous}`);
      db.exec('create table t (id integer primary key, v text not null)');
      const insert = db.prepare('insert into t (v) values (?)');
      const times: number[] = [];
      for (let i = 0; i < commits; i++) {
        const started = performance.now();
        insert.run('x'.repeat(400));
        times.push(performance.now() - started);
      }
      return summarize(times);
    } finally {
      db.close();
    }
  };
  return { full: run('FULL'), normal: run('NORMAL') };
}
