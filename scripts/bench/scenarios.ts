// What each load scenario sends. Used by the load driver (which builds autocannon `requests` from it) and by the
// orchestrator and report (names, labels, targets). One place to add a scenario.

/** The request shape autocannon's `requests` and `setupRequest` work with. */
export interface LoadRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  setupRequest?: (request: LoadRequest, context: Record<string, unknown>) => LoadRequest;
}

export interface ScenarioContext {
  /** Webhook ids that exist on the target (a sample of the seeded ones). */
  ids: string[];
  /** Unique per run and driver: keeps generated callback URLs and events distinct across runs. */
  tag: string;
}

export type ScenarioName = 'read' | 'list' | 'create' | 'update' | 'publish';

export interface Scenario {
  name: ScenarioName;
  label: string;
  /** Service req/s must be at least this fraction of the baseline's (issue 6), when compared. */
  targetRatio?: number;
  requests(context: ScenarioContext): LoadRequest[];
}

const json = { 'content-type': 'application/json' };
let sequence = 0;
const pick = (ids: string[]) => ids[Math.floor(Math.random() * ids.length)]!;

/** A WebhookParms body with a callback URL no other request of this bench uses (the service refuses duplicates). */
function uniqueParms(tag: string): string {
  const n = ++sequence;
  return JSON.stringify({
    callbackUrl: `https://h${tag}-${n}.bench.example.com/hooks/orders`,
    events: ['order.created', 'order.paid'],
    description: `Bench webhook ${tag}-${n}`,
    headers: { 'X-Bench-Seq': String(n) },
  });
}

export const scenarios: Record<ScenarioName, Scenario> = {
  read: {
    name: 'read',
    label: 'read a webhook (GET /webhooks/{id})',
    targetRatio: 0.8,
    requests: ({ ids }) => [
      { method: 'GET', setupRequest: (request) => ({ ...request, path: `/api/web/v1/webhooks/${pick(ids)}` }) },
    ],
  },
  list: {
    name: 'list',
    label: 'list, limit 100 (GET /webhooks?limit=100)',
    targetRatio: 0.8,
    requests: () => [{ method: 'GET', path: '/api/web/v1/webhooks?limit=100' }],
  },
  create: {
    name: 'create',
    label: 'create (POST /webhooks, unique URLs)',
    targetRatio: 0.5,
    requests: ({ tag }) => [
      {
        method: 'POST',
        path: '/api/web/v1/webhooks',
        headers: json,
        setupRequest: (request) => ({ ...request, body: uniqueParms(tag) }),
      },
    ],
  },
  update: {
    name: 'update',
    label: 'update (PUT /webhooks/{id}, unique URLs)',
    targetRatio: 0.5,
    requests: ({ ids, tag }) => [
      {
        method: 'PUT',
        headers: json,
        setupRequest: (request) => ({ ...request, path: `/api/web/v1/webhooks/${pick(ids)}`, body: uniqueParms(tag) }),
      },
    ],
  },
  publish: {
    name: 'publish',
    label: 'publish an event (POST /events)',
    // `data.publishedAt` (epoch ms, fractional) lets the receiver measure publish-to-delivery latency.
    requests: ({ tag }) => [
      {
        method: 'POST',
        path: '/api/web/v1/events',
        headers: json,
        setupRequest: (request) => ({
          ...request,
          body: JSON.stringify({
            type: 'order.created',
            data: { bench: tag, seq: ++sequence, publishedAt: performance.timeOrigin + performance.now() },
          }),
        }),
      },
    ],
  },
};

/** The scenarios compared side by side with the baseline, in the order they run (create last: it grows the store). */
export const comparedScenarios: ScenarioName[] = ['read', 'list', 'update', 'create'];
