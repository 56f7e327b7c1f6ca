// The `webhooks-api` command line: serve (what `npm start` runs), migrate, and API key management.
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { buildApp, createSender, createWorker } from './app.js';
import { type Config, ConfigError, loadConfig, parseDuration } from './config.js';
import { contractPermissions } from './contract.js';
import { ApiKeyStore } from './store/api-keys.js';
import { migrateToLatest, openDatabase } from './store/database.js';
import { DeliveryStore } from './store/deliveries.js';
import { WebhookStore } from './store/webhooks.js';

const usage = `Usage: webhooks-api <command>

Commands:
  serve                      run the service (configuration from environment variables; see README)
  migrate                    apply database migrations and exit
  keys create --tenant T --permissions P1,P2 [--expires-in 30d] [--json]
                             make an API key; its token is printed once
  keys list [--tenant T] [--json]
  keys revoke ID
  worker                     run only the delivery worker (scale out on PostgreSQL; serve runs one too
                             unless DELIVERY_WORKER=false)

Permissions: ${contractPermissions.join(', ')}`;

class UsageError extends Error {}

async function withStore<T>(config: Config, work: (keys: ApiKeyStore) => Promise<T>): Promise<T> {
  const db = openDatabase(config);
  try {
    await migrateToLatest(db);
    return await work(new ApiKeyStore(db));
  } finally {
    await db.destroy();
  }
}

function expiresIn(text: string): number {
  const ms = /[smhd]$/.test(text) ? parseDuration(text) : undefined;
  if (!ms) throw new UsageError(`--expires-in takes a number and a unit (s, m, h or d), like 30d, not "${text}"`);
  return ms;
}

function parsePermissions(text: string | undefined): string[] {
  const permissions = (text ?? '').split(',').map((p) => p.trim()).filter(Boolean);
  if (permissions.length === 0) throw new UsageError('--permissions is required, e.g. --permissions WEBHOOKS:VIEW');
  const unknown = permissions.filter((p) => !contractPermissions.includes(p));
  if (unknown.length > 0) {
    throw new UsageError(`unknown permission ${unknown.join(', ')}; known: ${contractPermissions.join(', ')}`);
  }
  return [...new Set(permissions)];
}

async function keys(config: Config, args: string[]): Promise<void> {
  const [action, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      tenant: { type: 'string' },
      permissions: { type: 'string' },
      'expires-in': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  if (action === 'create') {
    if (!values.tenant) throw new UsageError('keys create needs --tenant');
    const permissions = parsePermissions(values.permissions);
    const expiresAt = values['expires-in'] ? new Date(Date.now() + expiresIn(values['expires-in'])) : undefined;
    const key = await withStore(config, (store) => store.create(values.tenant!, permissions, expiresAt));
    if (values.json) console.log(JSON.stringify(key));
    else {
      console.log(`API key ${key.id} for tenant "${key.tenant}" with ${key.permissions.join(', ')}`);
      if (key.expiresAt) console.log(`expires ${key.expiresAt}`);
      console.log(`token (shown once): ${key.token}`);
    }
  } else if (action === 'list') {
    const list = await withStore(config, (store) => store.list(values.tenant));
    if (values.json) console.log(JSON.stringify(list));
    else {
      for (const key of list) {
        const state = key.revokedAt ? `revoked ${key.revokedAt}` : key.expiresAt ? `expires ${key.expiresAt}` : 'active';
        console.log(`${key.id}  ${key.tokenPrefix}…  ${key.tenant}  ${key.permissions.join(',')}  ${state}`);
      }
    }
  } else if (action === 'revoke') {
    const id = positionals[0];
    if (!id) throw new UsageError('keys revoke needs the key id (see keys list)');
    const revoked = await withStore(config, (store) => store.revoke(id));
    if (!revoked) throw new UsageError(`no active API key with id ${id}`);
    console.log(`revoked ${id}; running services stop accepting it within ${config.apiKeyCacheTtlMs / 1000} s`);
  } else {
    throw new UsageError(`unknown keys command "${action ?? ''}"`);
  }
}

async function bootstrapKey(config: Config, store: ApiKeyStore, address: string): Promise<void> {
  if (!config.bootstrapKey) return;
  const permissions = [...contractPermissions];
  // One key between all processes starting at once on an empty store; none when any key exists.
  const key = await store.createFirst('default', permissions);
  if (!key) return;
  // Printed, not logged: the token must not end up in log storage.
  process.stdout.write(
    `\nNo API key existed, so one was made for tenant "default" with ${permissions.join(', ')}.\n` +
      `It is shown only this once:\n\n  ${key.token}\n\nTry it:\n\n` +
      `  curl -H 'Authorization: Bearer ${key.token}' ${address}/api/web/v1/webhooks\n\n` +
      `(Make more with \`webhooks-api keys create\`; set WEBHOOKS_BOOTSTRAP_KEY=false to skip this.)\n\n`,
  );
}

async function serve(config: Config): Promise<void> {
  const app = await buildApp(config);
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down: finishing requests in flight');
    await app.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  const address = await app.listen({ host: config.host, port: config.port });
  await bootstrapKey(config, new ApiKeyStore(app.db), address);
  app.log.info({ url: address }, 'webhooks-api is ready');
}

/** The delivery worker alone, without the HTTP API: more of them share the work on PostgreSQL. */
async function worker(config: Config): Promise<void> {
  const log = pino({ level: config.logLevel });
  const db = openDatabase(config, { log });
  await migrateToLatest(db);
  const sender = createSender(config);
  const deliveryWorker = createWorker(config, {
    db,
    webhooks: new WebhookStore(db),
    deliveries: new DeliveryStore(db),
    sender,
    log,
  });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'worker stopping: finishing deliveries in flight');
    await deliveryWorker.stop();
    await sender.close();
    await db.destroy();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  deliveryWorker.start();
  log.info('webhooks-api worker is ready');
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  const config = loadConfig();
  switch (command) {
    case 'serve':
      return serve(config);
    case 'migrate': {
      const db = openDatabase(config);
      try {
        const applied = await migrateToLatest(db);
        console.log(applied.length > 0 ? `applied ${applied.join(', ')}` : 'database is up to date');
      } finally {
        await db.destroy();
      }
      return;
    }
    case 'keys':
      return keys(config, rest);
    case 'worker':
      return worker(config);
    case 'help':
    case '--help':
    case undefined:
      console.log(usage);
      return;
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof ConfigError || error instanceof UsageError) {
    console.error(`webhooks-api: ${error.message}`);
    if (error instanceof UsageError) console.error('Run `webhooks-api help` for usage.');
    process.exit(2);
  }
  console.error('webhooks-api: failed:', error);
  process.exit(1);
});
