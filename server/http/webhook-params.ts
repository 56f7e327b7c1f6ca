// Checks on WebhookParms that JSON Schema cannot express (the schema has already run): the callback URL's host
// against the address guard, the exact byte length of a given secret, and header names the delivery owns.
import type { ValidationError, WebhookParms } from '../contract.js';
import { reservedHeaderNames } from '../delivery/reserved-headers.js';
import type { WebhookInput } from '../store/webhooks.js';
import { pointerSegment, validationProblem } from './problems.js';

/** Answers why a callback host may not be used, or null when it may. */
export type HostCheck = (hostname: string) => string | null;

function secretLengthRefusal(secret: string): string | null {
  const bytes = Buffer.from(secret.slice('whsec_'.length), 'base64').length;
  return bytes < 24 || bytes > 64 ? `must encode 24 to 64 bytes after whsec_, not ${bytes}` : null;
}

/** The schema checks the secret's form; this checks the byte length the form cannot express. */
export function checkSecretLength(secret: string, pointer: string): void {
  const refusal = secretLengthRefusal(secret);
  if (refusal) throw validationProblem([{ pointer, in: 'body', detail: refusal }], 'request body');
}

/** The uniqueness key of a callback URL: WHATWG URL parsing lower-cases scheme and host and drops a default port. */
export function callbackUrlKey(url: URL): string {
  return url.href;
}

export function checkWebhookParms(parms: WebhookParms, checkHost: HostCheck): WebhookInput {
  const errors: ValidationError[] = [];
  const fail = (pointer: string, detail: string) => errors.push({ pointer, in: 'body', detail });

  let url: URL | undefined;
  try {
    url = new URL(parms.callbackUrl);
  } catch {
    fail('/callbackUrl', 'is not an absolute URL');
  }
  if (url) {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') fail('/callbackUrl', 'must be an http or https URL');
    else if (url.username || url.password) {
      // Credentials in a URL end up in logs and proxies; custom headers carry them safely.
      fail('/callbackUrl', 'must not carry credentials (user:password@); send them in `headers` instead');
    } else {
      const refusal = checkHost(url.hostname);
      if (refusal) fail('/callbackUrl', `is not allowed: ${refusal}`);
    }
  }

  if (parms.secret !== undefined) {
    const refusal = secretLengthRefusal(parms.secret);
    if (refusal) fail('/secret', refusal);
  }

  const seen = new Set<string>();
  for (const name of Object.keys(parms.headers ?? {})) {
    const lower = name.toLowerCase();
    if (reservedHeaderNames.has(lower) || lower.startsWith('webhook-')) {
      fail(`/headers/${pointerSegment(name)}`, 'is set by the delivery itself and cannot be overridden');
    } else if (seen.has(lower)) {
      fail(`/headers/${pointerSegment(name)}`, 'repeats another header name (names are compared without case)');
    }
    seen.add(lower);
  }

  if (errors.length > 0 || !url) throw validationProblem(errors, 'request body');
  return {
    callbackUrl: parms.callbackUrl,
    callbackUrlKey: callbackUrlKey(url),
    events: parms.events,
    ...(parms.description !== undefined ? { description: parms.description } : {}),
    enabled: parms.enabled ?? true,
    headers: parms.headers ?? {},
  };
}
