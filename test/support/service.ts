// Starts the real service on 127.0.0.1 (port 0) over a fresh store, with helpers to make API keys and clients.
import { buildApp } from '../../server/app.js';
import { loadConfig } from '../../server/config.js';
import { ApiKeyStore } from '../../server/store/api-keys.js';
import { createWebhooksClient } from '../../client/index.js';
import type { FastifyInstance } from 'fastify';
import { type Backend, backends } from './backends.js';

export const allPermissions = ['WEBHOOKS:VIEW', 'WEBHOOKS:ADD', 'WEBHOOKS:EDIT', 'WEBHOOKS:REMOVE'];

export interface TestService {
  baseUrl: string;
  app: FastifyInstance;
  /** A fresh API key token for the tenant with the permissions (all WEBHOOKS ones by default). */
  token(tenant?: string, permissions?: string[]): Promise<string>;
  client(token: string): ReturnType<typeof createWebhooksClient>;
  close(): Promise<void>;
}

export async function startService(
  backend: Backend = backends[0]!,
  env: Record<string, string> = {},
): Promise<TestService> {
  const store = await backend.setup();
  const config = loadConfig({
    DATA_DIR: store.dataDir,
    ...(store.databaseUrl ? { DATABASE_URL: store.databaseUrl } : {}),
    LOG_LEVEL: 'silent',
    // Test receivers listen on loopback, which the callback guard refuses unless allowed.
    CALLBACK_ALLOWED_CIDRS: '127.0.0.0/8',
    ...env,
  });
  const app = await buildApp(config);
  const baseUrl = await app.listen({ host: '127.0.0.1', port: 0 });
  const keys = new ApiKeyStore(app.db);
  return {
    baseUrl,
    app,
    token: async (tenant = 'tenant-a', permissions = allPermissions) => (await keys.create(tenant, permissions)).token,
    client: (token) => createWebhooksClient({ baseUrl, token }),
    close: async () => {
      await app.close();
      await store.cleanup();
    },
  };
}
