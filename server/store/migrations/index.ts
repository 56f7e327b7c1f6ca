// The one set of migrations, for SQLite and PostgreSQL alike. Add a file, then list it here; never edit one
// that has shipped.
import type { Migration } from 'kysely';
import * as webhooksAndApiKeys from './0001-webhooks-and-api-keys.js';
import * as deliveries from './0002-deliveries.js';
import * as eventsAndDeliveryQueue from './0003-events-and-delivery-queue.js';
import * as webhooksChangeCounter from './0004-webhooks-change-counter.js';

export const migrations: Record<string, Migration> = {
  '0001-webhooks-and-api-keys': webhooksAndApiKeys,
  '0002-deliveries': deliveries,
  '0003-events-and-delivery-queue': eventsAndDeliveryQueue,
  '0004-webhooks-change-counter': webhooksChangeCounter,
};
