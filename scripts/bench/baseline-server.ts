// The baseline: the fastest a Fastify service can answer this contract on this machine. A bare Fastify app (child
// process entry, started by servers.ts) serving GET/POST /api/web/v1/webhooks and GET/PUT /api/web/v1/webhooks/:id
// from an in-memory Map, with no auth and no store, but with the contract's own route schemas (refs resolved):
// parameters and bodies are validated and 200 responses serialised by the same schemas the service uses.
//
// Env: HOST, PORT, BENCH_SEED_FILE (JSON array of Webhook objects to start with).
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Fastify, { type FastifyReply } from 'fastify';
import { loadContract, routeSchemas } from './contract.js';
import type { SeedWebhook } from './servers.js';

interface WebhookParms {
  callbackUrl: string;
  events: string[];
  description?: string;
  enabled?: boolean;
  secret?: string;
  headers?: Record<string, string>;
}

type Stored = SeedWebhook & { secret: string };

const collection = '/api/web/v1/webhooks';
const item = '/api/web/v1/webhooks/{id}';

const contract = loadContract();
const webhooks = new Map<string, Stored>();
for (const webhook of JSON.parse(readFileSync(process.env.BENCH_SEED_FILE ?? '', 'utf8') || '[]') as SeedWebhook[]) {
  webhooks.set(webhook.id, { ...webhook, secret: `whsec_${randomBytes(32).toString('base64')}` });
}

const app = Fastify({
  logger: false,
  // The contract's schemas carry OpenAPI annotations (`example`) that JSON Schema does not define.
  ajv: { customOptions: { strict: false } },
});

function schemaOf(path: string, method: string) {
  const { params, querystring, body, response200 } = routeSchemas(contract, path, method);
  return {
    ...(params ? { params } : {}),
    ...(querystring ? { querystring } : {}),
    ...(body ? { body } : {}),
    ...(response200 ? { response: { 200: response200 } } : {}),
  };
}

const fastifyPath = (path: string) => path.replace(/\{(\w+)\}/g, ':$1');

function notFound(reply: FastifyReply, id: string) {
  return reply
    .code(404)
    .type('application/problem+json')
    .send({ type: 'about:blank', title: 'Not Found', status: 404, detail: `No webhook with id ${id}.` });
}

/** Public form: everything but the secret. */
function shown({ secret: _secret, ...webhook }: Stored): SeedWebhook {
  return webhook;
}

app.get<{ Querystring: { limit?: number; cursor?: string } }>(
  collection,
  { schema: schemaOf(collection, 'get') },
  async (request, reply) => {
    const limit = request.query.limit ?? 100;
    // A cursor is a plain offset here; enough to answer the same Link header the service sends.
    const offset = request.query.cursor ? Number(Buffer.from(request.query.cursor, 'base64url').toString()) || 0 : 0;
    const page: SeedWebhook[] = [];
    let index = 0;
    for (const webhook of webhooks.values()) {
      if (index++ < offset) continue;
      if (page.length === limit) {
        const cursor = Buffer.from(String(offset + limit)).toString('base64url');
        reply.header('link', `<${collection}?limit=${limit}&cursor=${cursor}>; rel="next"`);
        break;
      }
      page.push(shown(webhook));
    }
    return page;
  },
);

app.post<{ Body: WebhookParms }>(collection, { schema: schemaOf(collection, 'post') }, async (request) => {
  const now = new Date().toISOString();
  const { secret, ...parms } = request.body;
  const webhook: Stored = {
    id: randomUUID(),
    ...parms,
    enabled: parms.enabled ?? true,
    headers: parms.headers ?? {},
    secret: secret ?? `whsec_${randomBytes(32).toString('base64')}`,
    createdAt: now,
    updatedAt: now,
  };
  webhooks.set(webhook.id, webhook);
  return { ...shown(webhook), secret: webhook.secret };
});

app.get<{ Params: { id: string } }>(fastifyPath(item), { schema: schemaOf(item, 'get') }, async (request, reply) => {
  const webhook = webhooks.get(request.params.id);
  return webhook ? shown(webhook) : notFound(reply, request.params.id);
});

app.put<{ Params: { id: string }; Body: WebhookParms }>(
  fastifyPath(item),
  { schema: schemaOf(item, 'put') },
  async (request, reply) => {
    const current = webhooks.get(request.params.id);
    if (!current) return notFound(reply, request.params.id);
    const { secret, ...parms } = request.body;
    const webhook: Stored = {
      id: current.id,
      ...parms,
      enabled: parms.enabled ?? true,
      headers: parms.headers ?? {},
      secret: secret ?? current.secret,
      createdAt: current.createdAt,
      updatedAt: new Date().toISOString(),
    };
    webhooks.set(webhook.id, webhook);
    return shown(webhook);
  },
);

app.get('/healthz', async () => ({ status: 'ok', checks: { store: 'ok' } }));

// Ends with the bench even if the bench is killed outright (SIGKILL runs no clean-up): it is then re-parented.
const parent = process.ppid;
setInterval(() => process.ppid !== parent && process.exit(0), 1_000).unref();
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
process.on('SIGINT', () => void app.close().then(() => process.exit(0)));

await app.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 0) });
