// Standard Webhooks v1 signatures (https://www.standardwebhooks.com): what the `webhook-id`, `webhook-timestamp`
// and `webhook-signature` headers of every delivery carry, so a receiver can verify it with any conforming library.
import { createHmac } from 'node:crypto';
import { randomBytes } from '../random-bytes.js';

const secretPrefix = 'whsec_';

export interface SignInput {
  /** `whsec_…` secrets; more than one during a rotation, so receivers holding either secret can verify. */
  secrets: readonly string[];
  messageId: string;
  /** Whole seconds since the Unix epoch, as sent in `webhook-timestamp`. */
  timestamp: number;
  body: string;
}

/** A message id, the same on every retry of one message so receivers can drop duplicates. */
export function newMessageId(): string {
  return `msg_${randomBytes(16).toString('base64url')}`;
}

/** A new signing secret: `whsec_` and the base64 of 32 random bytes. */
export function generateSecret(): string {
  return `${secretPrefix}${randomBytes(32).toString('base64')}`;
}

/** The `webhook-signature` header value: `v1,<base64 HMAC-SHA256>` per secret, space-separated. */
export function signPayload({ secrets, messageId, timestamp, body }: SignInput): string {
  // Both are programming errors: an unsigned delivery or a timestamp receivers cannot parse must never go out.
  if (secrets.length === 0) throw new Error('signPayload needs at least one secret');
  if (!Number.isInteger(timestamp)) throw new Error('signPayload needs a timestamp in whole seconds');
  const signed = `${messageId}.${timestamp}.${body}`;
  return secrets
    .map((secret) => {
      if (!secret.startsWith(secretPrefix)) throw new Error('a signing secret must start with whsec_');
      const key = Buffer.from(secret.slice(secretPrefix.length), 'base64');
      return `v1,${createHmac('sha256', key).update(signed, 'utf8').digest('base64')}`;
    })
    .join(' ');
}
