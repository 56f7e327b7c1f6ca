// The sender against real receivers on 127.0.0.1 (allowed here on purpose), each one misbehaving in its own way.
import type { ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createAddressGuard } from '../../server/delivery/address-guard.js';
import { createHttpSender, type HttpSender, type HttpSenderOptions } from '../../server/delivery/http-sender.js';
import { type Answer, closedPort, type Receiver, startReceiver } from './receiver.js';

const body = JSON.stringify({ type: 'webhook.test', data: { message: 'hello' } });
const shortTimeoutMs = 500;
/** Scheduling slack on a busy 2-core machine; the point is "about timeoutMs", not "whenever". */
const slackMs = 400;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

function sender(options: Partial<HttpSenderOptions> = {}): HttpSender {
  const created = createHttpSender({
    guard: createAddressGuard({ allowedCidrs: ['127.0.0.0/8'] }),
    userAgent: 'webhooks-api/test',
    timeoutMs: shortTimeoutMs,
    ...options,
  });
  cleanups.push(() => created.close());
  return created;
}

async function receiver(answer?: Answer): Promise<Receiver> {
  const started = await startReceiver(answer);
  cleanups.push(() => started.close());
  return started;
}

const post = (url: string, headers: Record<string, string> = {}) => ({ url, headers, body });

function drainedOrClosed(response: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      response.off('drain', done).off('close', done);
      resolve();
    };
    response.on('drain', done).on('close', done);
  });
}

/** Writes `total` bytes of body from one reused chunk, honouring backpressure; resolves with the bytes written. */
async function stream(response: ServerResponse, total: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, 'x');
  let written = 0;
  while (written < total && !response.destroyed) {
    written += chunk.length;
    if (!response.write(chunk)) await drainedOrClosed(response);
  }
  response.end();
  return written;
}

describe('a receiver that answers 2xx', () => {
  it('accepts the delivery and receives the body, the headers and the user agent', async () => {
    const hook = await receiver((_, response) => response.writeHead(200).end('thanks'));
    const headers = { 'x-shop-id': 'eu-1234', 'webhook-id': 'msg_1' };
    const outcome = await sender().send(post(`${hook.url}?tenant=1`, headers));

    expect(outcome).toMatchObject({ ok: true, responseStatus: 200, responseBody: 'thanks' });
    expect(outcome.reason).toBeUndefined();
    expect(outcome.detail).toBe('The receiver answered HTTP 200.');
    const [delivered] = hook.requests;
    expect(delivered).toMatchObject({ method: 'POST', path: '/hook?tenant=1', body });
    expect(delivered?.headers).toMatchObject({
      'content-type': 'application/json',
      'user-agent': 'webhooks-api/test',
      'x-shop-id': 'eu-1234',
      'webhook-id': 'msg_1',
    });
  });

  it('does not let a caller header replace content-type or user-agent', async () => {
    const hook = await receiver();
    await sender().send(post(hook.url, { 'Content-Type': 'text/plain', 'User-Agent': 'curl' }));
    expect(hook.requests[0]?.headers).toMatchObject({
      'content-type': 'application/json',
      'user-agent': 'webhooks-api/test',
    });
  });
});

describe('a receiver that answers non-2xx', () => {
  it('fails with http_status, the status and the start of the body', async () => {
    const hook = await receiver((_, response) => response.writeHead(500).end('e'.repeat(5000)));
    const outcome = await sender().send(post(hook.url));
    expect(outcome).toMatchObject({
      ok: false,
      reason: 'http_status',
      responseStatus: 500,
      detail: 'The receiver answered HTTP 500.',
      responseBody: 'e'.repeat(1024),
    });
  });

  it('keeps a binary answer storable: NUL bytes (refused by PostgreSQL text) become U+FFFD', async () => {
    const hook = await receiver((_, response) => response.writeHead(200).end(Buffer.from('a\0b')));
    const outcome = await sender().send(post(hook.url));
    expect(outcome).toMatchObject({ ok: true, responseBody: 'a\uFFFDb' });
  });

  it('is not followed when it redirects: the redirect target gets nothing', async () => {
    const target = await receiver();
    const hook = await receiver((_, response) => response.writeHead(302, { location: target.url }).end());
    const outcome = await sender().send(post(hook.url));
    expect(outcome).toMatchObject({ ok: false, reason: 'http_status', responseStatus: 302 });
    expect(target.connections).toBe(0);
  });

  it.each([
    ['delay-seconds', '120', 120_000],
    ['an HTTP date', () => new Date(Date.now() + 60_000).toUTCString(), 60_000],
  ] as const)('reports Retry-After given as %s', async (_, header, expectedMs) => {
    const value = typeof header === 'function' ? header() : header;
    const hook = await receiver((_, response) => response.writeHead(503, { 'retry-after': value }).end());
    const outcome = await sender().send(post(hook.url));
    expect(outcome).toMatchObject({ reason: 'http_status', responseStatus: 503 });
    // An HTTP date has whole seconds, so it can land up to a second early.
    expect(outcome.retryAfterMs).toBeGreaterThan(expectedMs - 2000);
    expect(outcome.retryAfterMs).toBeLessThanOrEqual(expectedMs);
  });
});

describe('a receiver that does not answer in time', () => {
  it('times out when it never answers', async () => {
    const hook = await receiver(() => {});
    const outcome = await sender().send(post(hook.url));
    expect(outcome).toMatchObject({
      ok: false,
      reason: 'timeout',
      detail: `The receiver did not answer within ${shortTimeoutMs} ms.`,
    });
    expect(outcome.durationMs).toBeGreaterThanOrEqual(shortTimeoutMs - 20);
    expect(outcome.durationMs).toBeLessThan(shortTimeoutMs + slackMs);
  });

  it('times out when it trickles its body forever', async () => {
    const hook = await receiver((_, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' });
      const drip = setInterval(() => response.write('.'), 20);
      response.on('close', () => clearInterval(drip));
    });
    const outcome = await sender().send(post(hook.url));
    expect(outcome).toMatchObject({ ok: false, reason: 'timeout', responseStatus: 200 });
    expect(outcome.durationMs).toBeLessThan(shortTimeoutMs + slackMs);
  });
});

describe('a receiver that sends a huge body', () => {
  it('is cut off after maxResponseBytes without buffering the rest', async () => {
    const hundredMiB = 100 * 1024 * 1024;
    let written: Promise<number> | undefined;
    const hook = await receiver((_, response) => {
      response.writeHead(200, { 'content-length': String(hundredMiB) });
      written = stream(response, hundredMiB);
    });
    const rssBefore = process.memoryUsage().rss;

    const outcome = await sender({ timeoutMs: 10_000, maxResponseBytes: 65_536 }).send(post(hook.url));

    expect(outcome).toMatchObject({ ok: true, responseStatus: 200 });
    expect(outcome.responseBody).toHaveLength(1024);
    // The sender dropped the connection: the receiver stopped long before 100 MiB.
    expect(await written).toBeLessThan(hundredMiB / 4);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(40 * 1024 * 1024);
  });
});

describe('a receiver that cannot be reached', () => {
  it('fails with connection_refused on a closed port', async () => {
    const port = await closedPort();
    const outcome = await sender().send(post(`http://127.0.0.1:${port}/hook`));
    expect(outcome).toMatchObject({
      ok: false,
      reason: 'connection_refused',
      detail: `127.0.0.1:${port} refused the connection.`,
    });
  });

  it('fails with tls when an https URL reaches a plain-HTTP receiver', async () => {
    const hook = await receiver();
    const outcome = await sender().send(post(`https://127.0.0.1:${hook.port}/hook`));
    expect(outcome).toMatchObject({
      ok: false,
      reason: 'tls',
      detail: expect.stringMatching(/\(ERR_SSL_WRONG_VERSION_NUMBER\)\.$/),
    });
    expect(hook.requests).toHaveLength(0);
  });

  it('fails with dns when the name does not resolve', async () => {
    // .invalid never resolves (RFC 6761), so this asks the local resolver only.
    const outcome = await sender().send(post('http://hooks.invalid/hook'));
    expect(outcome).toMatchObject({
      ok: false,
      reason: 'dns',
      detail: expect.stringMatching(/^hooks\.invalid could not be resolved \(E/),
    });
  });
});

describe('the concurrency cap', () => {
  it('keeps at most maxConcurrency deliveries in flight; the rest wait their turn', async () => {
    let inFlight = 0;
    let mostInFlight = 0;
    const hook = await receiver((_, response) => {
      inFlight += 1;
      mostInFlight = Math.max(mostInFlight, inFlight);
      // Holding each request a little makes overlapping sends overlap at the receiver too.
      setTimeout(() => {
        inFlight -= 1;
        response.writeHead(204).end();
      }, 50);
    });
    const capped = sender({ maxConcurrency: 2, timeoutMs: 5000 });

    const outcomes = await Promise.all(Array.from({ length: 5 }, () => capped.send(post(hook.url))));

    expect(outcomes.every((outcome) => outcome.ok)).toBe(true);
    expect(hook.requests).toHaveLength(5);
    expect(mostInFlight).toBe(2);
  });
});
