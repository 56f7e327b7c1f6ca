// Sends one delivery attempt over HTTP and reports what came of it. Hostile or broken receivers are the normal
// case here: every attempt is bounded in time, in response size and in concurrency, connects only to addresses the
// guard allows, follows no redirect, and ends as a DeliveryOutcome instead of an exception.
import type { Readable } from 'node:stream';
import { Agent, buildConnector } from 'undici';
import { type AddressGuard, BlockedAddressError, publicOnly } from './address-guard.js';
import { createConcurrencyGate } from './concurrency-gate.js';
import { reservedHeaderNames } from './reserved-headers.js';
import { type DeliveryOutcome, describeFailure, parseRetryAfter } from './delivery-outcome.js';

export type { DeliveryOutcome, DeliveryFailureReason } from './delivery-outcome.js';

export interface HttpSenderOptions {
  guard: AddressGuard;
  /** The whole attempt, from connecting to the end of the response body. Default 10000. */
  timeoutMs?: number;
  /** TCP (and TLS) connect alone. Default: timeoutMs. */
  connectTimeoutMs?: number;
  /** Response body bytes read at most; the connection is dropped after them. Default 65536. */
  maxResponseBytes?: number;
  /** Attempts in flight at most; more wait in FIFO order. Default 50. */
  maxConcurrency?: number;
  userAgent: string;
}

export interface DeliveryRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
}

export interface HttpSender {
  /** POSTs the body; resolves to the outcome, whatever the receiver does. */
  send(request: DeliveryRequest): Promise<DeliveryOutcome>;
  /** Closes the connection pool; call once no more sends are coming. */
  close(): Promise<void>;
}

/** Kept in the outcome: enough to show a person what the receiver said. */
const keptBodyBytes = 1024;

/**
 * undici's connector with the guard in front and behind: literal-IP hosts are refused before connecting (net does
 * not call `lookup` for them), names are refused inside `lookup`, and the peer address is checked once connected.
 */
function guardedConnector(guard: AddressGuard, timeoutMs: number): buildConnector.connector {
  const connect = buildConnector({ lookup: guard.lookup, timeout: timeoutMs });
  return (options, callback) => {
    const refusal = guard.checkHost(options.hostname);
    if (refusal) {
      callback(new BlockedAddressError(`${refusal}; ${publicOnly}`, options.hostname, options.hostname), null);
      return;
    }
    connect(options, (error, socket) => {
      if (error || !socket) {
        callback(error ?? new Error('connector gave no socket'), null);
        return;
      }
      const remote = socket.remoteAddress;
      const peerRefusal = remote ? guard.checkAddress(remote) : 'the peer address is unknown';
      if (peerRefusal) {
        socket.destroy();
        const message = `${options.hostname} connected to a refused address: ${peerRefusal}; ${publicOnly}`;
        callback(new BlockedAddressError(message, options.hostname, remote ?? ''), null);
        return;
      }
      callback(null, socket);
    });
  };
}

/** Reads at most `limit` bytes, then destroys the body so undici drops the connection instead of draining it. */
async function readPrefix(body: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  // Destroying an unfinished undici body emits RequestAbortedError; nobody else is listening for it.
  body.on('error', () => {});
  if (limit > 0) {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= limit) break;
    }
  }
  if (!body.readableEnded) body.destroy();
  return Buffer.concat(chunks).subarray(0, limit);
}

const firstValue = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

export function createHttpSender(options: HttpSenderOptions): HttpSender {
  const { guard, userAgent, timeoutMs = 10_000, maxResponseBytes = 65_536, maxConcurrency = 50 } = options;
  const gate = createConcurrencyGate(maxConcurrency);
  // An own pool, not the global dispatcher: its connector is the guarded one, and close() ends only its sockets.
  const agent = new Agent({
    connect: guardedConnector(guard, options.connectTimeoutMs ?? timeoutMs),
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });

  async function attempt(request: DeliveryRequest): Promise<DeliveryOutcome> {
    const started = performance.now();
    const durationMs = () => Math.round(performance.now() - started);
    const fail = (reason: DeliveryOutcome['reason'], detail: string): DeliveryOutcome => ({
      ok: false,
      reason,
      durationMs: durationMs(),
      detail,
    });

    let url: URL;
    try {
      url = new URL(request.url);
    } catch {
      return fail('connection_error', 'The callback URL is not a valid URL.');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      return fail('connection_error', `The callback URL must be http or https, not ${url.protocol}.`);
    }
    // Refused here too, before the pool is involved, so a literal-IP refusal reads plainly and costs nothing.
    const refusal = guard.checkHost(url.hostname);
    if (refusal) return fail('blocked_address', `${refusal}; ${publicOnly}`);

    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers)) {
      // Set by the sender alone: a caller's copy could break framing (host, content-length) or misstate the body.
      if (!reservedHeaderNames.has(name.toLowerCase())) headers[name.toLowerCase()] = value;
    }
    headers['content-type'] = 'application/json';
    headers['user-agent'] = userAgent;

    let status: number | undefined;
    try {
      const response = await agent.request({
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method: 'POST',
        headers,
        body: request.body,
        // bodyTimeout restarts with every chunk; only this bounds a receiver that trickles forever.
        signal: AbortSignal.timeout(timeoutMs),
      });
      status = response.statusCode;
      const body = await readPrefix(response.body, maxResponseBytes);
      const ok = status >= 200 && status < 300;
      const retryAfterMs = parseRetryAfter(firstValue(response.headers['retry-after']));
      return {
        ok,
        ...(ok ? {} : { reason: 'http_status' as const }),
        responseStatus: status,
        durationMs: durationMs(),
        // NUL cannot be stored in a PostgreSQL text column; a binary answer is for people to glance at anyway.
        ...(body.length > 0
          ? { responseBody: body.subarray(0, keptBodyBytes).toString('utf8').replace(/\0/g, '\uFFFD') }
          : {}),
        detail: `The receiver answered HTTP ${status}.`,
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      };
    } catch (error) {
      const failure = describeFailure(error, url, timeoutMs);
      if (status === undefined) return { ok: false, ...failure, durationMs: durationMs() };
      // The status came but the body did not finish: the attempt failed, and the status still helps a person.
      const detail =
        failure.reason === 'timeout'
          ? `The receiver answered HTTP ${status} but did not finish the response within ${timeoutMs} ms.`
          : failure.detail;
      return { ok: false, ...failure, detail, responseStatus: status, durationMs: durationMs() };
    }
  }

  return {
    send: (request) => gate.run(() => attempt(request)),
    close: () => agent.close(),
  };
}
