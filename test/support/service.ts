// Starts the real service on 127.0.0.1 (port 0) over a fresh store, with helpers to make API keys and clients.
import { buildApp } from '../../server/app.js';
import { loadConfig } from '../../server/config.js';
import { ApiKeyStore } from '../../server/store/api-keys.js';
import { expect } from 'vitest';
import { createWebhooksClient, type WebhookParms } from '../../client/index.js';
import type { FastifyInstance } from 'fastify';
import { type Backend, backends, type StoreSetup } from './backends.js';

export const allPermissions = ['WEBHOOKS:VIEW', 'WEBHOOKS:ADD', 'WEBHOOKS:EDIT', 'WEBHOOKS:REMOVE'];

export interface TestService {
  baseUrl: string;
  app: FastifyInstance;
  /** The store it runs on; pass it as `options.store` to start a second instance over the same data. */
  store: StoreSetup;
  /** A fresh API key token for the tenant with the permissions (all WEBHOOKS ones by default). */
  token(tenant?: string, permissions?: string[]): Promise<string>;
  client(token: string): ReturnType<typeof createWebhooksClient>;
  close(): Promise<void>;
}

export type Client = ReturnType<TestService['client']>;

/** Registers a webhook through the API and expects it to succeed. */
export async function createWebhook(api: Client, parms: WebhookParms) {
  const { data, response } = await api.POST('/api/web/v1/webhooks', { body: parms });
  expect(response.status, 'create webhook').toBe(200);
  return data!;
}

export interface StartOptions {
  /** Another service's store to open instead of a fresh one; closing this service then leaves it alone. */
  store?: StoreSetup;
}

export async function startService(
  backend: Backend = backends[0]!,
  env: Record<string, string> = {},
  options: StartOptions = {},
): Promise<TestService> {
  const store = options.store ?? (await backend.setup());
  const config = loadConfig({
    DATA_DIR: store.dataDir,
    ...(store.databaseUrl ? { DATABASE_URL: store.databaseUrl } : {}),
    LOG_LEVEL: 'silent',
    // Test receivers listen on loopback, which the callback guard refuses unless allowed.
    CALLBACK_ALLOWED_CIDRS: '127.0.0.0/8',
    ...env,
  });
  let app: FastifyInstance;
  try {
    app = await buildApp(config);
  } catch (error) {
    if (!options.store) await store.cleanup(); // leave no empty schema or folder behind
    throw error;
  }
  const baseUrl = await app.listen({ host: '127.0.0.1', port: 0 });
  const keys = new ApiKeyStore(app.db);
  return {
    baseUrl,
    app,
    store,
    token: async (tenant = 'tenant-a', permissions = allPermissions) => (await keys.create(tenant, permissions)).token,
    client: (token) => createWebhooksClient({ baseUrl, token }),
    close: async () => {
      await app.close();
      if (!options.store) await store.cleanup();
    },
  };
}
