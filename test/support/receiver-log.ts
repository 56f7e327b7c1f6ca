// A recording webhook receiver on 127.0.0.1 for the event tests: it keeps every request with its arrival time,
// answers as the test says (per request, so "fail twice then succeed" is one line), and lets a test await
// "N requests (matching this) have arrived" as an event, bounded by a deadline, instead of sleeping.
// Also `eventually`, for waiting on state the API reports (a delivery's status), polled with a deadline.
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LoggedRequest {
  /** 0 for the first request this receiver got, and so on. */
  index: number;
  method: string;
  path: string;
  /** Lower-cased names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: string;
  /** Date.now() when the whole body had arrived (before the answer was written). */
  arrivedAt: number;
}

export interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /** Answer only once this settles (the request is recorded, and waiters woken, at once). */
  holdUntil?: Promise<unknown>;
}

/** How the receiver answers a request (`request.index` counts this receiver's requests from 0). */
export type Responder = (request: LoggedRequest) => Reply;

export interface RecordingReceiver {
  /** `http://127.0.0.1:<port>/hook`; append a path (`${url}/a`) to give several webhooks one receiver. */
  url: string;
  requests: LoggedRequest[];
  /** Changes how the following requests are answered. */
  respondWith(responder: Responder): void;
  /**
   * Resolves with the requests matching `where` (all by default) once at least `count` of them have arrived;
   * rejects, naming what did arrive, when `timeoutMs` passes first.
   */
  waitFor(count: number, options?: { where?: (request: LoggedRequest) => boolean; timeoutMs?: number }): Promise<LoggedRequest[]>;
  close(): Promise<void>;
}

/** The receivers a suite starts, so one `afterAll(pool.closeAll)` stops them all. */
export function receiverPool() {
  const started: RecordingReceiver[] = [];
  return {
    async start(responder?: Responder): Promise<RecordingReceiver> {
      const receiver = await startRecordingReceiver(responder);
      started.push(receiver);
      return receiver;
    },
    closeAll: async () => {
      await Promise.all(started.splice(0).map((receiver) => receiver.close()));
    },
  };
}

export const accept: Responder = () => ({ status: 204 });

/** Answers `status` (with `headers`) to the first `times` requests, then 204. */
export const failTimes =
  (times: number, status = 503, headers: Record<string, string> = {}): Responder =>
  (request) =>
    request.index < times ? { status, headers, body: `failure ${request.index + 1}` } : { status: 204 };

/** Always answers `status`. */
export const always =
  (status: number, headers: Record<string, string> = {}): Responder =>
  () => ({ status, headers });

/** The parsed JSON body of a delivery. */
export const envelopeOf = (request: LoggedRequest) =>
  JSON.parse(request.body) as { type: string; timestamp: string; data: Record<string, unknown> };

/** The three Standard Webhooks headers, as `standardwebhooks`' verify() takes them. */
export const signatureHeaders = (request: LoggedRequest) => ({
  'webhook-id': request.headers['webhook-id'] ?? '',
  'webhook-timestamp': request.headers['webhook-timestamp'] ?? '',
  'webhook-signature': request.headers['webhook-signature'] ?? '',
});

export async function startRecordingReceiver(responder: Responder = accept): Promise<RecordingReceiver> {
  let answer = responder;
  const waiters = new Set<() => void>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
      }
      const request: LoggedRequest = {
        index: receiver.requests.length,
        method: req.method ?? '',
        path: req.url ?? '',
        headers,
        body: Buffer.concat(chunks).toString('utf8'),
        arrivedAt: Date.now(),
      };
      receiver.requests.push(request);
      let reply: Reply;
      try {
        reply = answer(request);
      } catch {
        reply = { status: 500, body: 'responder threw' };
      }
      const send = () => {
        if (!res.destroyed) res.writeHead(reply.status, reply.headers).end(reply.body ?? '');
      };
      if (reply.holdUntil) void reply.holdUntil.then(send, send);
      else send();
      for (const wake of [...waiters]) wake();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;

  const receiver: RecordingReceiver = {
    url: `http://127.0.0.1:${port}/hook`,
    requests: [],
    respondWith: (next) => {
      answer = next;
    },
    waitFor: (count, { where = () => true, timeoutMs = 5_000 } = {}) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const matching = receiver.requests.filter(where);
          if (matching.length < count) return false;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(matching);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          const seen = receiver.requests.map((r) => `${r.path} ${r.body.slice(0, 80)}`);
          reject(
            new Error(
              `receiver ${receiver.url}: waited ${timeoutMs} ms for ${count} matching requests, ` +
                `got ${receiver.requests.filter(where).length}; all requests: ${JSON.stringify(seen)}`,
            ),
          );
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
  return receiver;
}

/**
 * Calls `probe` until it returns something other than undefined, and resolves with that; rejects with the last
 * `describe()` (or value) when `timeoutMs` passes. For state behind the API, which announces no events.
 */
export async function eventually<T>(
  probe: () => Promise<T | undefined>,
  { timeoutMs = 5_000, intervalMs = 20, what = 'condition' }: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
