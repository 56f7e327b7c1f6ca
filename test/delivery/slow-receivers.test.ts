// A slow receiver with a backlog must not hold up other tenants' deliveries (server/delivery/slow-webhooks.ts): the
// real service on each store backend, with eight delivery slots, one webhook whose receiver takes 500 ms per
// request and forty events waiting for it, and then another tenant's webhook that answers at once. Before the
// limit, the forty slow deliveries (published first) took every slot until the last of them had been sent, and
// the fast tenant's deliveries came after; now the slow webhook holds two slots at most once it is known to be
// slow, and the fast deliveries go out through the others while most of the slow backlog still waits. Test
// deliveries to a receiver that hangs do not take the worker's slots either, and a postponed backlog is sent by
// the next start after a stop.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { components } from '../../client/index.js';
import { backends } from '../support/backends.js';
import { accept, envelopeOf, eventually, type LoggedRequest, receiverPool } from '../support/receiver-log.js';
import { type Client, createWebhook, startService, type TestService } from '../support/service.js';

type Delivery = components['schemas']['Delivery'];

const permissions = ['WEBHOOKS:VIEW', 'WEBHOOKS:ADD', 'WEBHOOKS:EDIT', 'EVENTS:PUBLISH'];
const slots = 8;
const perSlowWebhook = 2;
const slowAnswerMs = 500;
const slowBacklog = 40;
const fastEvents = 10;
const timeoutMs = 5_000;

const receivers = receiverPool();
afterAll(receivers.closeAll);

for (const backend of backends) {
  describe.skipIf(!backend.available)(`slow receivers on ${backend.name}`, () => {
    let service: TestService;

    const env = {
      DELIVERY_MAX_CONCURRENCY: String(slots),
      DELIVERY_SLOW_WEBHOOK_CONCURRENCY: String(perSlowWebhook),
      DELIVERY_TIMEOUT_MS: String(timeoutMs),
      DELIVERY_SLOW_AFTER: '200ms',
      DELIVERY_POLL_INTERVAL: '20ms',
    };

    beforeAll(async () => {
      service = await startService(backend, env);
    });
    afterAll(() => service?.close());

    async function tenantWithWebhook(tenant: string, url: string): Promise<{ api: Client; webhookId: string }> {
      const api = service.client(await service.token(`${backend.name}-${tenant}`, permissions));
      const webhook = await createWebhook(api, { callbackUrl: url, events: ['order.created'] });
      return { api, webhookId: webhook.id };
    }

    async function publish(api: Client, marker: string) {
      const { response } = await api.POST('/api/web/v1/events', { body: { type: 'order.created', data: { marker } } });
      expect(response.status).toBe(202);
    }

    async function deliveriesOf(api: Client, webhookId: string): Promise<Delivery[]> {
      const { data, response } = await api.GET('/api/web/v1/webhooks/{id}/deliveries', {
        params: { path: { id: webhookId }, query: { limit: 100 } },
      });
      expect(response.status).toBe(200);
      return data!;
    }

    it("sends another tenant's deliveries while a slow webhook's backlog waits, it in two slots", async () => {
      // The slow receiver answers each request after 500 ms, and notes for each request how many of its requests
      // were open (itself included) when it arrived, and whether it had answered any yet.
      let open = 0;
      let answered = 0;
      const arrivals: { open: number; afterFirstAnswer: boolean }[] = [];
      const slowReceiver = await receivers.start(() => {
        arrivals.push({ open: ++open, afterFirstAnswer: answered > 0 });
        const answer = new Promise((resolve) => setTimeout(resolve, slowAnswerMs)).then(() => {
          open--;
          answered++;
        });
        return { status: 204, holdUntil: answer };
      });
      const fastReceiver = await receivers.start(accept);
      const slow = await tenantWithWebhook('slow', slowReceiver.url);
      const fast = await tenantWithWebhook('fast', fastReceiver.url);

      // Published together, and the fast tenant's right after: its deliveries queue behind the slow backlog.
      await Promise.all(Array.from({ length: slowBacklog }, (_, i) => publish(slow.api, `slow-${i}`)));
      await Promise.all(Array.from({ length: fastEvents }, (_, i) => publish(fast.api, `fast-${i}`)));

      await fastReceiver.waitFor(fastEvents, { timeoutMs: 10_000 });
      const slowSentBeforeFastDone = slowReceiver.requests.length;
      expect(slowSentBeforeFastDone, 'slow deliveries sent before the last fast one arrived').toBeLessThan(
        slowBacklog / 2,
      );

      // What waits is pending with no attempt made and its next attempt later than its creation (the first was due
      // at once): postponed, not failed, and no retry of the schedule used up. Those in flight now (two at most),
      // and any whose outcome is not written yet (the worker writes them every 20 ms), may not have been postponed.
      const waiting = (await deliveriesOf(slow.api, slow.webhookId)).filter(
        (delivery) => delivery.status === 'pending' && delivery.attempts.length === 0,
      );
      const postponed = waiting.filter((delivery) => delivery.nextAttemptAt! > delivery.createdAt);
      expect(postponed.length).toBeGreaterThan(0);
      expect(postponed.length).toBeGreaterThanOrEqual(waiting.length - perSlowWebhook - 2);

      // Every slow delivery arrives in the end, once each, and after the first wave never more than two at a time.
      const arrived = await slowReceiver.waitFor(slowBacklog, { timeoutMs: 40_000 });
      const markers = (requests: LoggedRequest[]) => new Set(requests.map((r) => envelopeOf(r).data.marker));
      expect(markers(arrived).size).toBe(slowBacklog);
      // The first requests may take every slot (nothing knows yet that this receiver is slow); once it has answered
      // one, and so shown how slow it is, it never has more than two open.
      const later = arrivals.filter((arrival) => arrival.afterFirstAnswer);
      expect(later.length).toBeGreaterThan(slowBacklog / 2);
      expect(Math.max(...later.map((arrival) => arrival.open))).toBeLessThanOrEqual(perSlowWebhook);
      const settled = await eventually(
        async () => {
          const all = await deliveriesOf(slow.api, slow.webhookId);
          return all.every((delivery) => delivery.status === 'succeeded') ? all : undefined;
        },
        { timeoutMs: 10_000, what: 'every slow delivery succeeded' },
      );
      expect(settled).toHaveLength(slowBacklog);
      for (const delivery of settled) expect(delivery.attempts).toHaveLength(1);
      expect(slowReceiver.requests).toHaveLength(slowBacklog);
    }, 90_000);

    it('keeps a postponed backlog across a restart: the next start sends the rest, each once', async () => {
      const store = await backend.setup();
      let first: TestService | undefined;
      let second: TestService | undefined;
      try {
        first = await startService(backend, env, { store });
        const slowReceiver = await receivers.start(() => ({
          status: 204,
          holdUntil: new Promise((resolve) => setTimeout(resolve, slowAnswerMs)),
        }));
        const token = await first.token(`${backend.name}-restart`, permissions);
        const webhook = await createWebhook(first.client(token), {
          callbackUrl: slowReceiver.url,
          events: ['order.created'],
        });
        await Promise.all(Array.from({ length: slowBacklog }, (_, i) => publish(first!.client(token), `restart-${i}`)));
        // Limited, with the rest of the backlog postponed: more requests than the first wave's slots have come.
        await slowReceiver.waitFor(slots + 1, { timeoutMs: 10_000 });
        await first.close();
        first = undefined;

        // What was postponed is in the store with its time: the next start picks it up from there (nothing waits
        // out a lease: a stop waits for the attempts in flight and for the postponements being written).
        second = await startService(backend, env, { store });
        const api = second.client(token);
        const markers = () => new Set(slowReceiver.requests.map((request) => envelopeOf(request).data.marker));
        await eventually(async () => (markers().size === slowBacklog ? true : undefined), {
          timeoutMs: 40_000,
          what: 'every slow event arrived',
        });
        const settled = await eventually(
          async () => {
            const all = await deliveriesOf(api, webhook.id);
            return all.every((delivery) => delivery.status === 'succeeded') ? all : undefined;
          },
          { timeoutMs: 10_000, what: 'every slow delivery succeeded' },
        );
        expect(settled).toHaveLength(slowBacklog);
        // The stop let every attempt in flight finish and recorded it: none was sent twice.
        expect(slowReceiver.requests).toHaveLength(slowBacklog);
      } finally {
        await first?.close();
        await second?.close();
        await store.cleanup();
      }
    }, 90_000);

    it("keeps test deliveries to a receiver that hangs out of the worker's slots", async () => {
      let release!: () => void;
      const hung = new Promise<void>((resolve) => (release = resolve));
      const hanging = await receivers.start(() => ({ status: 204, holdUntil: hung }));
      const fastReceiver = await receivers.start(accept);
      const tester = await tenantWithWebhook('tester', hanging.url);
      const fast = await tenantWithWebhook('fast-after-tests', fastReceiver.url);

      // As many test deliveries as the worker has slots, all held open by the receiver.
      const tests = Array.from({ length: slots }, () =>
        tester.api.POST('/api/web/v1/webhooks/test/{id}', {
          params: { path: { id: tester.webhookId } },
          parseAs: 'text',
        }),
      );
      const testsSentAt = Date.now();
      await hanging.waitFor(slots);

      // Before, the worker's attempt waited for a place behind the tests until they timed out (5 s), and they
      // answered 502. Now it goes out at once, and the tests end as the receiver answers them.
      await publish(fast.api, 'while-tests-hang');
      const [arrival] = await fastReceiver.waitFor(1, { timeoutMs: 15_000 });
      expect(arrival!.arrivedAt - testsSentAt, 'the delivery waited until the tests timed out').toBeLessThan(timeoutMs);
      release();
      expect((await Promise.all(tests)).map(({ response }) => response.ok)).toEqual(Array(slots).fill(true));
    }, 30_000);
  });
}
