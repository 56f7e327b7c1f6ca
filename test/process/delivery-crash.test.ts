// Deliveries are at least once across kill -9: `serve` (API and delivery worker in one process, SQLite) is killed
// twice while deliveries are in flight and restarted on the same DATA_DIR; every event whose publish was answered
// 202 still reaches the receiver, and the delivery log never calls a delivery succeeded that did not arrive.
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { type ServeProcess, startServe } from '../support/process.js';

const events = 1_000;
const publishers = 20;
/** kill -9 when the receiver has seen this many requests (counted over the whole run). */
const killAt = [200, 500];

const dataDir = mkdtempSync(join(tmpdir(), 'webhooks-delivery-crash-'));
const env = {
  DATA_DIR: dataDir,
  CALLBACK_ALLOWED_CIDRS: '127.0.0.0/8',
  DELIVERY_LEASE: '2s',
  DELIVERY_TIMEOUT_MS: '1000',
  DELIVERY_POLL_INTERVAL: '50ms',
  // Nothing should fail here; if an attempt does (a timeout under load), it is retried soon, not in minutes.
  DELIVERY_RETRY_SCHEDULE: '0s,500ms,1s,1s,2s,2s,2s,2s,2s,2s',
};

interface Delivery {
  id: string;
  eventId?: string;
  messageId: string;
  status: 'pending' | 'succeeded' | 'failed';
  attempts: unknown[];
}

// ---------------------------------------------------------------------------------------------------------------
// The receiver: answers 200, now and then after a few ms so that deliveries are in flight when the kill lands.
// A request counts once its whole body arrived (a request cut off by the kill did not deliver anything).

interface Gate {
  at: number;
  fired: boolean;
  reached: () => void;
  released: Promise<void>;
}

const received = {
  total: 0,
  /** webhook-id → how many times it arrived */
  byMessage: new Map<string, number>(),
  /** webhook-id → the sequence number its body carried */
  seqOf: new Map<string, number>(),
  seqs: new Set<number>(),
  /** Requests received and not answered yet. */
  open: 0,
  gate: undefined as Gate | undefined,
};

const receiver = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    void (async () => {
      const id = String(req.headers['webhook-id']);
      const { data } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data: { seq: number } };
      received.total++;
      received.open++;
      received.byMessage.set(id, (received.byMessage.get(id) ?? 0) + 1);
      received.seqOf.set(id, data.seq);
      received.seqs.add(data.seq);
      const gate = received.gate;
      if (gate && !gate.fired && received.total >= gate.at) {
        // This request stays unanswered until the sender has been killed: a delivery certainly in flight.
        gate.fired = true;
        gate.reached();
        await gate.released;
      } else if (data.seq % 5 === 0) {
        await new Promise((resolve) => setTimeout(resolve, 2 + (data.seq % 13)));
      }
      received.open--;
      res.on('error', () => undefined);
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    })();
  });
  req.on('error', () => undefined);
});
receiver.listen(0, '127.0.0.1');
await once(receiver, 'listening');
const receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;

const children: ServeProcess[] = [];

afterAll(async () => {
  for (const child of children) {
    if (child.child.exitCode === null && child.child.signalCode === null) child.child.kill('SIGKILL');
  }
  await Promise.all(children.map((child) => child.exited));
  receiver.closeAllConnections();
  receiver.close();
  rmSync(dataDir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------------------

/** Polls `condition` until it holds or the deadline passes; says what it waited for when it gives up. */
async function until(what: string, condition: () => boolean | Promise<boolean>, deadline: number, everyMs = 20) {
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

async function listDeliveries(baseUrl: string, token: string, webhookId: string, status?: string) {
  const all: Delivery[] = [];
  let url: string | undefined =
    `${baseUrl}/api/web/v1/webhooks/${webhookId}/deliveries?limit=1000${status ? `&status=${status}` : ''}`;
  while (url) {
    const response: Response = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    if (response.status !== 200) throw new Error(`listing deliveries answered ${response.status}: ${await response.text()}`);
    all.push(...((await response.json()) as Delivery[]));
    const next = /^<([^>]+)>/.exec(response.headers.get('link') ?? '')?.[1];
    url = next ? new URL(next, baseUrl).href : undefined;
  }
  return all;
}

it('delivers every event answered 202 at least once across two kill -9 of serve', async () => {
  const started = Date.now();
  const deadline = started + 110_000;

  // The serving process of the moment; undefined while it is down. `generation` counts starts.
  let live: { serve: ServeProcess; generation: number } | undefined;
  let generation = 0;
  const start = async () => {
    const serve = await startServe(env);
    children.push(serve);
    live = { serve, generation: ++generation };
    return serve;
  };

  const first = await start();
  const token = first.bootstrapToken!;
  expect(token).toBeDefined();
  const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };

  const created = await fetch(`${first.baseUrl}/api/web/v1/webhooks`, {
    method: 'POST',
    headers: auth,
    body: JSON.stringify({ callbackUrl: receiverUrl, events: ['*'] }),
  });
  expect(created.status).toBe(200);
  const webhookId = ((await created.json()) as { id: string }).id;

  // Publishing: 20 at a time; a publish cut off by a kill is sent again, to the restarted process, with the same
  // idempotency key, so it is published once whether or not the first try was committed.
  const accepted = new Map<number, string>(); // seq → event id, from the 202
  let replayed = 0;
  let cutOff = 0;
  const refused: string[] = [];
  const queue = Array.from({ length: events }, (_, seq) => seq);
  const publisher = async () => {
    for (let seq = queue.shift(); seq !== undefined; seq = queue.shift()) {
      for (let tries = 1; ; tries++) {
        if (tries > 10) {
          refused.push(`seq ${seq}: no answer after 10 tries`);
          break;
        }
        await until('a serving process to publish to', () => live !== undefined, deadline, 10);
        const { serve, generation: used } = live!;
        try {
          const response = await fetch(`${serve.baseUrl}/api/web/v1/events`, {
            method: 'POST',
            headers: auth,
            body: JSON.stringify({ type: 'crash.test', data: { seq }, idempotencyKey: `crash-${seq}` }),
          });
          if (response.status === 202) {
            const event = (await response.json()) as { id: string; deliveries: number };
            if (response.headers.get('idempotent-replayed') === 'true') replayed++;
            accepted.set(seq, event.id);
            if (event.deliveries !== 1) refused.push(`seq ${seq}: ${event.deliveries} deliveries, not 1`);
            break;
          }
          // Anything else is a failure of the service, not of the crash: note it and stop publishing this one.
          refused.push(`seq ${seq}: ${response.status} ${await response.text()}`);
          break;
        } catch {
          // The process died under this request (it stops being `live` before it is killed): the loop sends it
          // again to the next one, once that is up.
          if (live?.generation === used) refused.push(`seq ${seq}: publish failed while serve was up`);
          cutOff++;
        }
      }
    }
  };
  const publishing = Promise.all(Array.from({ length: publishers }, publisher));
  publishing.catch(() => undefined); // awaited below; a failure then fails the test

  const kills: { arrivals: number; open: number; published: number }[] = [];
  for (const at of killAt) {
    let reached!: () => void;
    let release!: () => void;
    const reachedPromise = new Promise<void>((resolve) => (reached = resolve));
    received.gate = { at, fired: false, reached, released: new Promise<void>((resolve) => (release = resolve)) };
    let hit = false;
    void reachedPromise.then(() => (hit = true));
    await until(`arrival number ${at}`, () => hit, deadline);

    const { serve } = live!;
    live = undefined;
    serve.child.kill('SIGKILL');
    kills.push({ arrivals: received.total, open: received.open, published: accepted.size });
    await serve.exited;
    received.gate = undefined;
    release(); // answers the held request to a dead client
    await start();
  }

  await publishing;
  const published = Date.now();

  // Every event answered 202 arrives, then the delivery log settles: nothing pending.
  await until(
    `all ${accepted.size} accepted events to arrive`,
    () => [...accepted.keys()].every((seq) => received.seqs.has(seq)),
    Math.min(deadline, published + 60_000),
    50,
  );
  const arrived = Date.now();
  const baseUrl = live!.serve.baseUrl;
  await until(
    'no pending delivery',
    async () => (await listDeliveries(baseUrl, token, webhookId, 'pending')).length === 0,
    Math.min(deadline, arrived + 30_000),
    250,
  );
  const log = await listDeliveries(baseUrl, token, webhookId);

  const duplicates = received.total - received.byMessage.size;
  const attempts = log.reduce((sum, delivery) => sum + delivery.attempts.length, 0);
  console.log(
    `delivery-crash: ${accepted.size} events published (${replayed} answered by idempotent replay after ${cutOff} ` +
      `publishes cut off), kills at ${kills.map((k) => `${k.arrivals} arrivals/${k.open} in flight/${k.published} published`).join(' and ')}; ` +
      `${received.total} requests for ${received.byMessage.size} messages: ${duplicates} duplicates; ` +
      `${attempts} attempts recorded; publishing took ${((published - started) / 1000).toFixed(1)} s, ` +
      `all arrived after ${((arrived - started) / 1000).toFixed(1)} s`,
  );

  expect(refused).toEqual([]);
  expect(accepted.size).toBe(events);
  expect(kills).toHaveLength(2);

  // Every 202 arrived: through the delivery log (event id → webhook-id) and through the body's sequence number.
  const byEvent = new Map(log.map((delivery) => [delivery.eventId, delivery]));
  const lost: string[] = [];
  for (const [seq, eventId] of accepted) {
    const delivery = byEvent.get(eventId);
    if (!delivery) lost.push(`seq ${seq}: event ${eventId} has no delivery`);
    else if (!received.byMessage.has(delivery.messageId)) lost.push(`seq ${seq}: ${delivery.messageId} never arrived`);
    else if (received.seqOf.get(delivery.messageId) !== seq) lost.push(`seq ${seq}: ${delivery.messageId} carried another`);
  }
  expect(lost).toEqual([]);

  // Published once (idempotency held across the kills), and nothing called succeeded that did not arrive.
  expect(log).toHaveLength(events);
  const succeededUnseen = log.filter((d) => d.status === 'succeeded' && !received.byMessage.has(d.messageId));
  expect(succeededUnseen.map((d) => d.messageId)).toEqual([]);
  expect(log.filter((d) => d.status !== 'succeeded').map((d) => `${d.id} ${d.status}`)).toEqual([]);

  // And the survivor still stops cleanly (afterAll kills it if not).
  const last = live!.serve;
  last.child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const stopped = await Promise.race([
    last.exited,
    new Promise((resolve) => (timer = setTimeout(resolve, 10_000, 'still running after 10 s'))),
  ]);
  clearTimeout(timer);
  expect(stopped).toBe(0);
}, 120_000);
