// Publishing events end to end (issue 5): the real service on every store backend, the project's client, and real
// receivers on 127.0.0.1. Covers the publish contract (202, validation, 256 KiB bound, permission), idempotency
// keys, fan-out by event-type filter, what a receiver gets (envelope, Standard Webhooks signature, custom
// headers), and the worker's retries: fail then succeed, give up, Retry-After, 410 Gone and auto-disable.
// Waits are events (N requests arrived) or polls of the API's state, each bounded by a deadline.
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { components } from '../../client/index.js';
import { backends } from '../support/backends.js';
import {
  accept,
  always,
  envelopeOf,
  eventually,
  failTimes,
  type LoggedRequest,
  type RecordingReceiver,
  signatureHeaders,
  receiverPool,
} from '../support/receiver-log.js';
import { type Client, createWebhook, startService, type TestService } from '../support/service.js';

type Delivery = components['schemas']['Delivery'];
type EventParms = components['schemas']['EventParms'];

const permissions = ['WEBHOOKS:VIEW', 'WEBHOOKS:ADD', 'WEBHOOKS:EDIT', 'WEBHOOKS:REMOVE', 'EVENTS:PUBLISH'];
/** Four attempts, 100 ms apart: retries in a test's time. */
const fastDelivery = { DELIVERY_RETRY_SCHEDULE: '0,100ms,100ms,100ms', DELIVERY_POLL_INTERVAL: '20ms' };
const scheduleLength = 4;
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const maxDataBytes = 256 * 1024;

// ---- helpers ---------------------------------------------------------------------------------------------------

const receivers = receiverPool();
afterAll(receivers.closeAll);
const receiver = receivers.start;

async function publish(api: Client, body: EventParms) {
  const answer = await api.POST('/api/web/v1/events', { body });
  expect(answer.response.status, `publish ${JSON.stringify(answer.error)}`).toBe(202);
  return { event: answer.data!, response: answer.response };
}

async function deliveriesOf(api: Client, id: string): Promise<Delivery[]> {
  const { data, response } = await api.GET('/api/web/v1/webhooks/{id}/deliveries', { params: { path: { id } } });
  expect(response.status).toBe(200);
  return data!;
}

/** The webhook's delivery of this event once it is no longer pending. */
function settledDelivery(api: Client, webhookId: string, eventId: string, timeoutMs = 5_000): Promise<Delivery> {
  return eventually(
    async () => {
      const delivery = (await deliveriesOf(api, webhookId)).find((d) => d.eventId === eventId);
      return delivery && delivery.status !== 'pending' ? delivery : undefined;
    },
    { timeoutMs, what: `delivery of event ${eventId} settled` },
  );
}

const ofEvent = (marker: string) => (request: LoggedRequest) => envelopeOf(request).data.marker === marker;

for (const backend of backends) {
  describe.skipIf(!backend.available)(`events on ${backend.name}`, () => {
    let service: TestService;
    let tenantCount = 0;

    beforeAll(async () => {
      service = await startService(backend, fastDelivery);
    });
    afterAll(() => service?.close());

    /** A client for a tenant of its own, so no other test's webhooks take part in its fan-out. */
    async function freshTenant(perms = permissions): Promise<{ tenant: string; api: Client }> {
      const tenant = `events-${backend.name}-${++tenantCount}`;
      return { tenant, api: service.client(await service.token(tenant, perms)) };
    }

    // ---- publishing ----------------------------------------------------------------------------------------------

    describe('publishing', () => {
      it('answers 202 with the event id, its type, createdAt and how many deliveries it created', async () => {
        const { api } = await freshTenant();
        const r = await receiver();
        await createWebhook(api, { callbackUrl: `${r.url}/a`, events: ['order.created'] });
        await createWebhook(api, { callbackUrl: `${r.url}/b`, events: ['order.*'] });
        await createWebhook(api, { callbackUrl: `${r.url}/c`, events: ['customer.created'] });
        const before = Date.now();
        const { event, response } = await publish(api, { type: 'order.created', data: { marker: 'p1' } });
        expect(response.headers.get('content-type')).toContain('application/json');
        expect(response.headers.get('idempotent-replayed')).toBeNull();
        expect(Object.keys(event).sort()).toEqual(['createdAt', 'deliveries', 'id', 'type']);
        expect(event).toMatchObject({ type: 'order.created', deliveries: 2 });
        expect(event.id).toMatch(uuid);
        expect(Date.parse(event.createdAt)).toBeGreaterThanOrEqual(before - 1000);
        expect(Date.parse(event.createdAt)).toBeLessThanOrEqual(Date.now() + 1000);
        await r.waitFor(2, { where: ofEvent('p1') });
      });

      it('answers 202 with 0 deliveries when no webhook subscribes', async () => {
        const { api } = await freshTenant();
        const { event } = await publish(api, { type: 'nobody.listens', data: {} });
        expect(event.deliveries).toBe(0);
      });

      it.each([
        ['upper case', 'Order.created'],
        ['a trailing wildcard', 'order.*'],
        ['the match-all wildcard', '*'],
        ['a leading dot', '.order'],
        ['a trailing dot', 'order.'],
        ['an empty segment', 'order..created'],
        ['a space', 'order created'],
        ['a non-ASCII letter', 'ordér.created'],
        ['a segment starting with -', 'order.-created'],
        ['the empty string', ''],
        ['129 characters', 'a'.repeat(129)],
      ])('refuses a type with %s: 400 pointing at /type', async (_name, type) => {
        const { api } = await freshTenant();
        const { response, error } = await api.POST('/api/web/v1/events', { body: { type, data: {} } });
        expect(response.status).toBe(400);
        expect(response.headers.get('content-type')).toContain('application/problem+json');
        expect(error!.errors).toContainEqual(expect.objectContaining({ pointer: '/type', in: 'body' }));
      });

      it.each([['order'], ['a'.repeat(128)], ['order_v2.item-shipped.0']])('accepts the type %s', async (type) => {
        const { api } = await freshTenant();
        await publish(api, { type, data: {} });
      });

      it.each([
        ['an array', []],
        ['a string', 'order'],
        ['a number', 42],
        ['null', null],
      ])('refuses data that is %s: 400 pointing at /data', async (_name, data) => {
        const { api } = await freshTenant();
        const { response, error } = await api.POST('/api/web/v1/events', { body: { type: 'order.created', data } as never });
        expect(response.status).toBe(400);
        expect(error!.errors).toContainEqual(expect.objectContaining({ pointer: '/data' }));
      });

      it.each([
        ['no type', { data: {} }, '/type'],
        ['no data', { type: 'order.created' }, '/data'],
        ['an unknown property', { type: 'order.created', data: {}, priority: 1 }, '/priority'],
        ['an empty idempotency key', { type: 'order.created', data: {}, idempotencyKey: '' }, '/idempotencyKey'],
        ['a 256-character idempotency key', { type: 'order.created', data: {}, idempotencyKey: 'k'.repeat(256) }, '/idempotencyKey'],
      ])('refuses a body with %s: 400 pointing at %s', async (_name, body, pointer) => {
        const { api } = await freshTenant();
        const { response, error } = await api.POST('/api/web/v1/events', { body: body as never });
        expect(response.status).toBe(400);
        expect(error!.errors).toContainEqual(expect.objectContaining({ pointer, in: 'body' }));
      });

      it('accepts data of exactly 256 KiB as JSON and refuses one byte more, pointing at /data', async () => {
        const { api } = await freshTenant();
        const r = await receiver();
        const hook = await createWebhook(api, { callbackUrl: r.url, events: ['big.event'] });
        const padding = maxDataBytes - JSON.stringify({ s: '' }).length;
        const atLimit = { s: 'x'.repeat(padding) };
        expect(Buffer.byteLength(JSON.stringify(atLimit))).toBe(maxDataBytes);
        const { event } = await publish(api, { type: 'big.event', data: atLimit });
        expect(event.deliveries).toBe(1);

        const over = await api.POST('/api/web/v1/events', { body: { type: 'big.event', data: { s: 'x'.repeat(padding + 1) } } });
        expect(over.response.status).toBe(400);
        expect(over.error!.errors).toEqual([expect.objectContaining({ pointer: '/data', in: 'body' })]);

        // The bound is on bytes: 2-byte characters reach it with half as many characters.
        const multiByte = { s: `${'é'.repeat(padding / 2)}x` };
        expect(Buffer.byteLength(JSON.stringify(multiByte))).toBe(maxDataBytes + 1);
        const overInBytes = await api.POST('/api/web/v1/events', { body: { type: 'big.event', data: multiByte } });
        expect(overInBytes.response.status).toBe(400);
        expect(overInBytes.error!.errors).toEqual([expect.objectContaining({ pointer: '/data' })]);

        // Only the accepted event was stored and delivered, whole.
        const [arrived] = await r.waitFor(1);
        expect(envelopeOf(arrived!).data).toEqual(atLimit);
        expect(await deliveriesOf(api, hook.id)).toHaveLength(1);
      });

      it('answers 403 without EVENTS:PUBLISH, 401 without a token, and publishes nothing', async () => {
        const { tenant, api } = await freshTenant();
        const hook = await createWebhook(api, { callbackUrl: (await receiver()).url, events: ['*'] });
        const withoutPublish = service.client(
          await service.token(tenant, ['WEBHOOKS:VIEW', 'WEBHOOKS:ADD', 'WEBHOOKS:EDIT', 'WEBHOOKS:REMOVE']),
        );
        const forbidden = await withoutPublish.POST('/api/web/v1/events', { body: { type: 'order.created', data: {} } });
        expect(forbidden.response.status).toBe(403);
        expect(forbidden.error).toMatchObject({ status: 403, detail: 'This operation needs the EVENTS:PUBLISH permission.' });

        const anonymous = await fetch(`${service.baseUrl}/api/web/v1/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ type: 'order.created', data: {} }),
        });
        expect(anonymous.status).toBe(401);
        expect(await deliveriesOf(api, hook.id)).toEqual([]);
      });
    });

    // ---- idempotency -------------------------------------------------------------------------------------------

    describe('idempotency keys', () => {
      it('answers the first event again for the same key, with Idempotent-Replayed, and delivers once', async () => {
        const { api } = await freshTenant();
        const r = await receiver();
        const hook = await createWebhook(api, { callbackUrl: r.url, events: ['order.*'] });
        const body = { type: 'order.created', data: { marker: 'idem-1', total: 5 }, idempotencyKey: 'order-1-created' };
        const first = await publish(api, body);
        expect(first.response.headers.get('idempotent-replayed')).toBeNull();
        const again = await publish(api, body);
        expect(again.response.headers.get('idempotent-replayed')).toBe('true');
        expect(again.event).toEqual(first.event);

        // The store holds one delivery (they are written before the 202), and the receiver gets exactly one:
        // a later event to the same webhook is the barrier after which a second copy would have shown.
        expect((await deliveriesOf(api, hook.id)).map((d) => d.eventId)).toEqual([first.event.id]);
        await publish(api, { type: 'order.paid', data: { marker: 'idem-barrier' } });
        await r.waitFor(1, { where: ofEvent('idem-barrier') });
        await settledDelivery(api, hook.id, first.event.id);
        expect(r.requests.filter(ofEvent('idem-1'))).toHaveLength(1);
      });

      it('answers 409 for the same key with different data or type, and keeps answering the first event', async () => {
        const { api } = await freshTenant();
        const first = await publish(api, { type: 'order.created', data: { n: 1 }, idempotencyKey: 'k-409' });
        for (const body of [
          { type: 'order.created', data: { n: 2 }, idempotencyKey: 'k-409' },
          { type: 'order.created', data: { n: 1, extra: true }, idempotencyKey: 'k-409' },
          { type: 'order.paid', data: { n: 1 }, idempotencyKey: 'k-409' },
        ]) {
          const { response, error } = await api.POST('/api/web/v1/events', { body });
          expect(response.status, JSON.stringify(body)).toBe(409);
          expect(response.headers.get('content-type')).toContain('application/problem+json');
          expect(error).toMatchObject({ status: 409, type: 'urn:webhooks-api:problem:idempotency-key-reused' });
          expect(error!.detail).toContain(first.event.id);
        }
        const replay = await publish(api, { type: 'order.created', data: { n: 1 }, idempotencyKey: 'k-409' });
        expect(replay.response.headers.get('idempotent-replayed')).toBe('true');
        expect(replay.event.id).toBe(first.event.id);
      });

      it('publishes independently in another tenant with the same key', async () => {
        const a = await freshTenant();
        const b = await freshTenant();
        const ra = await receiver();
        const rb = await receiver();
        await createWebhook(a.api, { callbackUrl: ra.url, events: ['order.created'] });
        await createWebhook(b.api, { callbackUrl: rb.url, events: ['order.created'] });
        const body = { type: 'order.created', data: { marker: 'shared-key' }, idempotencyKey: 'shared' };
        const inA = await publish(a.api, body);
        const inB = await publish(b.api, body);
        expect(inB.response.headers.get('idempotent-replayed')).toBeNull();
        expect(inB.event.id).not.toBe(inA.event.id);
        expect(inB.event.deliveries).toBe(1);
        await Promise.all([ra.waitFor(1), rb.waitFor(1)]);
        // Different data under the same key is no conflict across tenants either.
        await publish(b.api, { type: 'order.created', data: { other: true }, idempotencyKey: 'shared-2' });
        await publish(a.api, { type: 'order.created', data: { different: true }, idempotencyKey: 'shared-2' });
      });

      it('publishes once when requests with one key race', async () => {
        const { api } = await freshTenant();
        const r = await receiver();
        const hook = await createWebhook(api, { callbackUrl: r.url, events: ['order.created'] });
        const body = { type: 'order.created', data: { marker: 'race' }, idempotencyKey: 'raced-key' };
        const answers = await Promise.all(Array.from({ length: 6 }, () => api.POST('/api/web/v1/events', { body })));
        expect(answers.map((a) => a.response.status)).toEqual(Array(6).fill(202));
        expect(new Set(answers.map((a) => a.data!.id)).size).toBe(1);
        expect(answers.filter((a) => a.response.headers.get('idempotent-replayed') === null)).toHaveLength(1);
        expect(await deliveriesOf(api, hook.id)).toHaveLength(1);
      });
    });

    // ---- fan-out -------------------------------------------------------------------------------------------------

    describe('fan-out by event type', () => {
      const subscriptions = {
        exact: ['order.created'],
        wildcard: ['order.*'],
        nested: ['order.item.*'],
        all: ['*'],
        several: ['customer.updated', 'invoice.*'],
      } as const;
      type Name = keyof typeof subscriptions;
      const cases: [type: string, receivedBy: Name[]][] = [
        ['order.created', ['exact', 'wildcard', 'all']],
        ['order.paid', ['wildcard', 'all']],
        ['order.item.shipped', ['wildcard', 'nested', 'all']],
        ['order.created.v2', ['wildcard', 'all']],
        ['order', ['all']],
        ['orders.created', ['all']],
        ['customer.updated', ['several', 'all']],
        ['customer.created', ['all']],
        ['invoice.paid', ['several', 'all']],
      ];

      let api: Client;
      let other: Client;
      let r: RecordingReceiver;
      const ids = {} as Record<Name | 'disabled' | 'otherTenant', string>;

      beforeAll(async () => {
        ({ api } = await freshTenant());
        ({ api: other } = await freshTenant());
        r = await receiver();
        for (const [name, events] of Object.entries(subscriptions)) {
          ids[name as Name] = (await createWebhook(api, { callbackUrl: `${r.url}/${name}`, events: [...events] })).id;
        }
        ids.disabled = (await createWebhook(api, { callbackUrl: `${r.url}/disabled`, events: ['*'], enabled: false })).id;
        ids.otherTenant = (await createWebhook(other, { callbackUrl: `${r.url}/other-tenant`, events: ['*'] })).id;
      });

      it.each(cases)('%s goes to %j', async (type, receivedBy) => {
        const { event } = await publish(api, { type, data: { marker: `fan-${type}` } });
        expect(event.deliveries).toBe(receivedBy.length);
        const arrived = await r.waitFor(receivedBy.length, { where: ofEvent(`fan-${type}`) });
        expect(arrived.map((request) => request.path).sort()).toEqual(receivedBy.map((name) => `/hook/${name}`).sort());
        expect(arrived.every((request) => envelopeOf(request).type === type)).toBe(true);
        // Webhooks that do not match hold no delivery of it, so nothing can arrive later either.
        for (const name of Object.keys(ids) as (keyof typeof ids)[]) {
          if (receivedBy.includes(name as Name)) continue;
          const client = name === 'otherTenant' ? other : api;
          expect((await deliveriesOf(client, ids[name])).some((d) => d.eventId === event.id), name).toBe(false);
        }
      });

      it('sent each webhook exactly its events, and nothing to the disabled webhook or the other tenant', async () => {
        for (const name of Object.keys(subscriptions) as Name[]) {
          const expected = cases.filter(([, by]) => by.includes(name)).map(([type]) => type);
          const got = r.requests.filter((request) => request.path === `/hook/${name}`).map((request) => envelopeOf(request).type);
          expect(got.sort(), name).toEqual(expected.sort());
        }
        expect(await deliveriesOf(api, ids.disabled)).toEqual([]);
        expect(await deliveriesOf(other, ids.otherTenant)).toEqual([]);
        expect(r.requests.filter((request) => ['/hook/disabled', '/hook/other-tenant'].includes(request.path))).toEqual([]);
      });
    });

    // ---- what arrives --------------------------------------------------------------------------------------------

    describe('what a receiver gets', () => {
      it('the envelope { type, timestamp, data }, signed with the webhook secret, with the custom headers', async () => {
        const { api } = await freshTenant();
        const r = await receiver();
        const hook = await createWebhook(api, {
          callbackUrl: r.url,
          events: ['order.created'],
          headers: { 'X-Shop-Id': 'eu-1234', 'X-Trace': 'trace 42' },
        });
        const data = {
          marker: 'envelope',
          orderId: 'ord_1042',
          total: { amount: 4999, currency: 'EUR' },
          items: [{ sku: 'A-1', qty: 2 }, { sku: 'B-2', qty: 1 }],
          note: 'Grüße, 東京 ✓',
          gift: false,
          coupon: null,
        };
        const { event } = await publish(api, { type: 'order.created', data });
        const [request] = await r.waitFor(1);

        expect(request!.method).toBe('POST');
        expect(request!.path).toBe('/hook');
        expect(request!.headers['content-type']).toMatch(/^application\/json/);
        expect(request!.headers['x-shop-id']).toBe('eu-1234');
        expect(request!.headers['x-trace']).toBe('trace 42');
        const envelope = JSON.parse(request!.body) as Record<string, unknown>;
        expect(Object.keys(envelope).sort()).toEqual(['data', 'timestamp', 'type']);
        expect(envelope).toEqual({ type: 'order.created', timestamp: event.createdAt, data });

        // Standard Webhooks: verifies with the secret from the create response, and with no other.
        const verified = new StandardWebhook(hook.secret!).verify(request!.body, signatureHeaders(request!));
        expect(verified).toEqual(envelope);
        const stranger = `whsec_${Buffer.alloc(32, 1).toString('base64')}`;
        expect(() => new StandardWebhook(stranger).verify(request!.body, signatureHeaders(request!))).toThrow();
        expect(request!.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
        expect(Math.abs(Number(request!.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(60);

        const delivery = await settledDelivery(api, hook.id, event.id);
        expect(delivery).toMatchObject({ status: 'succeeded', eventType: 'order.created', messageId: request!.headers['webhook-id'] });
      });
    });

    // ---- retries -------------------------------------------------------------------------------------------------

    describe('retries', () => {
      it('delivers after failures, with the same webhook-id on every attempt, and logs each attempt', async () => {
        const failures = 2;
        const { api } = await freshTenant();
        const r = await receiver(failTimes(failures, 503));
        const hook = await createWebhook(api, { callbackUrl: r.url, events: ['order.created'] });
        const { event } = await publish(api, { type: 'order.created', data: { marker: 'retry-ok' } });
        const attempts = await r.waitFor(failures + 1);
        const ids = new Set(attempts.map((request) => request.headers['webhook-id']));
        expect(ids.size).toBe(1);
        for (const request of attempts) {
          expect(request.body).toBe(attempts[0]!.body);
          expect(() => new StandardWebhook(hook.secret!).verify(request.body, signatureHeaders(request))).not.toThrow();
        }
        // The schedule's 100 ms (±10 % jitter) between attempts: a lower bound only.
        for (let i = 1; i < attempts.length; i++) {
          expect(attempts[i]!.arrivedAt - attempts[i - 1]!.arrivedAt).toBeGreaterThanOrEqual(80);
        }

        const delivery = await settledDelivery(api, hook.id, event.id);
        expect(delivery).toMatchObject({ status: 'succeeded', eventId: event.id, eventType: 'order.created', messageId: [...ids][0] });
        expect(delivery).not.toHaveProperty('nextAttemptAt');
        expect(delivery.attempts.map((a) => [a.succeeded, a.responseStatus])).toEqual([
          [false, 503],
          [false, 503],
          [true, 204],
        ]);
        for (const attempt of delivery.attempts.slice(0, failures)) {
          expect(attempt).toMatchObject({ reason: 'http_status', responseBody: expect.stringContaining('failure') });
        }
        expect(delivery.attempts[failures]).not.toHaveProperty('reason');
        for (const attempt of delivery.attempts) {
          expect(attempt.durationMs).toBeGreaterThanOrEqual(0);
          expect(attempt.detail).toEqual(expect.any(String));
        }
        expect(r.requests).toHaveLength(failures + 1);
      });

      it('fails the delivery after the last scheduled attempt, and attempts no more', async () => {
        const { api } = await freshTenant();
        // Fails the marker-less event always; accepts the barrier event below.
        const r = await receiver((request) => (envelopeOf(request).data.marker === 'barrier' ? { status: 204 } : { status: 500 }));
        const hook = await createWebhook(api, { callbackUrl: r.url, events: ['order.*'] });
        const { event } = await publish(api, { type: 'order.created', data: { marker: 'doomed' } });
        const attempts = await r.waitFor(scheduleLength, { where: ofEvent('doomed') });
        const delivery = await settledDelivery(api, hook.id, event.id);
        expect(delivery.status).toBe('failed');
        expect(delivery).not.toHaveProperty('nextAttemptAt');
        expect(delivery.attempts).toHaveLength(scheduleLength);
        expect(delivery.attempts.every((a) => !a.succeeded && a.responseStatus === 500 && a.reason === 'http_status')).toBe(true);
        expect(new Set(attempts.map((request) => request.headers['webhook-id']))).toEqual(new Set([delivery.messageId]));

        // A later delivery to the same receiver arrives and succeeds; the failed one has not come back meanwhile.
        const barrier = await publish(api, { type: 'order.paid', data: { marker: 'barrier' } });
        await r.waitFor(1, { where: ofEvent('barrier') });
        await settledDelivery(api, hook.id, barrier.event.id);
        expect(r.requests.filter(ofEvent('doomed'))).toHaveLength(scheduleLength);
        expect((await deliveriesOf(api, hook.id)).find((d) => d.id === delivery.id)).toMatchObject({
          status: 'failed',
          attempts: { length: scheduleLength },
        });
        // Failing for less than WEBHOOK_DISABLE_AFTER (5 days here) leaves the webhook enabled.
        const { data: read } = await api.GET('/api/web/v1/webhooks/{id}', { params: { path: { id: hook.id } } });
        expect(read).toMatchObject({ enabled: true });
        expect(read).not.toHaveProperty('disabledReason');
      });

      it('honours Retry-After: the next attempt comes no sooner than it says, whatever the schedule', async () => {
        const { api } = await freshTenant();
        const r = await receiver(failTimes(1, 503, { 'Retry-After': '1' }));
        const hook = await createWebhook(api, { callbackUrl: r.url, events: ['order.created'] });
        const { event } = await publish(api, { type: 'order.created', data: { marker: 'retry-after' } });
        await r.waitFor(1);
        // While it waits, the log shows it pending with the next attempt at least a second after the first.
        const waiting = await eventually(
          async () => {
            const delivery = (await deliveriesOf(api, hook.id)).find((d) => d.eventId === event.id);
            return delivery?.attempts.length === 1 && delivery.status === 'pending' ? delivery : undefined;
          },
          { what: 'first attempt recorded' },
        );
        expect(Date.parse(waiting.nextAttemptAt!) - Date.parse(waiting.attempts[0]!.attemptedAt)).toBeGreaterThanOrEqual(1000);

        const [first, second] = await r.waitFor(2, { timeoutMs: 5_000 });
        expect(second!.arrivedAt - first!.arrivedAt).toBeGreaterThanOrEqual(950);
        expect(second!.headers['webhook-id']).toBe(first!.headers['webhook-id']);
        expect((await settledDelivery(api, hook.id, event.id)).status).toBe('succeeded');
      });

      it('410 Gone fails the delivery at once and disables the webhook with a reason; enabling again clears it', async () => {
        const { api } = await freshTenant();
        const r = await receiver(always(410));
        const parms = { callbackUrl: r.url, events: ['order.*'] };
        const hook = await createWebhook(api, parms);
        const before = Date.now();
        const { event } = await publish(api, { type: 'order.created', data: { marker: 'gone' } });
        await r.waitFor(1);
        const delivery = await settledDelivery(api, hook.id, event.id);
        expect(delivery.status).toBe('failed');
        expect(delivery.attempts).toEqual([expect.objectContaining({ succeeded: false, responseStatus: 410 })]);
        expect(delivery).not.toHaveProperty('nextAttemptAt');

        const { data: disabled } = await api.GET('/api/web/v1/webhooks/{id}', { params: { path: { id: hook.id } } });
        expect(disabled).toMatchObject({ enabled: false, disabledReason: expect.stringMatching(/\S/) });
        expect(Date.parse(disabled!.disabledAt!)).toBeGreaterThanOrEqual(before - 1000);
        expect(Date.parse(disabled!.disabledAt!)).toBeLessThanOrEqual(Date.now() + 1000);
        const { data: listed } = await api.GET('/api/web/v1/webhooks');
        expect(listed!.find((w) => w.id === hook.id)).toMatchObject({ enabled: false, disabledReason: disabled!.disabledReason });

        // Disabled: new events create no delivery for it.
        const meanwhile = await publish(api, { type: 'order.paid', data: { marker: 'while-disabled' } });
        expect(meanwhile.event.deliveries).toBe(0);

        // A person enables it again: the reason goes, and deliveries resume for new events.
        r.respondWith(always(204));
        const { data: enabled, response } = await api.PUT('/api/web/v1/webhooks/{id}', {
          params: { path: { id: hook.id } },
          body: { ...parms, enabled: true },
        });
        expect(response.status).toBe(200);
        expect(enabled).toMatchObject({ enabled: true });
        expect(enabled).not.toHaveProperty('disabledReason');
        expect(enabled).not.toHaveProperty('disabledAt');
        const { data: read } = await api.GET('/api/web/v1/webhooks/{id}', { params: { path: { id: hook.id } } });
        expect(read).not.toHaveProperty('disabledReason');
        expect(read).not.toHaveProperty('disabledAt');

        const after = await publish(api, { type: 'order.shipped', data: { marker: 'after-enable' } });
        expect(after.event.deliveries).toBe(1);
        await r.waitFor(1, { where: ofEvent('after-enable') });
        // The 410'd delivery was tried once and stays failed.
        expect(r.requests.filter(ofEvent('gone'))).toHaveLength(1);
        expect((await deliveriesOf(api, hook.id)).find((d) => d.id === delivery.id)).toMatchObject({ status: 'failed' });
      });
    });

  });

  // Its own service (WEBHOOK_DISABLE_AFTER=300ms), started after the one above has closed.
  describe.skipIf(!backend.available)(`auto-disable on ${backend.name}`, () => {
    // Eleven attempts 100 ms apart, and a webhook that fails for 300 ms is disabled: it happens mid-schedule.
    let fragile: TestService;
    beforeAll(async () => {
      fragile = await startService(backend, {
        DELIVERY_RETRY_SCHEDULE: ['0', ...Array(10).fill('100ms')].join(','),
        DELIVERY_POLL_INTERVAL: '20ms',
        WEBHOOK_DISABLE_AFTER: '300ms',
      });
    });
    afterAll(() => fragile?.close());

    it('disables a webhook whose deliveries failed for WEBHOOK_DISABLE_AFTER, with disabledReason and disabledAt', async () => {
      const api = fragile.client(await fragile.token('fragile', permissions));
      const r = await receiver(always(500));
      const hook = await createWebhook(api, { callbackUrl: r.url, events: ['*'] });
      const { event } = await publish(api, { type: 'order.created', data: { marker: 'fragile' } });
      const disabled = await eventually(
        async () => {
          const { data } = await api.GET('/api/web/v1/webhooks/{id}', { params: { path: { id: hook.id } } });
          return data && !data.enabled ? data : undefined;
        },
        { timeoutMs: 8_000, what: 'webhook disabled' },
      );
      expect(disabled.disabledReason).toMatch(/\S/);
      expect(disabled.disabledAt).toBeDefined();
      // Failing since the first attempt (at or after createdAt) for at least 300 ms.
      expect(Date.parse(disabled.disabledAt!)).toBeGreaterThanOrEqual(Date.parse(event.createdAt) + 300);
      // Disabled by a later failure (the first one starts the clock), before the schedule ran out.
      expect(r.requests.length).toBeGreaterThanOrEqual(2);
      expect(r.requests.length).toBeLessThan(11);

      // Contract, DeliveryStatus: a disabled webhook's deliveries stay pending, paused until it is enabled again.
      const paused = (await deliveriesOf(api, hook.id)).find((d) => d.eventId === event.id);
      expect(paused, 'the delivery of a webhook the service disabled').toMatchObject({ status: 'pending' });
      expect(paused!.attempts.length).toBe(r.requests.length);
      expect(disabled.disabledReason).toBe('Every delivery failed for 300 ms without a success.');

      // Enabling it again (an update) clears the reason and the paused delivery goes out again.
      const before = r.requests.length;
      r.respondWith(accept);
      const { data: enabled } = await api.PUT('/api/web/v1/webhooks/{id}', {
        params: { path: { id: hook.id } },
        body: { callbackUrl: r.url, events: ['*'], enabled: true },
      });
      expect(enabled).not.toHaveProperty('disabledReason');
      await r.waitFor(before + 1, { timeoutMs: 5_000 });
      expect(await settledDelivery(api, hook.id, event.id)).toMatchObject({ status: 'succeeded' });
    });
  });
}
