// The typed client for the Webhooks API, for other teams. Every path, method, parameter, body and response type
// comes from the contract (generated/schema.d.ts), so a call the contract does not allow fails to compile.
// Browser-safe: no Node imports; it uses whatever fetch the platform has, or the one passed in.
import createClient, { type Client } from 'openapi-fetch';
import type { components, operations, paths } from '../generated/schema.js';

export type { components, operations, paths };

type Schemas = components['schemas'];
export type Webhook = Schemas['Webhook'];
export type WebhookParms = Schemas['WebhookParms'];
export type Problem = Schemas['Problem'];
export type ValidationError = Schemas['ValidationError'];
export type Health = Schemas['Health'];
/** The body a callback URL receives for the `webhook.test` notification. */
export type WebhookTestEvent = Schemas['WebhookTestEvent'];

export type WebhooksClient = Client<paths>;

export interface WebhooksClientOptions {
  /** Where the API is, without the `/api/web/v1` prefix, e.g. `https://webhooks.example.com`. */
  baseUrl: string;
  /** An API key (`whk_…`) or a JWT; sent as `Authorization: Bearer <token>` on every request. */
  token: string;
  /** A fetch to use instead of the global one (tests, proxies, instrumented fetches). */
  fetch?: (input: Request) => Promise<Response>;
}

export function createWebhooksClient({ baseUrl, token, fetch }: WebhooksClientOptions): WebhooksClient {
  const client = createClient<paths>({ baseUrl, fetch });
  // Set on the final Request rather than as default headers, so a call's own `headers` cannot drop the credential.
  client.use({
    onRequest({ request }) {
      request.headers.set('Authorization', `Bearer ${token}`);
      return request;
    },
  });
  return client;
}
