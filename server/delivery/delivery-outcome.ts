// What one delivery attempt came to, as data: the contract's failure `reason`, and a sentence a person can act on.
// Every error a receiver can cause ends up here, so the sender never throws for one.
import type { Schemas } from '../contract.js';

export type DeliveryFailureReason = NonNullable<Schemas['Problem']['reason']>;

export interface DeliveryOutcome {
  /** The receiver answered 2xx. */
  ok: boolean;
  reason?: DeliveryFailureReason;
  responseStatus?: number;
  durationMs: number;
  /** The first 1024 bytes of the response body, as UTF-8. */
  responseBody?: string;
  /** One sentence saying what happened. */
  detail: string;
  /** From a Retry-After header (seconds or an HTTP date), when the receiver sent one. */
  retryAfterMs?: number;
}

type Failure = Pick<DeliveryOutcome, 'reason' | 'detail'>;

const dnsCodes = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NODATA', 'EAI_NONAME', 'ENODATA']);
const timeoutCodes = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
]);
// OpenSSL certificate verification codes have no common prefix; Node's own TLS errors do.
const tlsCodes = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'HOSTNAME_MISMATCH',
  'EPROTO',
]);
const tlsPrefixes = ['ERR_TLS_', 'ERR_SSL_', 'ERR_OSSL_'];

interface ErrorLike {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  cause?: unknown;
}

/** The error and its causes, outermost first: fetch-style wrappers hide the system error in `cause`. */
function causeChain(error: unknown): ErrorLike[] {
  const chain: ErrorLike[] = [];
  for (let e = error; e && typeof e === 'object' && chain.length < 5; e = (e as ErrorLike).cause) chain.push(e);
  return chain;
}

/** Turns an error thrown while delivering to `url` into the failure it stands for. */
export function describeFailure(error: unknown, url: URL, timeoutMs: number): Failure {
  const chain = causeChain(error);
  const codes = chain.map((e) => (typeof e.code === 'string' ? e.code : '')).filter(Boolean);
  const has = (test: (code: string) => boolean) => codes.find(test);
  const where = `${url.hostname}:${url.port || (url.protocol === 'https:' ? 443 : 80)}`;

  const blocked = chain.find((e) => e.code === 'EBLOCKEDADDRESS');
  if (blocked) return { reason: 'blocked_address', detail: String(blocked.message) };
  if (chain.some((e) => e.name === 'TimeoutError' || e.name === 'AbortError') || has((c) => timeoutCodes.has(c))) {
    return { reason: 'timeout', detail: `The receiver did not answer within ${timeoutMs} ms.` };
  }
  if (has((c) => c === 'ECONNREFUSED')) {
    return { reason: 'connection_refused', detail: `${where} refused the connection.` };
  }
  const dns = has((c) => dnsCodes.has(c));
  if (dns) return { reason: 'dns', detail: `${url.hostname} could not be resolved (${dns}).` };
  const tls = has((c) => tlsCodes.has(c) || tlsPrefixes.some((prefix) => c.startsWith(prefix)));
  if (tls) return { reason: 'tls', detail: `The TLS handshake with ${where} failed (${tls}).` };
  const code = codes[0] ?? (chain[0] && typeof chain[0].message === 'string' ? chain[0].message : 'unknown error');
  return { reason: 'connection_error', detail: `The connection to ${where} failed (${code}).` };
}

/** Milliseconds to wait from a Retry-After value (delay-seconds or HTTP-date, RFC 9110 §10.2.3), if it is valid. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // Date.parse alone accepts nearly anything ("1" is the year 2001); an HTTP-date starts with a day name.
  if (!/^[A-Za-z]{3,9},? /.test(text)) return undefined;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
