// What the service answers when Node's HTTP parser refuses a request before Fastify sees it: a request that does not
// arrive in full within REQUEST_TIMEOUT_MS (a trickled body, headers never finished, a connection that sends
// nothing), headers over the size bound, bytes that are not HTTP. Each gets a problem+json and a closed connection;
// nothing is stored. Raw sockets on purpose: no HTTP client sends these.
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReceiver, type Receiver } from '../delivery/receiver.js';
import { createWebhook, startService, type TestService } from '../support/service.js';

const requestTimeoutMs = 1_000;

let service: TestService;
let token: string;
beforeAll(async () => {
  service = await startService(undefined, { REQUEST_TIMEOUT_MS: String(requestTimeoutMs) });
  token = await service.token();
});
afterAll(() => service?.close());

/** Opens a connection, lets `talk` write to it, and resolves with all it received once the service closed it. */
async function exchange(talk: (socket: Socket) => void = () => {}) {
  const { hostname, port } = new URL(service.baseUrl);
  const socket = connect(Number(port), hostname);
  await once(socket, 'connect');
  const started = performance.now();
  let received = '';
  socket.setEncoding('latin1');
  socket.on('data', (data: string) => (received += data));
  socket.on('error', () => {}); // a reset after the answer still ends the exchange through 'close'
  const closed = once(socket, 'close');
  talk(socket);
  // Bounded: a connection the service never closes fails the test instead of hanging it.
  const timer = setTimeout(() => socket.destroy(), 10 * requestTimeoutMs);
  await closed;
  clearTimeout(timer);
  const [head = '', body = ''] = received.split('\r\n\r\n');
  return { statusLine: head.split('\r\n')[0], head, body, closedAfterMs: performance.now() - started };
}

function expectProblem(answer: Awaited<ReturnType<typeof exchange>>, status: number, detail: RegExp) {
  expect(answer.statusLine).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
  expect(answer.head).toMatch(/\r\ncontent-type: application\/problem\+json\r\n/i);
  expect(answer.head).toMatch(/\r\nconnection: close(\r\n|$)/i);
  const problem = JSON.parse(answer.body);
  expect(problem).toMatchObject({ type: 'about:blank', status });
  expect(problem.title).toEqual(expect.any(String));
  expect(problem.detail).toMatch(detail);
}

const createHead = (contentLength: number) =>
  `POST /api/web/v1/webhooks HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${token}\r\n` +
  `content-type: application/json\r\ncontent-length: ${contentLength}\r\n\r\n`;

describe('a request that does not arrive in full within REQUEST_TIMEOUT_MS', () => {
  it('gets 408 when its body trickles in, and nothing is stored', async () => {
    const body = JSON.stringify({ callbackUrl: 'https://slow.example.com/hook', events: ['order.created'] });
    const answer = await exchange((socket) => {
      socket.write(createHead(Buffer.byteLength(body)));
      // A byte every 100 ms: the connection is never idle, but the body would take several seconds.
      let sent = 0;
      const timer = setInterval(() => (socket.writable ? socket.write(body[sent++]!) : clearInterval(timer)), 100);
      socket.once('close', () => clearInterval(timer));
    });
    expectProblem(answer, 408, /within 1 s/);
    expect(answer.closedAfterMs).toBeGreaterThanOrEqual(requestTimeoutMs - 50);
    // Node checks for late requests every tenth of the bound; the rest is room for a loaded machine.
    expect(answer.closedAfterMs).toBeLessThan(requestTimeoutMs + 5_000);
    const { data } = await service.client(token).GET('/api/web/v1/webhooks', {});
    expect(data).toEqual([]);
  });

  it('gets 408 when its headers never end', async () => {
    const answer = await exchange((socket) => socket.write('GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n'));
    expectProblem(answer, 408, /did not arrive in full/);
  });

  it('gets 408 when the connection sends nothing at all', async () => {
    expectProblem(await exchange(), 408, /did not arrive in full/);
  });
});

it('answers headers over the size bound with 431', async () => {
  const answer = await exchange((socket) =>
    socket.write(`GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-padding: ${'a'.repeat(20_000)}\r\n\r\n`),
  );
  expectProblem(answer, 431, /headers are larger/);
});

it('answers bytes that are not HTTP with 400 and says what the parser found', async () => {
  const answer = await exchange((socket) => socket.write('HELLO THERE\r\n\r\n'));
  expectProblem(answer, 400, /^The request is not valid HTTP\/1\.1: .+\.$/);
});

it('never answers a refused request in the place of an earlier one on the same connection (pipelining)', async () => {
  // Both arrive in one packet: the health check is still being answered when the parser refuses what follows it.
  // An answer written now would be read by the client as the health check's; the connection is closed instead.
  const answer = await exchange((socket) => socket.write('GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\nHELLO\r\n\r\n'));
  expect(answer.statusLine).not.toMatch(/^HTTP\/1\.1 400 /);
});

it('leaves a request that has arrived alone however long its answer takes (a slow test delivery)', async () => {
  const receiver: Receiver = await startReceiver((_, response) => {
    setTimeout(() => response.writeHead(204).end(), 2 * requestTimeoutMs);
  });
  try {
    const api = service.client(token);
    const webhook = await createWebhook(api, { callbackUrl: receiver.url, events: ['order.created'] });
    const started = performance.now();
    const { response } = await api.POST('/api/web/v1/webhooks/test/{id}', { params: { path: { id: webhook.id } } });
    expect(response.status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(2 * requestTimeoutMs - 50);
    expect(receiver.requests).toHaveLength(1);
  } finally {
    await receiver.close();
  }
});

it('gives a refused request one answer only, even when its body then arrives too slowly', async () => {
  // Refused at once (no token) with the body still to come; the service waits for it to discard it, and the
  // request timeout then ends the connection. A 408 written now would be read as the next request's answer.
  const answer = await exchange((socket) =>
    socket.write('POST /api/web/v1/webhooks HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{'),
  );
  expect(answer.statusLine).toMatch(/^HTTP\/1\.1 401 /);
  expect(answer.body).not.toContain('HTTP/1.1');
  expect(answer.closedAfterMs).toBeGreaterThanOrEqual(requestTimeoutMs - 50);
});
