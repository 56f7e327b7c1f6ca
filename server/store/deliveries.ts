// Deliveries (one message to one webhook) and their attempts. The test operation records its single attempt
// here; the event worker (a later issue) will use the same tables as its queue.
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

export interface AttemptResult {
  ok: boolean;
  reason?: string;
  responseStatus?: number;
  durationMs: number;
  responseBody?: string;
  detail: string;
}

export interface SentMessage {
  tenantId: string;
  webhookId: string;
  eventType: string;
  messageId: string;
  payload: string;
}

export class DeliveryStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** Records a delivery that was attempted once, right away (the test operation): the delivery and its attempt. */
  async recordSingleAttempt(message: SentMessage, attemptedAt: Date, result: AttemptResult): Promise<string> {
    const id = randomUUID();
    const at = attemptedAt.toISOString();
    await this.db.transaction().execute(async (tx) => {
      await tx
        .insertInto('deliveries')
        .values({
          id,
          tenant_id: message.tenantId,
          webhook_id: message.webhookId,
          event_id: null,
          event_type: message.eventType,
          message_id: message.messageId,
          payload: message.payload,
          status: result.ok ? 'succeeded' : 'failed',
          attempt_count: 1,
          next_attempt_at: null,
          lease_until: null,
          created_at: at,
          updated_at: new Date().toISOString(),
        })
        .execute();
      await tx
        .insertInto('delivery_attempts')
        .values({
          delivery_id: id,
          attempted_at: at,
          succeeded: result.ok ? 1 : 0,
          reason: result.reason ?? null,
          response_status: result.responseStatus ?? null,
          duration_ms: Math.round(result.durationMs),
          response_body: result.responseBody ?? null,
          detail: result.detail,
        })
        .execute();
    });
    return id;
  }
}
