// Test-delivery overhead: POST /api/web/v1/webhooks/test/{id} against a receiver on 127.0.0.1, one request at a
// time. The overhead (issue 6's definition, what its target judges) is each test's latency minus the receiver's own
// handling time of that test's delivery: the client hop, auth, the webhook read, signing, the service's HTTP
// exchange with the receiver, and recording the attempt. Each test is also paired with a direct POST of a
// delivery-shaped request to the same receiver; the latency above that is printed for reference (it leaves out the
// HTTP exchange that a direct delivery makes too).
import { Client } from 'undici';
import type { Receiver } from './receiver.js';
import type { ServerHandle } from './servers.js';
import { type LatencySummary, round3, Samples, summarize } from './stats.js';

export interface TestDeliveryResult {
  samples: number;
  /** Client-side latency of POST /webhooks/test/{id}, ms. */
  viaService: LatencySummary;
  /** Client-side latency of the same-shaped POST straight to the receiver, ms. */
  direct: LatencySummary;
  /** The receiver's own handling time of the service's deliveries, ms. */
  receiverHandling: LatencySummary;
  /** p50 and p99 of (a test's latency − the receiver's handling time of its delivery), ms: the target's measure. */
  overheadP50Ms: number;
  overheadP99Ms: number;
  /** p50 via the service − p50 direct, and likewise p99, ms: what the service adds over a direct delivery. */
  aboveDirectP50Ms: number;
  aboveDirectP99Ms: number;
  failures: number;
  firstFailure?: string;
}

async function post(client: Client, path: string, headers: Record<string, string>, body?: string) {
  const started = performance.now();
  const response = await client.request({ method: 'POST', path, headers, ...(body !== undefined ? { body } : {}) });
  const text = await response.body.text();
  return { status: response.statusCode, text, ms: performance.now() - started };
}

export async function measureTestDelivery(
  service: ServerHandle,
  token: string,
  receiver: Receiver,
  samples: number,
  warmup: number,
): Promise<TestDeliveryResult> {
  // A test is bounded by the service's delivery timeout (10 s); a hung service or receiver fails the section in 15 s
  // instead of waiting for undici's default 300 s per request.
  const bounded = { pipelining: 1, headersTimeout: 15_000, bodyTimeout: 15_000 };
  const api = new Client(service.url, bounded);
  const direct = new Client(receiver.url, bounded);
  receiver.handling = new Samples();
  try {
    const auth = { authorization: `Bearer ${token}` };
    const created = await post(
      api,
      '/api/web/v1/webhooks',
      { ...auth, 'content-type': 'application/json' },
      JSON.stringify({ callbackUrl: `${receiver.url}/test-hook`, events: ['order.created'], headers: { 'X-Shop-Id': 'bench' } }),
    );
    if (created.status !== 200) throw new Error(`creating the test webhook answered ${created.status}: ${created.text}`);
    const { id } = JSON.parse(created.text) as { id: string };

    // What the service's sender puts on the wire, so the direct request costs the receiver the same.
    const body = JSON.stringify({
      type: 'webhook.test',
      timestamp: new Date().toISOString(),
      data: { webhookId: id, message: 'This is a test notification from the Webhooks API.' },
    });
    const directHeaders = {
      'content-type': 'application/json',
      'user-agent': 'webhooks-api/0.1.0',
      'x-shop-id': 'bench',
      'webhook-id': 'msg_2b7Xq0kQ1mZ4cA9eTn3LwYabcdef',
      'webhook-timestamp': String(Math.floor(Date.now() / 1000)),
      'webhook-signature': 'v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=',
    };

    const viaService = new Samples();
    const straight = new Samples();
    const overhead = new Samples();
    let failures = 0;
    let firstFailure: string | undefined;
    for (let i = 0; i < warmup + samples; i++) {
      const measuring = i >= warmup;
      // Alternating pairs, so drift on the machine hits both sides alike.
      const plain = await post(direct, '/test-hook', directHeaders, body);
      const handledBefore = receiver.handling.length;
      receiver.recording = measuring;
      const tested = await post(api, `/api/web/v1/webhooks/test/${id}`, auth);
      receiver.recording = false;
      // One test, one delivery: its handling time is the one sample recorded during the call.
      const handled =
        receiver.handling.length === handledBefore + 1 ? receiver.handling.values()[handledBefore] : undefined;
      if (tested.status !== 200 || plain.status !== 204) {
        failures++;
        firstFailure ??= `test ${tested.status} ${tested.text.slice(0, 300)}; direct ${plain.status}`;
        continue;
      }
      if (measuring) {
        viaService.push(tested.ms);
        straight.push(plain.ms);
        if (handled === undefined) {
          failures++;
          const deliveries = receiver.handling.length - handledBefore;
          firstFailure ??= `test ${tested.status}, but the receiver counted ${deliveries} deliveries`;
        } else overhead.push(tested.ms - handled);
      }
    }
    const service = summarize(viaService.values());
    const bare = summarize(straight.values());
    const added = summarize(overhead.values());
    return {
      samples,
      viaService: service,
      direct: bare,
      receiverHandling: summarize(receiver.handling.values()),
      overheadP50Ms: added.p50,
      overheadP99Ms: added.p99,
      aboveDirectP50Ms: round3(service.p50 - bare.p50),
      aboveDirectP99Ms: round3(service.p99 - bare.p99),
      failures,
      ...(firstFailure !== undefined ? { firstFailure } : {}),
    };
  } finally {
    await Promise.all([api.close(), direct.close()]);
  }
}
