// How one webhook's deliveries fare while another webhook's receiver hangs with a backlog (docs/delivery.md, "Slow
// receivers"). Starts `serve` (through tsx, SQLite, the default 50 delivery slots) over a fresh store twice:
//
// - alone: `--events` events to a webhook whose receiver answers 204 at once;
// - with a neighbour: first `--backlog` events to another webhook whose receiver never answers (each attempt runs
//   into DELIVERY_TIMEOUT_MS, `--timeout-ms`), then the same events to the healthy webhook twice: at once, while
//   the neighbour's first attempts hold their slots (it is not known to be slow yet), and again once that first
//   wave has timed out and the neighbour is limited.
//
// For each batch it prints, for the healthy webhook, how long publish-to-arrival took (p50, p99, max) and how long
// the batch took from its first publish to its last arrival. Events are published by 10 connections.
//
//   npx tsx scripts/bench/slow-neighbour.ts [--events 500] [--backlog 300] [--timeout-ms 5000]
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { installCleanup } from './processes.js';
import { Receiver } from './receiver.js';
import { seedStore, startService } from './servers.js';
import { summarize } from './stats.js';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '500' },
    backlog: { type: 'string', default: '300' },
    'timeout-ms': { type: 'string', default: '5000' },
  },
});
const events = Number(values.events);
const backlog = Number(values.backlog);
const timeoutMs = Number(values['timeout-ms']);
const connections = 10;

installCleanup();

/** A receiver that never answers: every attempt to it runs into the delivery timeout. */
async function startHangingReceiver(): Promise<{ url: string; received: () => number; close: () => Promise<void> }> {
  let received = 0;
  const server = createServer((request) => {
    received++;
    request.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hang`,
    received: () => received,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

async function call(baseUrl: string, token: string, path: string, body: unknown): Promise<unknown> {
  const response = await fetch(`${baseUrl}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`POST ${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

/** Publishes `count` events of `type` over `connections` at a time; `data(i)` is each one's data. */
async function publishMany(baseUrl: string, token: string, type: string, count: number, data: (i: number) => object) {
  let next = 0;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (next < count) {
        const i = next++;
        await call(baseUrl, token, '/api/web/v1/events', { type, data: data(i) });
      }
    }),
  );
}

/** Publishes `events` events to the healthy webhook and waits until every one has arrived; its latencies. */
async function healthyBatch(baseUrl: string, token: string, receiver: Receiver, label: string): Promise<string> {
  const latencies: number[] = [];
  const seen = new Set<string>();
  let done!: () => void;
  const allArrived = new Promise<void>((resolve) => (done = resolve));
  receiver.onDelivery = ({ body, receivedAt }) => {
    const { data } = JSON.parse(body) as { data: { batch: string; i: number; sentAt: number } };
    if (data.batch !== label || seen.has(String(data.i))) return;
    seen.add(String(data.i));
    latencies.push(receivedAt - data.sentAt);
    if (seen.size === events) done();
  };
  const started = Date.now();
  await publishMany(baseUrl, token, 'order.created', events, (i) => ({ batch: label, i, sentAt: Date.now() }));
  const deadline = timeoutMs * 4 + 60_000;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise((_, reject) => {
    const message = () => `${label}: ${seen.size} of ${events} arrived in ${deadline} ms`;
    timer = setTimeout(() => reject(new Error(message())), deadline);
  });
  await Promise.race([allArrived, late]).finally(() => clearTimeout(timer));
  const took = Date.now() - started;
  const summary = summarize(latencies);
  return (
    `${label.padEnd(58)} publish→arrival p50 ${summary.p50.toFixed(1)} ms, p99 ${summary.p99.toFixed(1)} ms, ` +
    `max ${summary.max.toFixed(1)} ms; batch ${took} ms`
  );
}

async function run(withNeighbour: boolean): Promise<string[]> {
  const store = await seedStore(0);
  const service = await startService('service', store.dataDir, { env: { DELIVERY_TIMEOUT_MS: String(timeoutMs) } });
  const receiver = await Receiver.start();
  const hanging = await startHangingReceiver();
  const lines: string[] = [];
  try {
    await call(service.url, store.token, '/api/web/v1/webhooks', {
      callbackUrl: `${receiver.url}/healthy`,
      events: ['order.created'],
    });
    if (!withNeighbour) {
      lines.push(await healthyBatch(service.url, store.token, receiver, 'alone'));
      return lines;
    }
    await call(service.url, store.token, '/api/web/v1/webhooks', { callbackUrl: hanging.url, events: ['slow.*'] });
    await publishMany(service.url, store.token, 'slow.event', backlog, (i) => ({ i }));
    const firstWaveAt = Date.now();
    lines.push(await healthyBatch(service.url, store.token, receiver, 'neighbour hanging, first attempts in flight'));
    // By now the first wave has run into the timeout, and the neighbour is limited.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, firstWaveAt + timeoutMs + 1_000 - Date.now())));
    lines.push(await healthyBatch(service.url, store.token, receiver, 'neighbour hanging, limited'));
    lines.push(`  the hanging receiver got ${hanging.received()} requests for its ${backlog} events meanwhile`);
    return lines;
  } finally {
    await service.process.stop(5_000);
    await receiver.close();
    await hanging.close();
  }
}

console.log(
  `slow neighbour: ${events} events to a healthy webhook; the neighbour's receiver never answers ` +
    `(${backlog} events, DELIVERY_TIMEOUT_MS=${timeoutMs}); 50 delivery slots`,
);
for (const line of await run(false)) console.log(line);
for (const line of await run(true)) console.log(line);
process.exit(0);
