// Error-to-outcome mapping for failures a local receiver cannot easily produce (TLS, DNS, wrapped errors).
import { describe, expect, it } from 'vitest';
import { describeFailure, parseRetryAfter } from '../../server/delivery/delivery-outcome.js';

const url = new URL('https://hooks.example.com/hook');
const coded = (code: string, message = code) => Object.assign(new Error(message), { code });

describe('describeFailure', () => {
  // [name, error, reason]
  const cases: Array<[string, unknown, string]> = [
    ['an expired certificate', coded('CERT_HAS_EXPIRED'), 'tls'],
    ['a self-signed certificate', coded('DEPTH_ZERO_SELF_SIGNED_CERT'), 'tls'],
    ['a name the certificate does not cover', coded('ERR_TLS_CERT_ALTNAME_INVALID'), 'tls'],
    ['an OpenSSL protocol error', coded('ERR_SSL_WRONG_VERSION_NUMBER'), 'tls'],
    ['an unknown name', coded('ENOTFOUND'), 'dns'],
    ['a resolver that is down', coded('EAI_AGAIN'), 'dns'],
    ['a refused connection', coded('ECONNREFUSED'), 'connection_refused'],
    ['a reset connection', coded('ECONNRESET'), 'connection_error'],
    ['undici connect timeout', coded('UND_ERR_CONNECT_TIMEOUT'), 'timeout'],
    ['undici headers timeout', coded('UND_ERR_HEADERS_TIMEOUT'), 'timeout'],
    ['undici body timeout', coded('UND_ERR_BODY_TIMEOUT'), 'timeout'],
    ['AbortSignal.timeout', new DOMException('The operation was aborted due to timeout', 'TimeoutError'), 'timeout'],
    ['a blocked address', coded('EBLOCKEDADDRESS', 'x resolves to 10.0.0.1'), 'blocked_address'],
    [
      'a system error wrapped as a cause',
      new TypeError('fetch failed', { cause: coded('ECONNREFUSED') }),
      'connection_refused',
    ],
    ['something without a code', new Error('socket hang up'), 'connection_error'],
    ['a thrown non-error', 'boom', 'connection_error'],
  ];
  for (const [name, error, reason] of cases) {
    it(`maps ${name} to ${reason}`, () => {
      expect(describeFailure(error, url, 10_000).reason).toBe(reason);
    });
  }

  it('writes one sentence a person can act on', () => {
    expect(describeFailure(coded('ENOTFOUND'), url, 10_000).detail).toBe(
      'hooks.example.com could not be resolved (ENOTFOUND).',
    );
    expect(describeFailure(coded('CERT_HAS_EXPIRED'), url, 10_000).detail).toBe(
      'The TLS handshake with hooks.example.com:443 failed (CERT_HAS_EXPIRED).',
    );
    expect(describeFailure(coded('ECONNRESET'), url, 10_000).detail).toBe(
      'The connection to hooks.example.com:443 failed (ECONNRESET).',
    );
    expect(describeFailure(coded('UND_ERR_HEADERS_TIMEOUT'), url, 10_000).detail).toBe(
      'The receiver did not answer within 10000 ms.',
    );
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-11-06T16:00:00Z');
  // [name, header, milliseconds]
  const cases: Array<[string, string | undefined, number | undefined]> = [
    ['absent', undefined, undefined],
    ['delay-seconds', '120', 120_000],
    ['zero seconds', '0', 0],
    ['an HTTP date', 'Fri, 06 Nov 2026 16:01:30 GMT', 90_000],
    ['an HTTP date in the past', 'Fri, 06 Nov 2026 15:00:00 GMT', 0],
    ['a negative number', '-5', undefined],
    ['a fraction', '1.5', undefined],
    ['a bare number Date.parse would take as a year', ' 2001x', undefined],
    ['text', 'soon', undefined],
  ];
  for (const [name, header, expected] of cases) {
    it(`reads ${name} as ${String(expected)}`, () => {
      expect(parseRetryAfter(header, now)).toBe(expected);
    });
  }
});
