// The webhooks of every tenant. Every query names the tenant, so one tenant can never reach another's rows.
import { randomUUID } from 'node:crypto';
import type { Kysely, Selectable } from 'kysely';
import type { Webhook } from '../contract.js';
import { isUniqueViolation } from './dialect.js';
import type { Database, WebhooksTable } from './schema.js';

/** A webhook as stored: the contract's Webhook plus what is never shown (its tenant and secret). */
export type WebhookRecord = Omit<Webhook, 'secret'> & { tenantId: string; secret: string };

/** What create and replace write: the parameters after validation and defaults. */
export interface WebhookInput {
  callbackUrl: string;
  callbackUrlKey: string;
  events: string[];
  description?: string;
  enabled: boolean;
  headers: Record<string, string>;
}

export class DuplicateCallbackUrlError extends Error {
  constructor(readonly existingWebhookId: string) {
    super(`webhook ${existingWebhookId} already has this callback URL`);
  }
}

export interface WebhookPage {
  items: WebhookRecord[];
  /** Set when more rows follow: pass it as `afterSeq` for the next page. */
  nextAfterSeq?: number;
}

function toRecord(row: Selectable<WebhooksTable>): WebhookRecord {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    callbackUrl: row.callback_url,
    events: JSON.parse(row.events) as string[],
    ...(row.description !== null ? { description: row.description } : {}),
    enabled: Boolean(row.enabled),
    headers: JSON.parse(row.headers) as Record<string, string>,
    secret: row.secret,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function columns(input: WebhookInput) {
  return {
    callback_url: input.callbackUrl,
    callback_url_key: input.callbackUrlKey,
    events: JSON.stringify(input.events),
    description: input.description ?? null,
    enabled: input.enabled ? 1 : 0,
    headers: JSON.stringify(input.headers),
  };
}

export class WebhookStore {
  constructor(private readonly db: Kysely<Database>) {}

  async create(tenantId: string, input: WebhookInput, secret: string): Promise<WebhookRecord> {
    const now = new Date().toISOString();
    const row = {
      id: randomUUID(),
      tenant_id: tenantId,
      ...columns(input),
      secret,
      created_at: now,
      updated_at: now,
    };
    try {
      await this.db.insertInto('webhooks').values(row).execute();
    } catch (error) {
      throw await this.explainConflict(error, tenantId, input.callbackUrlKey);
    }
    return toRecord({ ...row, seq: 0 });
  }

  async get(tenantId: string, id: string): Promise<WebhookRecord | undefined> {
    const row = await this.db
      .selectFrom('webhooks')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .executeTakeFirst();
    return row && toRecord(row);
  }

  async list(tenantId: string, limit: number, afterSeq = 0): Promise<WebhookPage> {
    const rows = await this.db
      .selectFrom('webhooks')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('seq', '>', afterSeq)
      .orderBy('seq')
      .limit(limit + 1)
      .execute();
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      items: page.map(toRecord),
      ...(rows.length > limit && last ? { nextAfterSeq: Number(last.seq) } : {}),
    };
  }

  /** Replaces the parameters (the secret only when one is given); undefined when there is no such webhook. */
  async replace(tenantId: string, id: string, input: WebhookInput, secret?: string): Promise<WebhookRecord | undefined> {
    try {
      const row = await this.db
        .updateTable('webhooks')
        .set({ ...columns(input), ...(secret ? { secret } : {}), updated_at: new Date().toISOString() })
        .where('tenant_id', '=', tenantId)
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirst();
      return row && toRecord(row);
    } catch (error) {
      throw await this.explainConflict(error, tenantId, input.callbackUrlKey);
    }
  }

  async delete(tenantId: string, id: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('webhooks')
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  private async explainConflict(error: unknown, tenantId: string, callbackUrlKey: string): Promise<unknown> {
    if (!isUniqueViolation(error)) return error;
    const existing = await this.db
      .selectFrom('webhooks')
      .select('id')
      .where('tenant_id', '=', tenantId)
      .where('callback_url_key', '=', callbackUrlKey)
      .executeTakeFirst();
    return existing ? new DuplicateCallbackUrlError(existing.id) : error;
  }
}
