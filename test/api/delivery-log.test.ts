// The delivery log (GET /webhooks/{id}/deliveries) and the retry operation end to end, on every store backend:
// newest first, attempts with status code or error reason, nextAttemptAt while pending, the status filter,
// pagination through the Link header, the test operation's deliveries, tenants, bad parameters; and retrying
// failed, pending and in-flight deliveries with the same webhook-id.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { components } from '../../client/index.js';
import { closedPort } from '../delivery/receiver.js';
import { backends } from '../support/backends.js';
import {
  always,
  envelopeOf,
  eventually,
  type LoggedRequest,
  type Responder,
  receiverPool,
} from '../support/receiver-log.js';
import { type Client, createWebhook, startService, type TestService } from '../support/service.js';

type Delivery = components['schemas']['Delivery'];

const permissions = ['WEBHOOKS:VIEW', 'WEBHOOKS:ADD', 'WEBHOOKS:EDIT', 'WEBHOOKS:REMOVE', 'EVENTS:PUBLISH'];
const fastDelivery = { DELIVERY_RETRY_SCHEDULE: '0,100ms,100ms,100ms', DELIVERY_POLL_INTERVAL: '20ms' };
const scheduleLength = 4;
const hour = 3_600_000;

const markerOf = (request: LoggedRequest) => envelopeOf(request).data.marker;
const ofMarker = (marker: string) => (request: LoggedRequest) => markerOf(request) === marker;

/** Answers by the event's `marker`: `ok…` 204, `bad…` 500, `later…` 503 with Retry-After of an hour. */
const byMarker: Responder = (request) => {
  const marker = String(markerOf(request) ?? '');
  if (marker.startsWith('bad')) return { status: 500, body: 'broken' };
  if (marker.startsWith('later')) return { status: 503, headers: { 'Retry-After': '3600' } };
  return { status: 204 };
};

for (const backend of backends) {
  describe.skipIf(!backend.available)(`delivery log on ${backend.name}`, () => {
    let service: TestService;
    const receivers = receiverPool();
    let tenantCount = 0;

    beforeAll(async () => {
      service = await startService(backend, fastDelivery);
    });
    afterAll(async () => {
      await receivers.closeAll();
      await service?.close();
    });

    async function freshTenant(perms = permissions): Promise<{ tenant: string; api: Client; token: string }> {
      const tenant = `log-${backend.name}-${++tenantCount}`;
      const token = await service.token(tenant, perms);
      return { tenant, api: service.client(token), token };
    }

    const receiver = receivers.start;

    async function publish(api: Client, type: string, data: Record<string, unknown>) {
      const { data: event, response } = await api.POST('/api/web/v1/events', { body: { type, data } });
      expect(response.status).toBe(202);
      return event!;
    }

    async function list(api: Client, id: string, query: { status?: Delivery['status']; limit?: number } = {}) {
      const { data, response, error } = await api.GET('/api/web/v1/webhooks/{id}/deliveries', {
        params: { path: { id }, query },
      });
      expect(response.status, JSON.stringify(error)).toBe(200);
      return { items: data!, link: response.headers.get('link') };
    }

    /** Polls the log until `ready` holds for it, and answers it. */
    function logWhere(api: Client, id: string, ready: (items: Delivery[]) => boolean, what: string) {
      return eventually(
        async () => {
          const { items } = await list(api, id);
          return ready(items) ? items : undefined;
        },
        { what },
      );
    }

    const byEvent = (items: Delivery[], eventId: string) => items.find((d) => d.eventId === eventId)!;

    /** Publishes after the clock has moved past the previous event's createdAt, so "newest first" is decidable. */
    async function publishInOrder(api: Client, type: string, markers: string[]) {
      const events: components['schemas']['PublishedEvent'][] = [];
      for (const marker of markers) {
        const previous = events.at(-1);
        if (previous) await eventually(async () => (Date.now() > Date.parse(previous.createdAt) ? true : undefined));
        events.push(await publish(api, type, { marker }));
      }
      return events;
    }

    describe('listing', () => {
      it('lists deliveries newest first, each with its event type, status and every attempt', async () => {
        const { api } = await freshTenant();
        // First attempt at "first" fails with 503, everything else is accepted.
        const r = await receiver((request) =>
          markerOf(request) === 'first' && request.index === r.requests.findIndex(ofMarker('first'))
            ? { status: 503, body: 'upstream unavailable' }
            : { status: 204 },
        );
        const hook = await createWebhook(api, { callbackUrl: r.url, events: ['order.*'] });
        const [first, second, third] = await publishInOrder(api, 'order.created', ['first', 'second', 'third']);
        const items = await logWhere(api, hook.id, (ds) => ds.length === 3 && ds.every((d) => d.status !== 'pending'), 'all settled');

        expect(items.map((d) => d.eventId)).toEqual([third!.id, second!.id, first!.id]);
        for (const delivery of items) {
          expect(delivery).toMatchObject({ webhookId: hook.id, eventType: 'order.created', status: 'succeeded' });
          expect(delivery.id).toMatch(/^[0-9a-f-]{36}$/);
          expect(delivery.messageId).toMatch(/^msg_/);
          expect(delivery).not.toHaveProperty('nextAttemptAt');
          expect(Date.parse(delivery.updatedAt)).toBeGreaterThanOrEqual(Date.parse(delivery.createdAt));
          for (const attempt of delivery.attempts) {
            expect(Date.parse(attempt.attemptedAt)).toBeGreaterThanOrEqual(Date.parse(delivery.createdAt));
            expect(attempt.durationMs).toBeGreaterThanOrEqual(0);
            expect(attempt.detail).toMatch(/\S/);
          }
        }
        const retried = byEvent(items, first!.id);
        expect(retried.attempts).toEqual([
          expect.objectContaining({ succeeded: false, reason: 'http_status', responseStatus: 503, responseBody: 'upstream unavailable' }),
          expect.objectContaining({ succeeded: true, responseStatus: 204 }),
        ]);
        expect(Date.parse(retried.attempts[1]!.attemptedAt)).toBeGreaterThan(Date.parse(retried.attempts[0]!.attemptedAt));
        expect(byEvent(items, third!.id).attempts).toEqual([expect.objectContaining({ succeeded: true, responseStatus: 204 })]);
        // The log's messageId is the webhook-id the receiver saw.
        expect(new Set(r.requests.filter(ofMarker('first')).map((q) => q.headers['webhook-id']))).toEqual(new Set([retried.messageId]));
      });

      it('records an error reason without a status code when the receiver cannot be reached', async () => {
        const { api } = await freshTenant();
        const hook = await createWebhook(api, { callbackUrl: `http://127.0.0.1:${await closedPort()}/hook`, events: ['*'] });
        const event = await publish(api, 'order.created', {});
        const [delivery] = await logWhere(api, hook.id, (ds) => ds[0]?.status === 'failed', 'delivery failed');
        expect(delivery).toMatchObject({ eventId: event.id, status: 'failed' });
        expect(delivery!.attempts).toHaveLength(scheduleLength);
        for (const attempt of delivery!.attempts) {
          expect(attempt).toMatchObject({ succeeded: false, reason: 'connection_refused' });
          expect(attempt).not.toHaveProperty('responseStatus');
        }
      });

      describe('by status', () => {
        let api: Client;
        let hookId: string;
        const events = {} as Record<'ok' | 'bad' | 'later', string>;

        beforeAll(async () => {
          ({ api } = await freshTenant());
          const r = await receiver(byMarker);
          hookId = (await createWebhook(api, { callbackUrl: r.url, events: ['*'] })).id;
          for (const marker of ['ok', 'bad', 'later'] as const) events[marker] = (await publish(api, 'order.created', { marker })).id;
          await logWhere(
            api,
            hookId,
            (ds) =>
              byEvent(ds, events.ok)?.status === 'succeeded' &&
              byEvent(ds, events.bad)?.status === 'failed' &&
              byEvent(ds, events.later)?.attempts.length === 1,
            'succeeded, failed and waiting deliveries',
          );
        });

        it.each([
          ['succeeded', 'ok'],
          ['failed', 'bad'],
          ['pending', 'later'],
        ] as const)('status=%s lists only those', async (status, marker) => {
          const { items } = await list(api, hookId, { status });
          expect(items.map((d) => d.eventId)).toEqual([events[marker]]);
          expect(items[0]!.status).toBe(status);
        });

        it('shows nextAttemptAt while pending, pushed back by the Retry-After it got', async () => {
          const { items } = await list(api, hookId, { status: 'pending' });
          const [waiting] = items;
          expect(waiting!.attempts).toEqual([expect.objectContaining({ succeeded: false, responseStatus: 503 })]);
          const due = Date.parse(waiting!.nextAttemptAt!);
          expect(due - Date.parse(waiting!.attempts[0]!.attemptedAt)).toBeGreaterThanOrEqual(hour);
          expect(due).toBeLessThan(Date.now() + 2 * hour);
        });

        it('lists all three without a filter', async () => {
          const { items } = await list(api, hookId);
          expect(items.map((d) => d.eventId).sort()).toEqual(Object.values(events).sort());
        });
      });

      it('pages with limit and a Link to the next page, keeping the status filter', async () => {
        const { api, token } = await freshTenant();
        const r = await receiver();
        const hook = await createWebhook(api, { callbackUrl: r.url, events: ['*'] });
        // Published at once, so some deliveries likely share a createdAt: the cursor must still not skip or repeat.
        await Promise.all(Array.from({ length: 7 }, (_, i) => publish(api, 'order.created', { marker: `page-${i}` })));
        const { items: all } = await list(api, hook.id);
        expect(all).toHaveLength(7);

        const follow = async (firstQuery: string) => {
          const pages: Delivery[][] = [];
          const links: string[] = [];
          let next: string | null = `/api/web/v1/webhooks/${hook.id}/deliveries?${firstQuery}`;
          while (next) {
            expect(pages.length, 'pages').toBeLessThan(10);
            const response: Response = await fetch(`${service.baseUrl}${next}`, { headers: { authorization: `Bearer ${token}` } });
            expect(response.status).toBe(200);
            pages.push((await response.json()) as Delivery[]);
            const link: string | null = response.headers.get('link');
            if (link) links.push(link);
            next = link ? /^<([^>]+)>; rel="next"$/.exec(link)![1]! : null;
          }
          return { pages, links };
        };

        const plain = await follow('limit=3');
        expect(plain.pages.map((page) => page.length)).toEqual([3, 3, 1]);
        expect(plain.pages.flat().map((d) => d.id)).toEqual(all.map((d) => d.id));
        expect(plain.links).toHaveLength(2);
        for (const link of plain.links) expect(link).toMatch(new RegExp(`^</api/web/v1/webhooks/${hook.id}/deliveries\\?.*limit=3`));

        await logWhere(api, hook.id, (ds) => ds.every((d) => d.status === 'succeeded'), 'all delivered');
        const filtered = await follow('status=succeeded&limit=2');
        expect(filtered.pages.map((page) => page.length)).toEqual([2, 2, 2, 1]);
        expect(filtered.pages.flat().map((d) => d.id)).toEqual(all.map((d) => d.id));
        for (const link of filtered.links) expect(new URLSearchParams(link.slice(link.indexOf('?') + 1, link.indexOf('>'))).get('status')).toBe('succeeded');
        expect((await follow('status=failed&limit=2')).pages).toEqual([[]]);
      });

      it("lists the test operation's deliveries: eventType webhook.test, no eventId", async () => {
        const { api } = await freshTenant();
        const r = await receiver(always(204));
        const hook = await createWebhook(api, { callbackUrl: r.url, events: ['order.created'] });
        const ok = await api.POST('/api/web/v1/webhooks/test/{id}', { params: { path: { id: hook.id } } });
        expect(ok.response.status).toBe(200);
        r.respondWith(always(500));
        const failed = await api.POST('/api/web/v1/webhooks/test/{id}', { params: { path: { id: hook.id } } });
        expect(failed.response.status).toBe(502);
        const event = await publish(api, 'order.created', { marker: 'after-tests' });

        const { items } = await list(api, hook.id);
        expect(items).toHaveLength(3);
        const tests = items.filter((d) => d.eventType === 'webhook.test');
        expect(tests.map((d) => d.status)).toEqual(['failed', 'succeeded']); // newest first
        for (const delivery of tests) {
          expect(delivery).not.toHaveProperty('eventId');
          expect(delivery.attempts).toHaveLength(1);
        }
        expect(tests[0]!.attempts[0]).toMatchObject({ succeeded: false, responseStatus: 500, reason: 'http_status' });
        expect(tests.map((d) => d.messageId)).toEqual([r.requests[1]!.headers['webhook-id'], r.requests[0]!.headers['webhook-id']]);
        expect(items[0]!.eventId).toBe(event.id);
        expect((await list(api, hook.id, { status: 'failed' })).items.map((d) => d.id)).toContain(tests[0]!.id);
      });

      it("answers 404 for another tenant's webhook and for an unknown one", async () => {
        const a = await freshTenant();
        const b = await freshTenant();
        const hook = await createWebhook(a.api, { callbackUrl: (await receiver()).url, events: ['*'] });
        await publish(a.api, 'order.created', {});
        for (const id of [hook.id, '00000000-0000-4000-8000-000000000000']) {
          const { response, error } = await b.api.GET('/api/web/v1/webhooks/{id}/deliveries', { params: { path: { id } } });
          expect(response.status).toBe(404);
          expect(error).toMatchObject({ status: 404, detail: `No webhook with id ${id}.` });
        }
      });

      it.each([
        ['status=done', '/status'],
        ['status=PENDING', '/status'],
        ['cursor=garbage', '/cursor'],
        [`cursor=${Buffer.from(JSON.stringify({ v: 1, seq: 5 })).toString('base64url')}`, '/cursor'],
        [`cursor=${Buffer.from(JSON.stringify({ v: 2, createdAt: '2026-01-01T00:00:00.000Z', id: 'x' })).toString('base64url')}`, '/cursor'],
        ['limit=0', '/limit'],
        ['limit=1001', '/limit'],
      ])('answers 400 to %s, pointing at the query parameter', async (query, pointer) => {
        const { token, api } = await freshTenant();
        const hook = await createWebhook(api, { callbackUrl: (await receiver()).url, events: ['*'] });
        const response = await fetch(`${service.baseUrl}/api/web/v1/webhooks/${hook.id}/deliveries?${query}`, {
          headers: { authorization: `Bearer ${token}` },
        });
        expect(response.status).toBe(400);
        const problem = (await response.json()) as components['schemas']['Problem'];
        expect(problem.errors).toContainEqual(expect.objectContaining({ pointer, in: 'query' }));
      });
    });

    describe('retrying', () => {
      const retry = (api: Client, id: string, deliveryId: string) =>
        api.POST('/api/web/v1/webhooks/{id}/deliveries/{deliveryId}/retry', { params: { path: { id, deliveryId } } });

      it('delivers a failed delivery again with the same webhook-id: 202 and pending, then succeeded', async () => {
        const { api } = await freshTenant();
        const r = await receiver(always(500));
        const hook = await createWebhook(api, { callbackUrl: r.url, events: ['*'] });
        const event = await publish(api, 'order.created', { marker: 'again' });
        const [failed] = await logWhere(api, hook.id, (ds) => ds[0]?.status === 'failed', 'delivery failed');
        expect(r.requests).toHaveLength(scheduleLength);

        r.respondWith(always(204));
        const before = Date.now();
        const { data, response } = await retry(api, hook.id, failed!.id);
        expect(response.status).toBe(202);
        expect(data).toMatchObject({ id: failed!.id, eventId: event.id, messageId: failed!.messageId, status: 'pending' });
        expect(data!.attempts).toHaveLength(scheduleLength);
        expect(Date.parse(data!.nextAttemptAt!)).toBeGreaterThanOrEqual(before - 1000);
        expect(Date.parse(data!.nextAttemptAt!)).toBeLessThanOrEqual(Date.now() + 1000);

        const again = (await r.waitFor(scheduleLength + 1))[scheduleLength]!;
        expect(again.headers['webhook-id']).toBe(failed!.messageId);
        expect(again.body).toBe(r.requests[0]!.body);
        const [done] = await logWhere(api, hook.id, (ds) => ds[0]?.status === 'succeeded', 'retry succeeded');
        expect(done!.attempts).toHaveLength(scheduleLength + 1);
        expect(done!.attempts.at(-1)).toMatchObject({ succeeded: true, responseStatus: 204 });
      });

      it("moves a pending delivery's next attempt to now", async () => {
        const { api } = await freshTenant();
        const r = await receiver(byMarker);
        const hook = await createWebhook(api, { callbackUrl: r.url, events: ['*'] });
        await publish(api, 'order.created', { marker: 'later' });
        const [waiting] = await logWhere(api, hook.id, (ds) => ds[0]?.attempts.length === 1, 'first attempt');
        expect(waiting).toMatchObject({ status: 'pending' });
        r.respondWith(always(204));
        const { data, response } = await retry(api, hook.id, waiting!.id);
        expect(response.status).toBe(202);
        expect(Date.parse(data!.nextAttemptAt!)).toBeLessThan(Date.parse(waiting!.nextAttemptAt!));
        const [, second] = await r.waitFor(2);
        expect(second!.headers['webhook-id']).toBe(waiting!.messageId);
        await logWhere(api, hook.id, (ds) => ds[0]?.status === 'succeeded', 'retry succeeded');
      });

      it("retries a failed test notification, and answers 409 while an attempt is in flight", async () => {
        const { api } = await freshTenant();
        let release!: () => void;
        const held = new Promise<void>((resolve) => (release = resolve));
        const r = await receiver(always(500));
        const hook = await createWebhook(api, { callbackUrl: r.url, events: ['*'] });
        expect((await api.POST('/api/web/v1/webhooks/test/{id}', { params: { path: { id: hook.id } } })).response.status).toBe(502);
        const [test] = (await list(api, hook.id)).items;
        expect(test).toMatchObject({ eventType: 'webhook.test', status: 'failed' });

        r.respondWith(() => ({ status: 204, holdUntil: held }));
        expect((await retry(api, hook.id, test!.id)).response.status).toBe(202);
        const [, inFlight] = await r.waitFor(2);
        expect(inFlight!.headers['webhook-id']).toBe(test!.messageId);
        expect(envelopeOf(inFlight!).type).toBe('webhook.test');
        const busy = await retry(api, hook.id, test!.id);
        expect(busy.response.status).toBe(409);
        expect(busy.error).toMatchObject({ status: 409, type: 'urn:webhooks-api:problem:delivery-in-flight' });
        release();
        const [done] = await logWhere(api, hook.id, (ds) => ds[0]?.status === 'succeeded', 'retried test delivered');
        expect(done!.attempts.map((a) => a.succeeded)).toEqual([false, true]);
        expect(r.requests).toHaveLength(2);
      });

      it('answers 404 for an unknown delivery, another webhook\'s delivery, and another tenant; 403 without WEBHOOKS:EDIT', async () => {
        const a = await freshTenant();
        const b = await freshTenant();
        const r = await receiver();
        const hook = await createWebhook(a.api, { callbackUrl: `${r.url}/one`, events: ['*'] });
        const sibling = await createWebhook(a.api, { callbackUrl: `${r.url}/two`, events: ['nothing.here'] });
        await publish(a.api, 'order.created', {});
        const [delivery] = (await list(a.api, hook.id)).items;
        const cases: [Client, string, string][] = [
          [a.api, hook.id, '00000000-0000-4000-8000-000000000000'],
          [a.api, sibling.id, delivery!.id],
          [b.api, hook.id, delivery!.id],
        ];
        for (const [client, id, deliveryId] of cases) {
          const { response, error } = await retry(client, id, deliveryId);
          expect(response.status, `${id} ${deliveryId}`).toBe(404);
          expect(error).toMatchObject({ status: 404 });
        }
        const viewer = service.client(await service.token(a.tenant, ['WEBHOOKS:VIEW']));
        expect((await retry(viewer, hook.id, delivery!.id)).response.status).toBe(403);
        const badId = await retry(a.api, hook.id, 'not-a-uuid');
        expect(badId.response.status).toBe(400);
      });
    });
  });
}
