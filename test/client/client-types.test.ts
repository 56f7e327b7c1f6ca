// Pins at the type level that the client refuses, at compile time, calls the contract does not allow. The checks run
// in `npm run typecheck` (tsc): each `@ts-expect-error` fails the build if its line ever starts compiling. The calls
// sit in a function that is never invoked, so nothing is sent at test time.
import { expect, expectTypeOf, it } from 'vitest';
import { createWebhooksClient, type Webhook, type WebhookParms, type WebhooksClient } from '../../client/index.js';

const id = '3f1c2a4e-8b7d-4c39-9a51-2d6f0e8b7a10';

async function callsTheCompilerChecks(api: WebhooksClient): Promise<void> {
  // enabled has a default, so callers may leave it out.
  const { data } = await api.POST('/api/web/v1/webhooks', {
    body: { callbackUrl: 'https://shop.example.com/hooks', events: ['order.created'] },
  });
  expectTypeOf(data).toEqualTypeOf<Webhook | undefined>();

  const { data: list } = await api.GET('/api/web/v1/webhooks', { params: { query: { limit: 10 } } });
  expectTypeOf(list).toEqualTypeOf<Webhook[] | undefined>();

  await api.PUT('/api/web/v1/webhooks/{id}', {
    params: { path: { id } },
    body: { callbackUrl: 'https://shop.example.com/hooks', events: ['order.*'], enabled: false },
  });
  await api.DELETE('/api/web/v1/webhooks/{id}', { params: { path: { id } } });
  await api.POST('/api/web/v1/webhooks/test/{id}', { params: { path: { id } } });

  // @ts-expect-error callbackUrl is required
  await api.POST('/api/web/v1/webhooks', { body: { events: ['order.created'] } });

  await api.POST('/api/web/v1/webhooks', {
    // @ts-expect-error events is a list of event types, not one string
    body: { callbackUrl: 'https://shop.example.com/hooks', events: 'order.created' },
  });

  // openapi-fetch infers the init object generically, which skips TypeScript's excess-property check once every
  // required field is present (openapi-ts/openapi-typescript#1769, open): an unknown property in an inline body
  // compiles. Checking the literal against WebhookParms, as here, restores it.
  await api.POST('/api/web/v1/webhooks', {
    body: {
      callbackUrl: 'https://shop.example.com/hooks',
      events: ['order.created'],
      // @ts-expect-error the contract's WebhookParms allows no other properties (additionalProperties: false)
      retries: 3,
    } satisfies WebhookParms,
  });

  // @ts-expect-error the contract has no such path
  await api.GET('/api/web/v1/hooks', {});

  // @ts-expect-error webhooks are deleted one by one; the collection has no DELETE
  await api.DELETE('/api/web/v1/webhooks', {});

  // @ts-expect-error a webhook is replaced with PUT; the contract has no PATCH
  await api.PATCH('/api/web/v1/webhooks/{id}', { params: { path: { id } } });

  // @ts-expect-error the path parameter is required
  await api.GET('/api/web/v1/webhooks/{id}');
}

it('keeps its compile-time checks out of the runtime', () => {
  expect(typeof callsTheCompilerChecks).toBe('function');
  expectTypeOf(createWebhooksClient).returns.toEqualTypeOf<WebhooksClient>();
});
