// Table shapes as the store sees them. Timestamps are ISO-8601 UTC text on both SQLite and PostgreSQL, so they
// sort and compare the same way everywhere; JSON columns are text for the same reason.
import type { Generated } from 'kysely';

export interface WebhooksTable {
  /** Creation order; the list cursor is built on it. */
  seq: Generated<number>;
  id: string;
  tenant_id: string;
  callback_url: string;
  /** callback_url normalised (scheme and host lower-cased, default port dropped): the uniqueness key. */
  callback_url_key: string;
  events: string;
  description: string | null;
  enabled: number;
  headers: string;
  secret: string;
  /** During a rotation's grace period the old secret signs too, until previous_secret_expires_at. */
  previous_secret: string | null;
  previous_secret_expires_at: string | null;
  /** Set when the service disabled the webhook by itself (410 Gone, or failing for too long). */
  disabled_reason: string | null;
  disabled_at: string | null;
  /** When deliveries started failing without a success since; null while they succeed. */
  failing_since: string | null;
  created_at: string;
  updated_at: string;
}

export interface ApiKeysTable {
  id: string;
  tenant_id: string;
  /** SHA-256 of the whole token, hex; the token itself is never stored. */
  token_hash: string;
  /** The first characters of the token, so people can tell keys apart in `keys list`. */
  token_prefix: string;
  permissions: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
}

export type DeliveryStatus = 'pending' | 'succeeded' | 'failed';

export interface DeliveriesTable {
  id: string;
  tenant_id: string;
  webhook_id: string;
  /** The published event; null for a test delivery. */
  event_id: string | null;
  event_type: string;
  /** The `webhook-id` header: the same on every attempt, so receivers can drop duplicates. */
  message_id: string;
  /** The exact JSON body that is signed and sent. */
  payload: string;
  status: DeliveryStatus;
  attempt_count: number;
  next_attempt_at: string | null;
  /** A worker holds the delivery until then; another may take it over after. */
  lease_until: string | null;
  /** Names the holder of the lease: only it may record the outcome (a fencing token). */
  lease_id: string | null;
  created_at: string;
  updated_at: string;
}

export interface EventsTable {
  id: string;
  tenant_id: string;
  type: string;
  data: string;
  idempotency_key: string | null;
  delivery_count: number;
  created_at: string;
}

export interface DeliveryAttemptsTable {
  seq: Generated<number>;
  delivery_id: string;
  attempted_at: string;
  succeeded: number;
  reason: string | null;
  response_status: number | null;
  duration_ms: number;
  /** The first KiB of the receiver's answer. */
  response_body: string | null;
  detail: string;
}

/** Counters that changes to a table move (migration 0004): `webhooks` on the embedded store. */
export interface ChangeCountersTable {
  name: string;
  value: number | string;
}

export interface Database {
  webhooks: WebhooksTable;
  change_counters: ChangeCountersTable;
  api_keys: ApiKeysTable;
  deliveries: DeliveriesTable;
  delivery_attempts: DeliveryAttemptsTable;
  events: EventsTable;
}
