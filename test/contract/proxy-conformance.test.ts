// Contract conformance of the REAL server: every request below goes through `prism proxy openapi/webhooks.yaml
// <server> --errors` (@stoplight/prism-cli 5.14.2), which checks each answer of the server against the contract.
//
// How Prism 5.14.2 reports what it finds (measured; the self-test at the end keeps it proven):
// - An answer whose body breaks its schema, or whose media type is not a declared one (`text/plain` for JSON),
//   is replaced by Prism's own `500 application/problem+json` (type https://stoplight.io/prism/errors#VIOLATIONS)
//   carrying the list in an `sl-violations` header (JSON array of { location, severity, code, message }).
// - A status the operation does not declare is NOT turned into an error: the server's status and body pass, with
//   only a `severity: "Warning"` entry in `sl-violations`. So the check is "no sl-violations header at all",
//   never "status is not 500".
// - A body that does not parse as JSON becomes Prism's `500` with type `FetchError` and NO sl-violations header.
// - Prism does not tell `application/json` from `application/problem+json` (either passes for the other), and does
//   not object to a body on a response the contract declares without content. The media-type check below closes
//   those two gaps from the contract itself.
// Hence `conformanceProblems`: no sl-violations header, an `x-request-id` header (the server sets it on every
// answer and Prism forwards it; Prism's own answers have none), and the declared media type (or no body).
//
// Prism also judges requests, and never forwards one it refuses:
// - `--errors` with request validation on (the default) answers a request that breaks the contract itself (422
//   UNPROCESSABLE_ENTITY). So the server's 400s for schema-invalid input go through a second proxy started with
//   `--errors --validate-request=false`, which forwards any request and still turns bad answers into errors.
//   400s for input that is valid by schema but refused by the server (reserved header names, a loopback callback,
//   a cursor the service never gave out) go through the validating proxy like every other case.
// - Prism checks the bearer scheme in both modes (`/^Bearer\s.+$/`): a request without `Authorization` gets
//   Prism's own 401. The server's "A bearer token is required." 401 is reached with `Bearer a b`, which Prism
//   accepts and the server does not (one token only).
// - Prism parses JSON request bodies itself: malformed JSON gets Prism's own 400 ({"error":{"code":"invalid_json"}}),
//   so the server's 400 for malformed JSON cannot be checked through any Prism proxy.
// - A path outside the contract gets Prism's own 404 (NO_PATH_MATCHED_ERROR).
// These are pinned in "what never reaches the server", so an upgrade of Prism that changes them shows up here.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createWebhooksClient, type WebhookParms, type WebhooksClient } from '../../client/index.js';
import { closedPort, type Receiver, startReceiver } from '../delivery/receiver.js';
import { type PrismProcess, startPrism } from '../support/prism.js';
import { allPermissions, startService, type TestService } from '../support/service.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const spec = 'openapi/webhooks.yaml';

// ---- What the contract declares, per operation and status ------------------------------------------------------
type Json = Record<string, unknown>;
const contract = parse(readFileSync(`${root}${spec}`, 'utf8')) as Json;

function resolve(node: Json): Json {
  const ref = node.$ref;
  if (typeof ref !== 'string') return node;
  return resolve(ref.slice(2).split('/').reduce<unknown>((at, key) => (at as Json)[key], contract) as Json);
}

const declaredResponses = new Map<string, Record<string, Json>>();
for (const item of Object.values(contract.paths as Record<string, Record<string, Json>>)) {
  for (const operation of Object.values(item)) {
    if (typeof operation.operationId === 'string') {
      declaredResponses.set(operation.operationId, operation.responses as Record<string, Json>);
    }
  }
}

// ---- The verdict on one answer ----------------------------------------------------------------------------------
/** Everything that makes this answer break the contract for the operation; empty when it conforms. */
function conformanceProblems(operationId: string, response: Response): string[] {
  const problems: string[] = [];
  const violations = response.headers.get('sl-violations');
  if (violations) problems.push(`Prism reported violations: ${violations}`);
  if (!response.headers.get('x-request-id')) {
    problems.push(
      `answered by Prism itself, not forwarded from the server: ${response.status} ${response.headers.get('content-type')}`,
    );
  }
  const responses = declaredResponses.get(operationId);
  if (!responses) throw new Error(`the contract has no operation ${operationId}`);
  const declared = responses[String(response.status)];
  if (!declared) {
    problems.push(`${operationId} declares no ${response.status} response`);
    return problems;
  }
  const content = resolve(declared).content as Record<string, unknown> | undefined;
  const mediaType = response.headers.get('content-type')?.split(';')[0]!.trim().toLowerCase() ?? null;
  if (!content) {
    const length = response.headers.get('content-length');
    if (mediaType !== null || (length !== null && length !== '0')) {
      problems.push(`${operationId} ${response.status} declares no content, got ${mediaType} of ${length} bytes`);
    }
  } else if (mediaType === null || !Object.keys(content).includes(mediaType)) {
    problems.push(`${operationId} ${response.status} declares media type ${Object.keys(content).join(', ')}, got ${mediaType}`);
  }
  return problems;
}

function expectConformant(operationId: string, response: Response, status: number): void {
  expect(conformanceProblems(operationId, response), `${operationId} answered ${response.status}`).toEqual([]);
  expect(response.status, operationId).toBe(status);
}

// ---- The processes ------------------------------------------------------------------------------------------------
/** The real service behind two proxies: one that validates requests too, one that forwards any request. */
interface ProxiedService {
  service: TestService;
  /** `prism proxy … --errors`: for requests that follow the contract. */
  validating: PrismProcess;
  /** `prism proxy … --errors --validate-request=false`: for requests that break it on purpose. */
  forwarding?: PrismProcess;
}

// Everything started, to stop in afterAll even when beforeAll failed half way: Prism first (it holds connections
// to the servers), then the servers.
const prisms: PrismProcess[] = [];
const servers: Array<() => Promise<void>> = [];

async function startProxiedService(withForwarding: boolean): Promise<ProxiedService> {
  const service = await startService();
  servers.push(() => service.close());
  const proxy = async (...flags: string[]) => {
    const prism = await startPrism(['proxy', spec, service.baseUrl, '--errors', ...flags]);
    prisms.push(prism);
    return prism;
  };
  const [validating, forwarding] = await Promise.all([
    proxy(),
    withForwarding ? proxy('--validate-request=false') : undefined,
  ]);
  return { service, validating, ...(forwarding ? { forwarding } : {}) };
}

/** A stand-in for the server that answers whatever the current test says, behind a validating Prism proxy. */
interface Stub {
  answer: (response: ServerResponse) => void;
  prism: PrismProcess;
}

async function startStub(): Promise<Stub> {
  const stub: Partial<Stub> & Pick<Stub, 'answer'> = { answer: (response) => response.writeHead(500).end() };
  const server: Server = createServer((request, response) => {
    request.resume();
    // Like the server, so that only Prism's judgement of the answer makes the check fail.
    response.setHeader('x-request-id', '00000000-0000-4000-8000-000000000000');
    request.on('end', () => stub.answer(response));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  servers.push(async () => {
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });
  const { port } = server.address() as AddressInfo;
  stub.prism = await startPrism(['proxy', spec, `http://127.0.0.1:${port}`, '--errors']);
  prisms.push(stub.prism);
  return stub as Stub;
}

let main: ProxiedService;
let storeDown: ProxiedService;
let stub: Stub;
let token: string;
let api: WebhooksClient;

beforeAll(async () => {
  // In parallel: four Prism processes start in about the time of one.
  const [mainResult, storeDownResult, stubResult] = await Promise.allSettled([
    startProxiedService(true),
    startProxiedService(false),
    startStub(),
  ]);
  for (const result of [mainResult, storeDownResult, stubResult]) if (result.status === 'rejected') throw result.reason;
  main = (mainResult as PromiseFulfilledResult<ProxiedService>).value;
  storeDown = (storeDownResult as PromiseFulfilledResult<ProxiedService>).value;
  stub = (stubResult as PromiseFulfilledResult<Stub>).value;
  token = await main.service.token();
  api = createWebhooksClient({ baseUrl: main.validating.url, token });
});

afterAll(async () => {
  await Promise.all(prisms.map((prism) => prism.stop()));
  await Promise.all(servers.map((close) => close()));
});

// ---- Requests -----------------------------------------------------------------------------------------------------
const someId = '7d444840-9dc0-11d1-b245-5ffdce74fad2'; // a UUID no webhook has
let hostCount = 0;
const uniqueParms = (extra: Partial<WebhookParms> = {}): WebhookParms => ({
  callbackUrl: `https://hooks${++hostCount}.proxy.example.com/receive`,
  events: ['order.created'],
  ...extra,
});

async function createWebhook(parms: WebhookParms = uniqueParms(), client: WebhooksClient = api) {
  const { data, response } = await client.POST('/api/web/v1/webhooks', { body: parms });
  expectConformant('createWebhookUsingPOST', response, 200);
  return data!;
}

/**
 * Raw fetch for the requests the typed client cannot express: bodies that break the contract, other media types.
 * A header given as '' is left out.
 */
function send(baseUrl: string, method: string, path: string, body?: string, headers: Record<string, string> = {}) {
  const all = { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers };
  return fetch(`${baseUrl}${path}`, {
    method,
    headers: Object.fromEntries(Object.entries(all).filter(([, value]) => value !== '')),
    ...(body === undefined ? {} : { body }),
  });
}

type Call = (api: WebhooksClient, id: string) => Promise<{ response: Response; error?: unknown }>;
const body = { callbackUrl: 'https://perm.proxy.example.com/hook', events: ['order.created'] };
const webhookOperations: [operationId: string, permission: string, call: Call][] = [
  ['getWebhooksUsingGET', 'WEBHOOKS:VIEW', (api) => api.GET('/api/web/v1/webhooks')],
  ['createWebhookUsingPOST', 'WEBHOOKS:ADD', (api) => api.POST('/api/web/v1/webhooks', { body })],
  ['readWebhookUsingGET', 'WEBHOOKS:VIEW', (api, id) => api.GET('/api/web/v1/webhooks/{id}', { params: { path: { id } } })],
  ['updateWebhookUsingPUT', 'WEBHOOKS:EDIT', (api, id) => api.PUT('/api/web/v1/webhooks/{id}', { params: { path: { id } }, body })],
  ['deleteWebhookUsingDELETE', 'WEBHOOKS:REMOVE', (api, id) => api.DELETE('/api/web/v1/webhooks/{id}', { params: { path: { id } } })],
  ['testWebhookUsingPOST', 'WEBHOOKS:EDIT', (api, id) => api.POST('/api/web/v1/webhooks/test/{id}', { params: { path: { id } } })],
];

// ---- The real server, requests that follow the contract ----------------------------------------------------------
describe('the real server behind `prism proxy --errors`', () => {
  it('create: 200 with the secret, then 409 for the same callback URL', async () => {
    const parms = uniqueParms({ description: 'orders', headers: { 'X-Shop': 'eu' } });
    const created = await createWebhook(parms);
    expect(created.secret).toMatch(/^whsec_/);
    const { response, error } = await api.POST('/api/web/v1/webhooks', { body: parms });
    expectConformant('createWebhookUsingPOST', response, 409);
    expect(error).toMatchObject({ existingWebhookId: created.id });
  });

  it('read: 200, and 404 for an id no webhook has', async () => {
    const created = await createWebhook();
    const read = await api.GET('/api/web/v1/webhooks/{id}', { params: { path: { id: created.id } } });
    expectConformant('readWebhookUsingGET', read.response, 200);
    expect(read.data!.id).toBe(created.id);
    const missing = await api.GET('/api/web/v1/webhooks/{id}', { params: { path: { id: someId } } });
    expectConformant('readWebhookUsingGET', missing.response, 404);
  });

  it('update: 200, 404 for an unknown id, 409 for the URL of another webhook', async () => {
    const a = await createWebhook();
    const b = await createWebhook();
    const updated = await api.PUT('/api/web/v1/webhooks/{id}', {
      params: { path: { id: b.id } },
      body: uniqueParms({ enabled: false, events: ['order.*'] }),
    });
    expectConformant('updateWebhookUsingPUT', updated.response, 200);
    expect(updated.data).toMatchObject({ id: b.id, enabled: false });
    const missing = await api.PUT('/api/web/v1/webhooks/{id}', { params: { path: { id: someId } }, body: uniqueParms() });
    expectConformant('updateWebhookUsingPUT', missing.response, 404);
    const duplicate = await api.PUT('/api/web/v1/webhooks/{id}', {
      params: { path: { id: b.id } },
      body: { callbackUrl: a.callbackUrl, events: ['order.created'] },
    });
    expectConformant('updateWebhookUsingPUT', duplicate.response, 409);
    expect(duplicate.error).toMatchObject({ existingWebhookId: a.id });
  });

  it('delete: 200 without content, then 404', async () => {
    const created = await createWebhook();
    const path = { id: created.id };
    const deleted = await api.DELETE('/api/web/v1/webhooks/{id}', { params: { path } });
    expectConformant('deleteWebhookUsingDELETE', deleted.response, 200);
    const again = await api.DELETE('/api/web/v1/webhooks/{id}', { params: { path } });
    expectConformant('deleteWebhookUsingDELETE', again.response, 404);
  });

  describe('test', () => {
    let receiver: Receiver | undefined;
    afterAll(() => receiver?.close());

    it('200 when the receiver on 127.0.0.1 answers 204', async () => {
      receiver = await startReceiver();
      const created = await createWebhook(uniqueParms({ callbackUrl: receiver.url }));
      const { response } = await api.POST('/api/web/v1/webhooks/test/{id}', { params: { path: { id: created.id } } });
      expectConformant('testWebhookUsingPOST', response, 200);
      expect((await receiver.firstRequest()).method).toBe('POST');
    });

    it('502 problem when nothing listens at the callback port', async () => {
      const created = await createWebhook(uniqueParms({ callbackUrl: `http://127.0.0.1:${await closedPort()}/hook` }));
      const { response, error } = await api.POST('/api/web/v1/webhooks/test/{id}', {
        params: { path: { id: created.id } },
      });
      expectConformant('testWebhookUsingPOST', response, 502);
      expect(error).toMatchObject({ status: 502, reason: 'connection_refused' });
    });

    it('404 for an id no webhook has', async () => {
      const { response } = await api.POST('/api/web/v1/webhooks/test/{id}', { params: { path: { id: someId } } });
      expectConformant('testWebhookUsingPOST', response, 404);
    });
  });

  it('list: 200 page by page with limit, cursor and the Link header', async () => {
    const own = createWebhooksClient({ baseUrl: main.validating.url, token: await main.service.token('tenant-pages') });
    const created: string[] = [];
    for (let i = 0; i < 5; i++) created.push((await createWebhook(uniqueParms(), own)).id);
    const seen: string[] = [];
    const links: (string | null)[] = [];
    let query: { limit: number; cursor?: string } = { limit: 2 };
    for (let page = 0; page < 5; page++) {
      const { data, response } = await own.GET('/api/web/v1/webhooks', { params: { query } });
      expectConformant('getWebhooksUsingGET', response, 200);
      seen.push(...data!.map((webhook) => webhook.id));
      const link = response.headers.get('link');
      links.push(link);
      if (!link) break;
      const next = new URL(/^<([^>]+)>; rel="next"$/.exec(link)![1]!, main.validating.url);
      query = { limit: Number(next.searchParams.get('limit')), cursor: next.searchParams.get('cursor')! };
    }
    expect(seen).toEqual(created);
    expect(links.map((link) => link !== null)).toEqual([true, true, false]);
  });

  it.each(webhookOperations)('%s: 401 for an unknown key and for an Authorization the server cannot read', async (operationId, _p, call) => {
    // `Bearer a b` passes Prism's scheme check but is no single token: the server's "token is required" answer.
    for (const [badToken, detail] of [
      ['whk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'The bearer token is not valid.'],
      ['a b', 'A bearer token is required.'],
    ]) {
      const { response, error } = await call(createWebhooksClient({ baseUrl: main.validating.url, token: badToken! }), someId);
      expectConformant(operationId, response, 401);
      expect(error).toMatchObject({ detail });
    }
  });

  it.each(webhookOperations)('%s: 403 for a key without %s', async (operationId, permission, call) => {
    const lacking = await main.service.token('tenant-a', allPermissions.filter((p) => p !== permission));
    const { response } = await call(createWebhooksClient({ baseUrl: main.validating.url, token: lacking }), someId);
    expectConformant(operationId, response, 403);
  });

  // Valid by the contract's schemas, so the validating proxy forwards them; the server refuses them by its rules.
  it.each([
    ['a reserved delivery header', { headers: { 'Content-Length': '1' } }],
    ['a webhook-* header', { headers: { 'Webhook-Signature': 'x' } }],
    ['credentials in the callback URL', { callbackUrl: 'https://user:pw@creds.proxy.example.com/hook' }],
    ['a loopback callback host outside the allowed range', { callbackUrl: 'http://[::1]:8080/hook' }],
  ])('create and update: 400 problem for %s', async (_name, extra) => {
    const created = await createWebhook();
    const create = await api.POST('/api/web/v1/webhooks', { body: uniqueParms(extra) });
    expectConformant('createWebhookUsingPOST', create.response, 400);
    const update = await api.PUT('/api/web/v1/webhooks/{id}', { params: { path: { id: created.id } }, body: uniqueParms(extra) });
    expectConformant('updateWebhookUsingPUT', update.response, 400);
  });

  it('list: 400 problem for a cursor the service never gave out', async () => {
    const { response } = await api.GET('/api/web/v1/webhooks', { params: { query: { cursor: 'bm9wZQ' } } });
    expectConformant('getWebhooksUsingGET', response, 400);
  });

  it('/healthz: 200', async () => {
    const { data, response } = await api.GET('/healthz');
    expectConformant('getHealth', response, 200);
    expect(data).toEqual({ status: 'ok', checks: { store: 'ok' } });
  });

  it('/openapi.json: 200', async () => {
    const { data, response } = await api.GET('/openapi.json');
    expectConformant('getContractJson', response, 200);
    expect(data!.openapi).toBe('3.1.0');
  });

  it('/openapi.yaml: 200', async () => {
    const { data, response } = await api.GET('/openapi.yaml', { parseAs: 'text' });
    expectConformant('getContractYaml', response, 200);
    expect(data).toMatch(/^openapi: 3\.1\.0$/m);
  });
});

// ---- The real server, requests that break the contract on purpose ---------------------------------------------
describe('requests that break the contract, behind `prism proxy --errors --validate-request=false`', () => {
  const valid = { callbackUrl: 'https://bad.proxy.example.com/hook', events: ['order.created'] };
  const badBodies: [name: string, body: unknown][] = [
    ['no events', { callbackUrl: valid.callbackUrl }],
    ['empty events', { ...valid, events: [] }],
    ['an unknown property', { ...valid, colour: 'red' }],
    ['enabled as a string', { ...valid, enabled: 'true' }],
    ['a bad event name', { ...valid, events: ['Order Created'] }],
    ['a relative callback URL', { ...valid, callbackUrl: '/hook' }],
    ['a secret of 16 bytes', { ...valid, secret: `whsec_${Buffer.alloc(16, 1).toString('base64')}` }],
    ['an array instead of an object', [valid]],
  ];

  it.each(badBodies)('create and update: 400 problem for %s', async (_name, bad) => {
    const forwarding = main.forwarding!.url;
    const create = await send(forwarding, 'POST', '/api/web/v1/webhooks', JSON.stringify(bad));
    expectConformant('createWebhookUsingPOST', create, 400);
    const update = await send(forwarding, 'PUT', `/api/web/v1/webhooks/${someId}`, JSON.stringify(bad));
    expectConformant('updateWebhookUsingPUT', update, 400);
  });

  it.each([
    ['readWebhookUsingGET', (api: WebhooksClient, id: string) => api.GET('/api/web/v1/webhooks/{id}', { params: { path: { id } } })],
    ['updateWebhookUsingPUT', (api: WebhooksClient, id: string) => api.PUT('/api/web/v1/webhooks/{id}', { params: { path: { id } }, body: valid })],
    ['deleteWebhookUsingDELETE', (api: WebhooksClient, id: string) => api.DELETE('/api/web/v1/webhooks/{id}', { params: { path: { id } } })],
    ['testWebhookUsingPOST', (api: WebhooksClient, id: string) => api.POST('/api/web/v1/webhooks/test/{id}', { params: { path: { id } } })],
  ] as [string, Call][])('%s: 400 problem for an id that is not a UUID', async (operationId, call) => {
    const { response } = await call(createWebhooksClient({ baseUrl: main.forwarding!.url, token }), 'not-a-uuid');
    expectConformant(operationId, response, 400);
  });

  it.each(['limit=0', 'limit=1001', 'limit=ten'])('list: 400 problem for %s', async (query) => {
    const response = await send(main.forwarding!.url, 'GET', `/api/web/v1/webhooks?${query}`);
    expectConformant('getWebhooksUsingGET', response, 400);
  });

  it.each([
    ['createWebhookUsingPOST', 'POST', '/api/web/v1/webhooks'],
    ['updateWebhookUsingPUT', 'PUT', `/api/web/v1/webhooks/${someId}`],
  ])('%s: 413 for a body over the limit, 415 for a body that is not JSON', async (operationId, method, path) => {
    const huge = JSON.stringify({ ...valid, description: 'x'.repeat(2 * 1024 * 1024) });
    expectConformant(operationId, await send(main.forwarding!.url, method, path, huge), 413);
    const text = await send(main.forwarding!.url, method, path, 'callbackUrl=x', { 'content-type': 'text/plain' });
    expectConformant(operationId, text, 415);
  });
});

describe('what never reaches the server (Prism 5.14.2 answers it itself)', () => {
  type Proxy = 'validating' | 'forwarding';
  const prismAnswers: [name: string, proxy: Proxy, method: string, path: string, body: string | undefined, headers: Record<string, string>, status: number][] = [
    ['a non-UUID id, at the validating proxy: 422', 'validating', 'GET', '/api/web/v1/webhooks/not-a-uuid', undefined, {}, 422],
    ['no Authorization header, even without request validation: 401', 'forwarding', 'GET', '/api/web/v1/webhooks', undefined, { authorization: '' }, 401],
    ['malformed JSON, even without request validation: 400', 'forwarding', 'POST', '/api/web/v1/webhooks', '{"callbackUrl": ', {}, 400],
    ['a path outside the contract: 404', 'forwarding', 'GET', '/api/web/v1/nothing-here', undefined, {}, 404],
  ];

  it.each(prismAnswers)('%s', async (_name, proxy, method, path, body, headers, status) => {
    const response = await send(main[proxy]!.url, method, path, body, headers);
    await response.arrayBuffer();
    expect(response.status).toBe(status);
    expect(response.headers.get('x-request-id'), 'an answer of the server').toBeNull();
  });
});

// ---- The store gone: its own service, since nothing works on it afterwards --------------------------------------
describe('the real server with its store gone, behind `prism proxy --errors`', () => {
  it('/healthz 503 and a 500 problem for an operation', async () => {
    const { service, validating } = storeDown;
    const down = createWebhooksClient({ baseUrl: validating.url, token: await service.token() });
    // Checks the key once, so it is cached and the next request gets as far as the store.
    expectConformant('getWebhooksUsingGET', (await down.GET('/api/web/v1/webhooks')).response, 200);
    await service.app.db.destroy();
    const health = await down.GET('/healthz');
    expectConformant('getHealth', health.response, 503);
    expect(health.error).toEqual({ status: 'unavailable', checks: { store: 'unreachable' } });
    const { response } = await down.POST('/api/web/v1/webhooks', { body: uniqueParms() });
    expectConformant('createWebhookUsingPOST', response, 500);
  });
});

// ---- Self-test: the same check, with Prism in front of a stub that breaks the contract --------------------------
describe('the conformance check itself fails on answers that break the contract', () => {
  const webhook = {
    id: '3f1c2a4e-8b7d-4c39-9a51-2d6f0e8b7a10',
    callbackUrl: 'https://shop.example.com/hooks/orders',
    events: ['order.created'],
    enabled: true,
    headers: {},
    createdAt: '2026-11-02T09:15:27.412Z',
    updatedAt: '2026-11-02T09:15:27.412Z',
  };
  const json = (status: number, value: unknown, type = 'application/json') => (response: ServerResponse) =>
    response.writeHead(status, { 'content-type': type }).end(typeof value === 'string' ? value : JSON.stringify(value));
  const read = (api: WebhooksClient) => api.GET('/api/web/v1/webhooks/{id}', { params: { path: { id: webhook.id } } });
  const remove = (api: WebhooksClient) => api.DELETE('/api/web/v1/webhooks/{id}', { params: { path: { id: webhook.id } } });

  async function verdict(operationId: string, call: StubCall) {
    const { response } = await call(createWebhooksClient({ baseUrl: stub.prism.url, token: 'whk_stub' }));
    return { status: response.status, problems: conformanceProblems(operationId, response).join('\n') };
  }

  it('passes an answer that conforms (the stub and the check are not failing everything)', async () => {
    stub.answer = json(200, webhook);
    expect(await verdict('readWebhookUsingGET', read)).toEqual({ status: 200, problems: '' });
    stub.answer = (response) => response.writeHead(200).end();
    expect(await verdict('deleteWebhookUsingDELETE', remove)).toEqual({ status: 200, problems: '' });
  });

  type StubCall = (api: WebhooksClient) => Promise<{ response: Response }>;
  const broken: [name: string, operationId: string, call: StubCall, answer: Stub['answer'], status: number, problem: RegExp][] = [
    ['a Webhook without required properties', 'readWebhookUsingGET', read, json(200, { id: webhook.id }), 500, /Prism reported.*"code":"required"/],
    ['a createdAt that is no date-time', 'readWebhookUsingGET', read, json(200, { ...webhook, createdAt: 'yesterday' }), 500, /Prism reported.*"code":"format"/],
    ['a property the schema does not allow', 'readWebhookUsingGET', read, json(200, { ...webhook, colour: 'red' }), 500, /Prism reported.*additionalProperties/],
    ['a problem without type', 'readWebhookUsingGET', read, json(404, { title: 'Not Found', status: 404 }, 'application/problem+json'), 500, /Prism reported.*'type'/],
    ['a status the operation does not declare (passed on, with a Warning)', 'readWebhookUsingGET', read, json(418, {}), 418, /Prism reported.*"severity":"Warning"/],
    ['text/plain where JSON is declared', 'readWebhookUsingGET', read, json(200, 'ok', 'text/plain'), 500, /Prism reported.*media type/],
    ['a body that is not JSON at all', 'readWebhookUsingGET', read, json(200, 'not json'), 500, /answered by Prism itself/],
    // The next three pass Prism 5.14.2 unnoticed; the media-type check from the contract catches them.
    ['application/problem+json where application/json is declared', 'readWebhookUsingGET', read, json(200, webhook, 'application/problem+json'), 200, /declares media type application\/json, got application\/problem\+json/],
    ['application/json where application/problem+json is declared', 'readWebhookUsingGET', read, json(404, { type: 'about:blank', title: 'Not Found', status: 404 }), 404, /declares media type application\/problem\+json, got application\/json/],
    ['a body on a 200 declared without content', 'deleteWebhookUsingDELETE', remove, json(200, { deleted: true }), 200, /declares no content/],
  ];

  it.each(broken)('%s', async (_name, operationId, call, answer, status, problem) => {
    stub.answer = answer;
    const result = await verdict(operationId, call);
    expect(result.status).toBe(status);
    expect(result.problems).toMatch(problem);
  });
});
