// Signatures are checked the way a receiver would: by the standardwebhooks reference library, over real HTTP.
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createAddressGuard } from '../../server/delivery/address-guard.js';
import { createHttpSender, type HttpSender } from '../../server/delivery/http-sender.js';
import { generateSecret, newMessageId, signPayload } from '../../server/delivery/signature.js';
import { type Receiver, type ReceivedRequest, startReceiver } from './receiver.js';

const oldSecret = generateSecret();
const newSecret = generateSecret();
const body = JSON.stringify({
  type: 'webhook.test',
  timestamp: new Date().toISOString(),
  data: { n: 1, text: 'héllo' },
});

let sender: HttpSender;
let receiver: Receiver | undefined;

beforeAll(() => {
  sender = createHttpSender({
    guard: createAddressGuard({ allowedCidrs: ['127.0.0.0/8'] }),
    timeoutMs: 2000,
    userAgent: 'signature-test',
  });
});
afterAll(() => sender.close());
afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
});

/** A receiver that accepts only deliveries `secret` verifies, as the contract tells receivers to do. */
function verifyingReceiver(secret: string) {
  return startReceiver((request, response) => {
    try {
      new Webhook(secret).verify(request.body, asHeaders(request));
      response.writeHead(204).end();
    } catch {
      response.writeHead(401).end('bad signature');
    }
  });
}

const asHeaders = (request: ReceivedRequest) =>
  Object.fromEntries(Object.entries(request.headers).map(([name, value]) => [name, String(value)]));

function signedDelivery(url: string, secrets: string[]) {
  const messageId = newMessageId();
  const timestamp = Math.floor(Date.now() / 1000);
  return {
    url,
    body,
    headers: {
      'webhook-id': messageId,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signPayload({ secrets, messageId, timestamp, body }),
    },
  };
}

describe('Standard Webhooks signatures', () => {
  it('verify at a receiver holding the secret', async () => {
    receiver = await verifyingReceiver(newSecret);
    const outcome = await sender.send(signedDelivery(receiver.url, [newSecret]));
    expect(outcome).toMatchObject({ ok: true, responseStatus: 204 });
  });

  it('verify with either secret while two are in use (rotation)', async () => {
    receiver = await startReceiver();
    await sender.send(signedDelivery(receiver.url, [oldSecret, newSecret]));
    const delivered = await receiver.firstRequest();
    expect(delivered.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=* v1,[A-Za-z0-9+/]+=*$/);
    for (const secret of [oldSecret, newSecret]) {
      expect(new Webhook(secret).verify(delivered.body, asHeaders(delivered))).toEqual(JSON.parse(body));
    }
  });

  it('fail at a receiver holding another secret', async () => {
    receiver = await verifyingReceiver(generateSecret());
    const outcome = await sender.send(signedDelivery(receiver.url, [newSecret]));
    expect(outcome).toMatchObject({
      ok: false,
      reason: 'http_status',
      responseStatus: 401,
      responseBody: 'bad signature',
    });
  });

  it('equal what the reference library signs for the same message', () => {
    const messageId = 'msg_2b7Xq0kQ1mZ4cA9eTn3LwY';
    const timestamp = 1793989304;
    const expected = new Webhook(newSecret).sign(messageId, new Date(timestamp * 1000), body);
    expect(signPayload({ secrets: [newSecret], messageId, timestamp, body })).toBe(expected);
  });
});

describe('secrets and message ids', () => {
  it('a generated secret is whsec_ and the base64 of 32 bytes, different every time', () => {
    const secret = generateSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(secret.slice('whsec_'.length), 'base64')).toHaveLength(32);
    expect(generateSecret()).not.toBe(secret);
  });

  it('secrets stay distinct and full length across many refills of the random pool they are drawn from', () => {
    // 500 secrets and 500 message ids are 24,000 random bytes: the pool (2,048 bytes) is refilled a dozen times.
    const secrets = new Set<string>();
    for (let i = 0; i < 500; i++) {
      secrets.add(generateSecret());
      newMessageId();
    }
    expect(secrets.size).toBe(500);
    for (const secret of secrets) {
      const bytes = Buffer.from(secret.slice('whsec_'.length), 'base64');
      expect(bytes).toHaveLength(32);
      // 32 random bytes hold 8 zero bytes in a row with a chance of about 2^-64 per secret.
      expect(bytes.includes(Buffer.alloc(8))).toBe(false);
    }
  });

  it('message ids start with msg_ and do not repeat', () => {
    const ids = new Set(Array.from({ length: 1000 }, newMessageId));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(id).toMatch(/^msg_[A-Za-z0-9_-]{16,}$/);
  });

  it('signing without a secret is refused rather than sending an unsigned delivery', () => {
    expect(() => signPayload({ secrets: [], messageId: 'msg_x', timestamp: 1, body })).toThrow(/at least one secret/);
  });
});
