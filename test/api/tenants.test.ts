// A caller never sees, changes, tests or deletes another tenant's webhook: to them it does not exist.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends } from '../support/backends.js';
import { type Client, startService, type TestService } from '../support/service.js';

for (const backend of backends) {
  describe.skipIf(!backend.available)(`tenant isolation on ${backend.name}`, () => {
    let service: TestService;
    let a: Client;
    let b: Client;
    let idOfA: string;
    const missing = '00000000-0000-4000-8000-000000000000';
    const parms = { callbackUrl: 'https://tenant-a.example.com/hook', events: ['*'] };

    beforeAll(async () => {
      service = await startService(backend);
      a = service.client(await service.token('tenant-a'));
      b = service.client(await service.token('tenant-b'));
      idOfA = (await a.POST('/api/web/v1/webhooks', { body: parms })).data!.id;
    });
    afterAll(() => service?.close());

    const calls: [string, (api: typeof a, id: string) => Promise<{ response: Response; error?: unknown }>][] = [
      ['read', (api, id) => api.GET('/api/web/v1/webhooks/{id}', { params: { path: { id } } })],
      ['update', (api, id) => api.PUT('/api/web/v1/webhooks/{id}', { params: { path: { id } }, body: { ...parms, events: ['x'] } })],
      ['test', (api, id) => api.POST('/api/web/v1/webhooks/test/{id}', { params: { path: { id } } })],
      ['delete', (api, id) => api.DELETE('/api/web/v1/webhooks/{id}', { params: { path: { id } } })],
    ];

    it.each(calls)('%s of another tenant\'s webhook answers exactly like a missing id', async (_name, call) => {
      const theirs = await call(b, idOfA);
      const none = await call(b, missing);
      expect(theirs.response.status).toBe(404);
      expect(none.response.status).toBe(404);
      const strip = (e: unknown) => ({ ...(e as object), detail: undefined, instance: undefined });
      expect(strip(theirs.error)).toEqual(strip(none.error));
    });

    it('lists only the caller\'s own webhooks', async () => {
      expect((await b.GET('/api/web/v1/webhooks')).data).toEqual([]);
      expect((await a.GET('/api/web/v1/webhooks')).data!.map((w) => w.id)).toEqual([idOfA]);
    });

    it('lets another tenant register the same callback URL', async () => {
      const { response } = await b.POST('/api/web/v1/webhooks', { body: parms });
      expect(response.status).toBe(200);
    });

    it('leaves the webhook untouched after the other tenant tried everything', async () => {
      const { data } = await a.GET('/api/web/v1/webhooks/{id}', { params: { path: { id: idOfA } } });
      expect(data).toMatchObject({ id: idOfA, events: ['*'], callbackUrl: parms.callbackUrl });
    });
  });
}
