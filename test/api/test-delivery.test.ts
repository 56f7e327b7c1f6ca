// The test operation end to end: the real service, the project's client, and real receivers on 127.0.0.1 that
// answer, fail, hang, redirect or flood. Every attempt must also land in deliveries / delivery_attempts, and the
// address guard must refuse internal addresses both when a webhook is saved and when it is tested.
import dns from 'node:dns';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import net from 'node:net';
import os from 'node:os';
import ipaddr from 'ipaddr.js';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Problem, WebhookParms, WebhookTestEvent } from '../../client/index.js';
import { serviceName, serviceVersion } from '../../server/app.js';
import { type Answer, closedPort, type Receiver, startReceiver } from '../delivery/receiver.js';
import { backends } from '../support/backends.js';
import { type Client, startService, type TestService } from '../support/service.js';

type Reason = NonNullable<Problem['reason']>;

/** DELIVERY_TIMEOUT_MS of the main service: short, so the timeout cases stay quick. */
const timeoutMs = 500;
/** How long a timed-out test call may take at most: a hang check with room for a busy 2-core machine. */
const hangBoundMs = timeoutMs + 2000;
const testPath = (id: string) => `/api/web/v1/webhooks/test/${id}`;

// ---- Tripwire: no connection to a literal IP outside loopback, ever. ----------------------------------------------
// The blocked-address cases point webhooks at 10.0.0.1, 169.254.169.254 and the like. The guard must refuse them
// before connecting; should it ever fail to, this stops the connection in net.connect (which undici's connector
// calls) instead of sending a SYN to a real network, and the afterEach below fails the test that caused it.
const offLoopbackConnects: string[] = [];
let loopbackConnects = 0;

function connectHost(args: unknown[]): string | undefined {
  const [options] = args;
  if (typeof options !== 'object' || options === null || !('host' in options)) return undefined;
  return typeof options.host === 'string' ? options.host.replace(/^\[(.*)\]$/, '$1') : undefined;
}

beforeAll(() => {
  const realConnect = net.connect.bind(net) as (...args: unknown[]) => net.Socket;
  vi.spyOn(net, 'connect').mockImplementation(((...args: unknown[]) => {
    const host = connectHost(args);
    // Names are resolved by the guard's lookup inside the connection, so only literal addresses are judged here.
    if (host !== undefined && net.isIP(host)) {
      if (ipaddr.process(host).range() !== 'loopback') {
        offLoopbackConnects.push(host);
        throw new Error(`test tripwire: refused to connect to ${host}, which is not a loopback address`);
      }
      loopbackConnects += 1;
    }
    return realConnect(...args);
  }) as unknown as typeof net.connect);
});
afterAll(() => {
  vi.restoreAllMocks();
});

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
  expect(offLoopbackConnects.splice(0), 'connections attempted to non-loopback addresses').toEqual([]);
});

// ---- Helpers -------------------------------------------------------------------------------------------------------

async function receiver(answer?: Answer): Promise<Receiver> {
  const started = await startReceiver(answer);
  cleanups.push(() => started.close());
  return started;
}

const answerWith =
  (status: number, body = '', headers: Record<string, string> = {}): Answer =>
  (_, response) =>
    response.writeHead(status, headers).end(body);

/** Resolves once `count` requests have arrived; they are held unanswered until release() answers them all 204. */
function holdRequests(count: number) {
  const held: ServerResponse[] = [];
  let arrived!: () => void;
  const allArrived = new Promise<void>((resolve) => (arrived = resolve));
  const answer: Answer = (_, response) => {
    held.push(response);
    if (held.length === count) arrived();
  };
  const release = () => held.splice(0).forEach((response) => response.destroyed || response.writeHead(204).end());
  return { answer, allArrived, release };
}

/** Writes `total` bytes from one reused 64 KiB chunk, honouring backpressure, until done or hung up on. */
async function stream(response: ServerResponse, total: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, 'x');
  response.on('error', () => {});
  let written = 0;
  while (written < total && !response.destroyed) {
    written += chunk.length;
    if (!response.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          response.off('drain', done).off('close', done);
          resolve();
        };
        response.on('drain', done).on('close', done);
      });
    }
  }
  response.end();
  return written;
}

const flat = (headers: IncomingHttpHeaders): Record<string, string> =>
  Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, [value ?? ''].flat().join(', ')]));

async function create(api: Client, body: WebhookParms) {
  const { data, error, response } = await api.POST('/api/web/v1/webhooks', { body });
  expect(error, `create ${body.callbackUrl}`).toBeUndefined();
  expect(response.status).toBe(200);
  return data!;
}

interface TestCall {
  status: number;
  contentType: string | null;
  /** The raw body of a 2xx answer. */
  body?: string;
  problem?: Problem;
  elapsedMs: number;
}

async function callTest(api: Client, id: string): Promise<TestCall> {
  const started = performance.now();
  const { data, error, response } = await api.POST('/api/web/v1/webhooks/test/{id}', {
    params: { path: { id } },
    parseAs: 'text',
  });
  // openapi-fetch leaves a Content-Length: 0 body unread and answers data undefined.
  const body = response.ok ? (data ?? (await response.text())) : undefined;
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    ...(body !== undefined ? { body } : {}),
    ...(error ? { problem: error as Problem } : {}),
    elapsedMs: performance.now() - started,
  };
}

function expectDeliveryFailed(call: TestCall, id: string, reason: Reason, responseStatus?: number): Problem {
  expect(call.status, JSON.stringify(call.problem)).toBe(502);
  expect(call.contentType).toMatch(/^application\/problem\+json/);
  const problem = call.problem!;
  expect(problem).toMatchObject({
    type: 'urn:webhooks-api:problem:delivery-failed',
    title: 'Test delivery failed',
    status: 502,
    instance: testPath(id),
    reason,
    detail: expect.any(String),
  });
  if (responseStatus === undefined) expect(problem).not.toHaveProperty('responseStatus');
  else expect(problem.responseStatus).toBe(responseStatus);
  expect(Number.isInteger(problem.durationMs)).toBe(true);
  expect(problem.durationMs).toBeGreaterThanOrEqual(0);
  return problem;
}

function expectAccepted(call: TestCall) {
  expect(call.status, JSON.stringify(call.problem)).toBe(200);
  expect(call.body).toBe('');
}

/** Every delivery of a webhook with its attempts, oldest first. */
async function recorded(service: TestService, webhookId: string) {
  return service.app.db
    .selectFrom('deliveries')
    .innerJoin('delivery_attempts', 'delivery_attempts.delivery_id', 'deliveries.id')
    .select([
      'deliveries.id',
      'deliveries.tenant_id',
      'deliveries.event_id',
      'deliveries.event_type',
      'deliveries.message_id',
      'deliveries.payload',
      'deliveries.status',
      'deliveries.attempt_count',
      'deliveries.next_attempt_at',
      'delivery_attempts.succeeded',
      'delivery_attempts.reason',
      'delivery_attempts.response_status',
      'delivery_attempts.duration_ms',
      'delivery_attempts.response_body',
      'delivery_attempts.detail',
    ])
    .where('deliveries.webhook_id', '=', webhookId)
    // Attempts are numbered in insertion order; each test delivery has exactly one.
    .orderBy('delivery_attempts.seq')
    .execute();
}

/** The single delivery of a webhook tested once, with its single attempt, matching `expected`. */
async function expectOneRecord(service: TestService, webhookId: string, expected: Record<string, unknown>) {
  const rows = await recorded(service, webhookId);
  expect(rows).toHaveLength(1);
  expect(rows[0]).toMatchObject({
    event_type: 'webhook.test',
    event_id: null,
    attempt_count: 1,
    next_attempt_at: null,
    detail: expect.any(String),
    ...expected,
  });
  return rows[0]!;
}

// ---- The test operation against receivers that behave in every way ----------------------------------------------

for (const backend of backends) {
  describe.skipIf(!backend.available)(`the test operation on ${backend.name}`, () => {
    let service: TestService;
    let api: Client;
    let n = 0;
    /** A webhook parameter set with a unique URL path, so no two webhooks of the tenant collide. */
    const parms = (url: string, extra: Partial<WebhookParms> = {}): WebhookParms => ({
      callbackUrl: `${url}/${++n}`,
      events: ['order.created'],
      ...extra,
    });

    beforeAll(async () => {
      service = await startService(backend, { DELIVERY_TIMEOUT_MS: String(timeoutMs) });
      api = service.client(await service.token());
    });
    afterAll(() => service?.close());

    it('sends the documented webhook.test envelope, signed with the secret of the create response', async () => {
      const hook = await receiver();
      const webhook = await create(api, parms(hook.url));
      const before = Date.now();
      const connectsBefore = loopbackConnects;

      expectAccepted(await callTest(api, webhook.id));

      const after = Date.now();
      const request = await hook.firstRequest();
      const headers = flat(request.headers);
      expect(request.method).toBe('POST');
      expect(request.path).toBe(`/hook/${n}`);
      expect(headers['content-type']).toMatch(/^application\/json\b/);
      expect(headers['user-agent']).toBe(`${serviceName}/${serviceVersion}`);
      expect(headers['user-agent']).toMatch(/^webhooks-api\/\d+\.\d+\.\d+/);
      expect(headers['webhook-id']).toMatch(/^msg_[A-Za-z0-9_-]+$/);
      expect(headers['webhook-timestamp']).toMatch(/^\d+$/);

      // What a receiver does: verify with the reference library before trusting the body.
      const event = new Webhook(webhook.secret!).verify(request.body, headers) as WebhookTestEvent;
      expect(event).toEqual({
        type: 'webhook.test',
        timestamp: expect.any(String),
        data: { webhookId: webhook.id, message: expect.any(String) },
      });
      expect(event.data.message.length).toBeGreaterThan(0);
      const at = Date.parse(event.timestamp);
      expect(new Date(at).toISOString()).toBe(event.timestamp);
      expect(at).toBeGreaterThanOrEqual(before);
      expect(at).toBeLessThanOrEqual(after);
      expect(Number(headers['webhook-timestamp'])).toBe(Math.floor(at / 1000));

      // The signature really binds secret and body: another secret or one changed byte fails.
      const otherSecret = `whsec_${Buffer.alloc(32, 1).toString('base64')}`;
      expect(() => new Webhook(otherSecret).verify(request.body, headers)).toThrow();
      const tampered = request.body.replace('webhook.test', 'webhook.tesT');
      expect(() => new Webhook(webhook.secret!).verify(tampered, headers)).toThrow();

      await expectOneRecord(service, webhook.id, {
        tenant_id: 'tenant-a',
        message_id: headers['webhook-id'],
        payload: request.body,
        status: 'succeeded',
        succeeded: 1,
        reason: null,
        response_status: 204,
        response_body: null,
      });
      // The tripwire saw this delivery's connection, so its silence in the blocked cases means something.
      expect(loopbackConnects).toBeGreaterThan(connectsBefore);
    });

    it('sends the custom headers registered on the webhook', async () => {
      const hook = await receiver();
      const custom = { 'X-Shop-Id': 'eu-1234', Authorization: 'Bearer receiver-token', 'X-Empty': '' };
      const webhook = await create(api, parms(hook.url, { headers: custom }));

      expectAccepted(await callTest(api, webhook.id));

      const { headers } = await hook.firstRequest();
      expect(headers).toMatchObject({ 'x-shop-id': 'eu-1234', authorization: 'Bearer receiver-token', 'x-empty': '' });
    });

    it.each([
      { answer: 200, body: '', enabled: true },
      { answer: 202, body: 'queued, thanks', enabled: true },
      { answer: 204, body: '', enabled: false },
      { answer: 299, body: 'x'.repeat(3000), enabled: false },
    ])(
      'answers 200 with an empty body when the receiver answers $answer (enabled: $enabled)',
      async ({ answer, body, enabled }) => {
        const hook = await receiver(answerWith(answer, body));
        const webhook = await create(api, parms(hook.url, { enabled }));

        expectAccepted(await callTest(api, webhook.id));

        expect(hook.requests).toHaveLength(1);
        await expectOneRecord(service, webhook.id, {
          status: 'succeeded',
          succeeded: 1,
          reason: null,
          response_status: answer,
          // The first KiB of what the receiver said, nothing when it said nothing.
          response_body: body ? body.slice(0, 1024) : null,
        });
      },
    );

    it.each([
      { case: 'answers 500', answer: answerWith(500, 'boom'), responseStatus: 500, body: 'boom' },
      {
        case: 'answers 503 with a 5 KiB body',
        answer: answerWith(503, 'e'.repeat(5120)),
        responseStatus: 503,
        body: 'e'.repeat(1024),
      },
      { case: 'answers 410 with nothing', answer: answerWith(410), responseStatus: 410, body: null },
    ])('answers 502 http_status when the receiver $case', async ({ answer, responseStatus, body }) => {
      const hook = await receiver(answer);
      const webhook = await create(api, parms(hook.url));

      const problem = expectDeliveryFailed(await callTest(api, webhook.id), webhook.id, 'http_status', responseStatus);

      expect(problem.detail).toBe(`The receiver answered HTTP ${responseStatus}.`);
      expect(hook.requests).toHaveLength(1);
      await expectOneRecord(service, webhook.id, {
        message_id: hook.requests[0]!.headers['webhook-id'],
        status: 'failed',
        succeeded: 0,
        reason: 'http_status',
        response_status: responseStatus,
        duration_ms: problem.durationMs,
        response_body: body,
        detail: problem.detail,
      });
    });

    it.each([
      { case: 'never answers', answer: (() => {}) as Answer, responseStatus: undefined },
      {
        case: 'sends its status line, then stalls',
        answer: ((_, response) => {
          response.writeHead(200);
          response.write('partial');
        }) as Answer,
        responseStatus: 200,
      },
    ])(`answers 502 timeout within about ${timeoutMs} ms when the receiver $case`, async (timeoutCase) => {
      const { answer, responseStatus } = timeoutCase;
      const hook = await receiver(answer);
      const webhook = await create(api, parms(hook.url));

      const call = await callTest(api, webhook.id);

      expect(call.elapsedMs).toBeLessThan(hangBoundMs);
      const problem = expectDeliveryFailed(call, webhook.id, 'timeout', responseStatus);
      expect(problem.durationMs).toBeGreaterThanOrEqual(timeoutMs - 20);
      expect(problem.durationMs).toBeLessThan(hangBoundMs);
      expect(hook.requests).toHaveLength(1);
      await expectOneRecord(service, webhook.id, {
        status: 'failed',
        succeeded: 0,
        reason: 'timeout',
        response_status: responseStatus ?? null,
        duration_ms: problem.durationMs,
      });
    });

    it('answers 502 connection_refused for a port nothing listens on', async () => {
      const port = await closedPort();
      const webhook = await create(api, parms(`http://127.0.0.1:${port}/hook`));

      const problem = expectDeliveryFailed(await callTest(api, webhook.id), webhook.id, 'connection_refused');

      expect(problem.detail).toContain(`127.0.0.1:${port}`);
      await expectOneRecord(service, webhook.id, {
        status: 'failed',
        reason: 'connection_refused',
        response_status: null,
        response_body: null,
        duration_ms: problem.durationMs,
      });
    });

    it('does not follow a redirect: 502 http_status 302, and the redirect target gets nothing', async () => {
      const target = await receiver();
      const hook = await receiver(answerWith(302, '', { location: target.url }));
      const webhook = await create(api, parms(hook.url));

      expectDeliveryFailed(await callTest(api, webhook.id), webhook.id, 'http_status', 302);

      expect(hook.requests).toHaveLength(1);
      expect(target.connections).toBe(0);
      expect(target.requests).toEqual([]);
      await expectOneRecord(service, webhook.id, { status: 'failed', reason: 'http_status', response_status: 302 });
    });

    it('reads only the start of a ~100 MiB answer and stays within memory', async () => {
      const hugeBytes = 100 * 1024 * 1024;
      let written: Promise<number> | undefined;
      const hook = await receiver((_, response) => {
        response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(hugeBytes) });
        written = stream(response, hugeBytes);
      });
      const webhook = await create(api, parms(hook.url));
      const rssBefore = process.memoryUsage().rss;

      const call = await callTest(api, webhook.id);
      const sent = await written!;

      expectAccepted(call);
      expect(call.elapsedMs).toBeLessThan(hangBoundMs);
      // The service hung up after the bytes it keeps, long before the receiver was done.
      expect(sent).toBeLessThan(hugeBytes);
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(64 * 1024 * 1024);
      await expectOneRecord(service, webhook.id, {
        status: 'succeeded',
        response_status: 200,
        response_body: 'x'.repeat(1024),
      });
    });

    it('records every call as its own delivery with one attempt', async () => {
      const statuses = [200, 500, 204];
      let next = 0;
      const hook = await receiver((_, response) => response.writeHead(statuses[next++]!).end(`answer ${next}`));
      const webhook = await create(api, parms(hook.url));

      const calls: TestCall[] = [];
      for (let i = 0; i < statuses.length; i++) calls.push(await callTest(api, webhook.id));

      expect(calls.map((call) => call.status)).toEqual([200, 502, 200]);
      const rows = await recorded(service, webhook.id);
      const outcomes = rows.map(({ status, succeeded, reason, response_status, response_body }) => {
        return { status, succeeded, reason, response_status, response_body };
      });
      expect(outcomes).toEqual([
        { status: 'succeeded', succeeded: 1, reason: null, response_status: 200, response_body: 'answer 1' },
        { status: 'failed', succeeded: 0, reason: 'http_status', response_status: 500, response_body: 'answer 2' },
        { status: 'succeeded', succeeded: 1, reason: null, response_status: 204, response_body: null }, // 204: no body
      ]);
      // One message id per call, the one the receiver saw, and one row per attempt.
      expect(rows.map((row) => row.message_id)).toEqual(hook.requests.map((request) => request.headers['webhook-id']));
      expect(new Set(rows.map((row) => row.id)).size).toBe(statuses.length);
      expect(rows.map((row) => row.payload)).toEqual(hook.requests.map((request) => request.body));
    });

    it('keeps answering other requests while test calls wait on a receiver', async () => {
      // A timeout far beyond the test's own pace: the held calls end when the receiver answers, not by timing out.
      // Same store (no second PostgreSQL schema to migrate), own tenant (its list holds only these webhooks).
      const patient = await startService(backend, { DELIVERY_TIMEOUT_MS: '10000' }, { store: service.store });
      const patientApi = patient.client(await patient.token('tenant-in-flight'));
      const inFlight = 4;
      const held = holdRequests(inFlight);
      const hook = await startReceiver(held.answer);
      let calls: Array<Promise<TestCall>> = [];
      // Even when the test fails midway, the service closes only once no call is in flight: a connection that
      // turns idle after close() began is kept open until the keep-alive timeout (about 72 s).
      cleanups.push(async () => {
        held.release();
        await hook.close();
        await Promise.allSettled(calls);
        await patient.close();
      });
      const webhooks = [];
      for (let i = 0; i < inFlight; i++) webhooks.push(await create(patientApi, parms(hook.url)));

      const finished: string[] = [];
      calls = webhooks.map((webhook, i) =>
        callTest(patientApi, webhook.id).then((call) => {
          finished.push(`test ${i}`);
          return call;
        }),
      );
      // Every test call is now waiting on the receiver; should one end first instead, the test fails right there.
      await Promise.race([held.allArrived, Promise.race(calls)]);
      expect(finished, 'test calls that ended before all reached the receiver').toEqual([]);
      const list = await patientApi.GET('/api/web/v1/webhooks');
      finished.push('list');
      const health = await patientApi.GET('/healthz');
      finished.push('healthz');

      expect(finished).toEqual(['list', 'healthz']);
      expect(list.response.status).toBe(200);
      expect(list.data!.map((webhook) => webhook.id).sort()).toEqual(webhooks.map((webhook) => webhook.id).sort());
      expect(health.response.status).toBe(200);
      expect(health.data).toEqual({ status: 'ok', checks: { store: 'ok' } });

      held.release();
      const results = await Promise.all(calls);
      results.forEach(expectAccepted);
      expect(finished.slice(0, 2)).toEqual(['list', 'healthz']);
      expect(finished).toHaveLength(2 + inFlight);
    });
  });
}

// ---- The address guard with an empty allow-list ------------------------------------------------------------------

/** One host of every address class a callback must not reach; `loopback` ones would reach this machine. */
const blockedHosts: Array<{ host: string; kind: string }> = [
  { host: '127.0.0.1', kind: 'loopback' },
  { host: '127.1', kind: 'loopback, short form' },
  { host: '2130706433', kind: 'loopback, one number' },
  { host: '0x7f.1', kind: 'loopback, hexadecimal' },
  { host: '0177.0.0.1', kind: 'loopback, octal' },
  { host: 'localhost', kind: 'loopback name' },
  { host: 'localhost.', kind: 'loopback name, fully qualified' },
  { host: '10.0.0.1', kind: 'private' },
  { host: '172.16.0.1', kind: 'private' },
  { host: '192.168.1.1', kind: 'private' },
  { host: '169.254.169.254', kind: 'link-local, cloud metadata' },
  { host: '100.64.0.1', kind: 'carrier-grade NAT' },
  { host: '0.0.0.0', kind: 'unspecified, reaches this machine' },
  { host: '224.0.0.1', kind: 'multicast' },
  { host: '240.0.0.1', kind: 'reserved' },
  { host: '[::1]', kind: 'IPv6 loopback' },
  { host: '[::]', kind: 'IPv6 unspecified' },
  { host: '[fc00::1]', kind: 'IPv6 unique local' },
  { host: '[fe80::1]', kind: 'IPv6 link-local' },
  { host: '[::ffff:127.0.0.1]', kind: 'IPv4-mapped loopback' },
];

/** A host name (not a localhost name) that resolves to loopback here, for the DNS rebinding case, or why none. */
async function findLoopbackName(): Promise<{ name: string; address: string } | { missing: string }> {
  const name = os.hostname();
  if (!name || name === 'localhost' || name.endsWith('.localhost')) {
    return { missing: `os.hostname() is "${name}", which the guard refuses by name` };
  }
  try {
    const addresses = await dns.promises.lookup(name, { all: true });
    const loopback = addresses.find(({ address }) => ipaddr.process(address).range() === 'loopback');
    if (loopback) return { name, address: loopback.address };
    return { missing: `os.hostname() "${name}" resolves to ${addresses.map((a) => a.address).join(', ')}` };
  } catch (error) {
    return { missing: `os.hostname() "${name}" does not resolve (${(error as Error).message})` };
  }
}
const rebinding = await findLoopbackName();

for (const backend of backends) {
  describe.skipIf(!backend.available)(`the test operation with an empty allow-list on ${backend.name}`, () => {
    /** Allows every address, so it can save the webhooks the other one must refuse. */
    let permissive: TestService;
    /** CALLBACK_ALLOWED_CIDRS empty, over the same store. */
    let strict: TestService;
    let permissiveApi: Client;
    let strictApi: Client;
    /** Where every loopback case points: it must never see a connection. */
    let bystander: Receiver;

    beforeAll(async () => {
      permissive = await startService(backend, { CALLBACK_ALLOWED_CIDRS: '0.0.0.0/0,::/0' });
      strict = await startService(
        backend,
        { CALLBACK_ALLOWED_CIDRS: '', DELIVERY_TIMEOUT_MS: String(timeoutMs) },
        { store: permissive.store },
      );
      const token = await permissive.token(); // one store, so the key works on both
      permissiveApi = permissive.client(token);
      strictApi = strict.client(token);
      bystander = await startReceiver();
    });
    afterAll(async () => {
      await bystander?.close();
      await strict?.close();
      await permissive?.close();
    });

    it.each(blockedHosts)('refuses $host ($kind) at create with a 400 pointing at /callbackUrl', async ({ host }) => {
      const { data, error, response } = await strictApi.POST('/api/web/v1/webhooks', {
        body: { callbackUrl: `http://${host}:${bystander.port}/hook`, events: ['order.created'] },
      });
      expect(data).toBeUndefined();
      expect(response.status).toBe(400);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(error).toMatchObject({ status: 400, type: 'urn:webhooks-api:problem:validation' });
      expect(error!.errors).toEqual([
        { pointer: '/callbackUrl', in: 'body', detail: expect.stringMatching(/^is not allowed: /) },
      ]);
    });

    it.each(blockedHosts.map((entry, index) => ({ ...entry, index })))(
      'refuses $host ($kind) at test time with 502 blocked_address, sending nothing',
      async ({ host, index }) => {
        const saved = await create(permissiveApi, {
          callbackUrl: `http://${host}:${bystander.port}/hook/${index}`,
          events: ['order.created'],
        });

        const problem = expectDeliveryFailed(await callTest(strictApi, saved.id), saved.id, 'blocked_address');

        expect(problem.detail).toMatch(/deliveries go to public addresses only\.$/);
        expect(bystander.connections).toBe(0);
        expect(offLoopbackConnects).toEqual([]);
        await expectOneRecord(strict, saved.id, {
          status: 'failed',
          reason: 'blocked_address',
          response_status: null,
          detail: problem.detail,
        });
      },
    );

    it.skipIf('missing' in rebinding)(
      'missing' in rebinding
        ? `SKIPPED DNS rebinding: no host name resolves to loopback on this machine (${rebinding.missing})`
        : `refuses ${rebinding.name}, a name that passes create but resolves to ${rebinding.address} (DNS rebinding)`,
      async () => {
        if ('missing' in rebinding) return;
        const hook = await receiver();
        // No DNS at create: a name is judged when it is resolved, at delivery.
        const webhook = await create(strictApi, {
          callbackUrl: `http://${rebinding.name}:${hook.port}/hook`,
          events: ['order.created'],
        });

        const problem = expectDeliveryFailed(await callTest(strictApi, webhook.id), webhook.id, 'blocked_address');

        expect(problem.detail).toContain(`${rebinding.name} resolves to a loopback address`);
        expect(problem.detail).not.toContain(rebinding.address); // internal addresses stay out of what tenants see
        expect(hook.connections).toBe(0);
        await expectOneRecord(strict, webhook.id, { status: 'failed', reason: 'blocked_address' });

        // The control: where loopback is allowed, the very same webhook does reach that receiver.
        expectAccepted(await callTest(permissiveApi, webhook.id));
        expect(hook.requests).toHaveLength(1);
      },
    );
  });
}
