// The test operation's delivery: a `webhook.test` event, signed per Standard Webhooks, sent once through the
// guarded sender, recorded, and turned into null (accepted) or the 502 problem that says what happened.
import type { FastifyBaseLogger } from 'fastify';
import type { Schemas } from '../contract.js';
import { HttpProblem, problemType } from '../http/problems.js';
import type { TestSender } from '../http/webhook-handlers.js';
import type { DeliveryStore } from '../store/deliveries.js';
import { signingSecrets } from '../store/webhooks.js';
import type { HttpSender } from './http-sender.js';
import { newMessageId, signPayload } from './signature.js';

export function createTestSender(sender: HttpSender, deliveries: DeliveryStore, log: FastifyBaseLogger): TestSender {
  return async (webhook) => {
    const now = new Date();
    const event: Schemas['WebhookTestEvent'] = {
      type: 'webhook.test',
      timestamp: now.toISOString(),
      data: { webhookId: webhook.id, message: 'This is a test notification from the Webhooks API.' },
    };
    const body = JSON.stringify(event);
    const messageId = newMessageId();
    const timestamp = Math.floor(now.getTime() / 1000);
    const outcome = await sender.send({
      url: webhook.callbackUrl,
      headers: {
        ...webhook.headers,
        'webhook-id': messageId,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': signPayload({ secrets: signingSecrets(webhook, now), messageId, timestamp, body }),
      },
      body,
    });
    try {
      await deliveries.recordSingleAttempt(
        { tenantId: webhook.tenantId, webhookId: webhook.id, eventType: event.type, messageId, payload: body },
        now,
        outcome,
      );
    } catch (error) {
      // The webhook was deleted while the test ran (its deliveries went with it); the caller still gets the outcome.
      log.warn({ err: error, webhookId: webhook.id }, 'could not record the test delivery');
    }
    if (outcome.ok) return null;
    return new HttpProblem(502, {
      type: problemType('delivery-failed'),
      title: 'Test delivery failed',
      detail: outcome.detail,
      ...(outcome.reason ? { reason: outcome.reason } : {}),
      ...(outcome.responseStatus !== undefined ? { responseStatus: outcome.responseStatus } : {}),
      durationMs: Math.round(outcome.durationMs),
    });
  };
}
