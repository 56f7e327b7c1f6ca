// Builds the service: a Fastify instance whose routes come from openapi/webhooks.yaml through
// fastify-openapi-glue, bound to handlers by operationId. It opens and migrates the store, and never listens:
// server/main.ts does that, tests listen on port 0.
import { randomUUID } from 'node:crypto';
import fastifyAuth from '@fastify/auth';
import fastifyCors from '@fastify/cors';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import openapiGlue from 'fastify-openapi-glue';
import type { Kysely } from 'kysely';
import { createApiKeyVerifier } from './auth/api-key-verifier.js';
import { authenticateBeforeParsing, createSecurityHandlers } from './auth/bearer-auth.js';
import { createJwtVerifier } from './auth/jwt-verifier.js';
import type { Config } from './config.js';
import { contract, type ServiceHandlers } from './contract.js';
import { createAddressGuard } from './delivery/address-guard.js';
import { createHttpSender, type HttpSender } from './delivery/http-sender.js';
import type { SlowWebhookLimits } from './delivery/slow-webhooks.js';
import { DeliveryWorker } from './delivery/worker.js';
import { createTestSender } from './delivery/test-delivery.js';
import { answerClientError, registerErrorHandling } from './http/error-handler.js';
import { lazyChildLoggerFactory } from './http/request-logger.js';
import { deliveryHandlers } from './http/delivery-handlers.js';
import { eventHandlers } from './http/event-handlers.js';
import { serviceHandlers } from './http/service-handlers.js';
import { registerStrictValidation } from './http/validation.js';
import { webhookHandlers } from './http/webhook-handlers.js';
import { ApiKeyStore } from './store/api-keys.js';
import { migrateToLatest, openDatabase } from './store/database.js';
import { DeliveryStore } from './store/deliveries.js';
import { EventStore } from './store/events.js';
import { pruneDeliveryLog } from './store/retention.js';
import type { Database } from './store/schema.js';
import { WebhookStore } from './store/webhooks.js';
import './auth/principal.js';

export const serviceName = 'webhooks-api';
export const serviceVersion = '0.1.0';

declare module 'fastify' {
  interface FastifyInstance {
    /** The store this app opened; closed when the app closes. */
    db: Kysely<Database>;
  }
}

/** Handlers answer a body or undefined; Fastify needs an explicit send for an empty body. */
function sendEmptyBodies(handlers: ServiceHandlers) {
  return Object.fromEntries(
    Object.entries(handlers).map(([operationId, handler]) => [
      operationId,
      async (request: FastifyRequest, reply: FastifyReply) => {
        const body = await (handler as (rq: FastifyRequest, rp: FastifyReply) => Promise<unknown>)(request, reply);
        return body === undefined ? reply.send() : body;
      },
    ]),
  );
}

export async function buildApp(config: Config): Promise<FastifyInstance> {
  const app = Fastify({
    logger: {
      level: config.logLevel,
      redact: { paths: ['req.headers.authorization', 'req.headers.cookie'], censor: '[redacted]' },
    },
    childLoggerFactory: lazyChildLoggerFactory,
    bodyLimit: config.bodyLimit,
    genReqId: () => randomUUID(),
    // A request must arrive in full within REQUEST_TIMEOUT_MS (Fastify's default, 0, lets a client that trickles a
    // body or never finishes its headers hold a connection for ever). It bounds receiving only, not the handler.
    // Node checks for late requests every connectionsCheckingInterval, 30 s by default: a tenth of the bound here.
    requestTimeout: config.requestTimeoutMs,
    http: {
      // Node's own bound on headers (60 s) would otherwise cut a longer REQUEST_TIMEOUT_MS short.
      headersTimeout: config.requestTimeoutMs,
      connectionsCheckingInterval: Math.min(30_000, Math.ceil(config.requestTimeoutMs / 10)),
    },
    clientErrorHandler: answerClientError(config.requestTimeoutMs),
  });
  // The store opens (and migrates) once the app, and so its logger, exists.
  const db = openDatabase(config, { log: app.log });
  try {
    await migrateToLatest(db);
  } catch (error) {
    await db.destroy();
    await app.close();
    throw error;
  }
  app.decorate('db', db);
  app.decorateRequest('principal', null);
  // Once closing, answers end their connection: a keep-alive socket that falls idle only after close began would
  // otherwise hold the process until the keep-alive timeout.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  // A callback hook, not an async one: it runs on every answer, and a promise per answer shows in read profiles.
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-request-id', request.id);
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });

  const guard = createAddressGuard({ allowedCidrs: config.delivery.allowedCidrs });
  const sender = createSender(config, guard);
  // Test deliveries have a pool and a concurrency limit of their own: tests fired at a receiver that hangs must not
  // take the worker's slots (nor the worker's backlog hold up a test someone is waiting for).
  const testSender = createSender(config, guard);

  registerStrictValidation(app);
  registerErrorHandling(app);
  if (config.corsOrigins.length > 0) {
    await app.register(fastifyCors, {
      origin: config.corsOrigins.includes('*') ? '*' : config.corsOrigins,
      exposedHeaders: ['link', 'www-authenticate', 'x-request-id'],
    });
  }
  await app.register(fastifyAuth);

  const webhooks = new WebhookStore(db);
  const deliveries = new DeliveryStore(db);
  const worker = config.delivery.worker
    ? createWorker(config, { db, webhooks, deliveries, sender, log: app.log })
    : undefined;
  const notifyWorker = () => worker?.notify();
  const handlers: ServiceHandlers = {
    ...webhookHandlers({
      webhooks,
      checkHost: guard.checkHost,
      sendTest: createTestSender(testSender, deliveries, app.log),
    }),
    ...eventHandlers({ events: new EventStore(db, config.delivery.retrySchedule[0]), notifyWorker }),
    ...deliveryHandlers({ webhooks, deliveries, notifyWorker }),
    ...serviceHandlers(db),
  };
  // The contract's routes in a scope of their own, where their security handlers run before the body is read.
  await app.register(async (api) => {
    authenticateBeforeParsing(api);
    await api.register(openapiGlue, {
      specification: structuredClone(contract),
      serviceHandlers: sendEmptyBodies(handlers),
      securityHandlers: createSecurityHandlers(app, {
        apiKeys: createApiKeyVerifier(new ApiKeyStore(db), config.apiKeyCacheTtlMs),
        ...(config.jwt ? { jwt: createJwtVerifier(config.jwt) } : {}),
      }),
    });
  });

  // Requests in flight finish first (Fastify closes the server before onClose), then the worker, then the pool.
  app.addHook('onReady', async () => worker?.start());
  app.addHook('onClose', async () => {
    await worker?.stop();
    await Promise.all([sender.close(), testSender.close()]);
    await db.destroy();
  });
  return app;
}

export interface WorkerParts {
  db: Kysely<Database>;
  webhooks: WebhookStore;
  deliveries: DeliveryStore;
  sender: HttpSender;
  log: FastifyBaseLogger;
}

/** How often the worker prunes the delivery log: a tenth of the retention, from once a second to every 10 minutes. */
const pruneEveryMs = (retentionMs: number) => Math.min(600_000, Math.max(1_000, Math.round(retentionMs / 10)));

/**
 * Limited (slow) webhooks share half of the worker's slots at most (one at least), each starting at
 * `slowWebhookConcurrency` of them (a quarter of the slots at most); postponed deliveries are paced up to 5 minutes ahead, and spread over up to an
 * hour beyond that.
 */
function slowWebhookLimits({ delivery }: Config): SlowWebhookLimits {
  const total = Math.max(1, Math.floor(delivery.maxConcurrency / 2));
  return {
    slowAfterMs: delivery.slowAfterMs,
    // At most half of `total`, so that a limit grows one faster answer at a time for a while before it is lifted.
    perWebhook: Math.min(delivery.slowWebhookConcurrency, Math.max(1, Math.floor(total / 2))),
    total,
    forgetAfterMs: 600_000,
    horizonMs: 300_000,
    spreadAtMostMs: 3_600_000,
  };
}

export function createWorker(config: Config, { db, ...parts }: WorkerParts): DeliveryWorker {
  const { retentionMs } = config.delivery;
  return new DeliveryWorker({
    ...parts,
    prune: { everyMs: pruneEveryMs(retentionMs), run: (signal) => pruneDeliveryLog(db, retentionMs, { signal }) },
    retrySchedule: config.delivery.retrySchedule,
    leaseMs: config.delivery.leaseMs,
    pollMs: config.delivery.pollMs,
    maxInFlight: config.delivery.maxConcurrency,
    slowWebhooks: slowWebhookLimits(config),
    disableAfterMs: config.delivery.disableAfterMs,
  });
}

export function createSender(
  config: Config,
  guard = createAddressGuard({ allowedCidrs: config.delivery.allowedCidrs }),
): HttpSender {
  return createHttpSender({
    guard,
    timeoutMs: config.delivery.timeoutMs,
    maxConcurrency: config.delivery.maxConcurrency,
    maxResponseBytes: config.delivery.maxResponseBytes,
    userAgent: `${serviceName}/${serviceVersion}`,
  });
}
