// The six operations through the project's own client against the real server, on every store backend.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebhookParms } from '../../client/index.js';
import { backends } from '../support/backends.js';
import { startService, type TestService } from '../support/service.js';

const parms = (n: number | string, extra: Partial<WebhookParms> = {}): WebhookParms => ({
  callbackUrl: `https://hooks${n}.example.com/receive`,
  events: ['order.created'],
  ...extra,
});

for (const backend of backends) {
  describe.skipIf(!backend.available)(`webhooks API on ${backend.name}`, () => {
    let service: TestService;
    let api: TestService['client'] extends (t: string) => infer C ? C : never;

    beforeAll(async () => {
      service = await startService(backend);
      api = service.client(await service.token());
    });
    afterAll(() => service?.close());

    it('creates a webhook and answers it with a generated secret', async () => {
      const { data, response } = await api.POST('/api/web/v1/webhooks', {
        body: parms(1, { description: 'orders', headers: { 'X-Shop': 'eu' } }),
      });
      expect(response.status).toBe(200);
      expect(data).toMatchObject({
        callbackUrl: 'https://hooks1.example.com/receive',
        events: ['order.created'],
        description: 'orders',
        enabled: true,
        headers: { 'X-Shop': 'eu' },
      });
      expect(data!.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(data!.secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
      expect(Buffer.from(data!.secret!.slice(6), 'base64')).toHaveLength(32);
      expect(data!.createdAt).toBe(data!.updatedAt);
    });

    it('keeps a secret the caller chose and never shows it again', async () => {
      const secret = `whsec_${Buffer.alloc(24, 7).toString('base64')}`;
      const { data: created } = await api.POST('/api/web/v1/webhooks', { body: parms(2, { secret }) });
      expect(created!.secret).toBe(secret);
      const { data: read } = await api.GET('/api/web/v1/webhooks/{id}', { params: { path: { id: created!.id } } });
      expect(read).not.toHaveProperty('secret');
      const { data: list } = await api.GET('/api/web/v1/webhooks');
      expect(list!.every((w) => !('secret' in w))).toBe(true);
      const { data: updated } = await api.PUT('/api/web/v1/webhooks/{id}', {
        params: { path: { id: created!.id } },
        body: parms(2),
      });
      expect(updated).not.toHaveProperty('secret');
    });

    it('reads a webhook by id', async () => {
      const { data: created } = await api.POST('/api/web/v1/webhooks', { body: parms(3) });
      const { data, response } = await api.GET('/api/web/v1/webhooks/{id}', {
        params: { path: { id: created!.id } },
      });
      expect(response.status).toBe(200);
      const { secret: _secret, ...shown } = created!;
      expect(data).toEqual(shown);
    });

    it('updates by replacing the parameters, keeping id and createdAt and moving updatedAt', async () => {
      const { data: created } = await api.POST('/api/web/v1/webhooks', {
        body: parms(4, { description: 'before', headers: { 'X-A': '1' } }),
      });
      await new Promise((r) => setTimeout(r, 5)); // timestamps have millisecond resolution
      const { data, response } = await api.PUT('/api/web/v1/webhooks/{id}', {
        params: { path: { id: created!.id } },
        body: { callbackUrl: 'https://hooks4.example.com/v2', events: ['order.*'], enabled: false },
      });
      expect(response.status).toBe(200);
      expect(data).toMatchObject({
        id: created!.id,
        createdAt: created!.createdAt,
        callbackUrl: 'https://hooks4.example.com/v2',
        events: ['order.*'],
        enabled: false,
        headers: {},
      });
      expect(data).not.toHaveProperty('description');
      expect(Date.parse(data!.updatedAt)).toBeGreaterThan(Date.parse(created!.updatedAt));
    });

    it('deletes a webhook, after which every operation answers 404 for its id', async () => {
      const { data: created } = await api.POST('/api/web/v1/webhooks', { body: parms(5) });
      const path = { id: created!.id };
      const del = await api.DELETE('/api/web/v1/webhooks/{id}', { params: { path } });
      expect(del.response.status).toBe(200);
      expect(await del.response.text()).toBe('');
      const answers = await Promise.all([
        api.GET('/api/web/v1/webhooks/{id}', { params: { path } }),
        api.PUT('/api/web/v1/webhooks/{id}', { params: { path }, body: parms(5) }),
        api.DELETE('/api/web/v1/webhooks/{id}', { params: { path } }),
        api.POST('/api/web/v1/webhooks/test/{id}', { params: { path } }),
      ]);
      for (const { response, error } of answers) {
        expect(response.status).toBe(404);
        expect(response.headers.get('content-type')).toContain('application/problem+json');
        expect(error).toMatchObject({ status: 404, title: 'Not Found', detail: `No webhook with id ${created!.id}.` });
      }
    });

    it.each([
      ['the same URL', 'https://dup.example.com/hook'],
      ['upper-case scheme and host', 'HTTPS://DUP.EXAMPLE.COM/hook'],
      ['the default port spelled out', 'https://dup.example.com:443/hook'],
    ])('refuses a second webhook with %s (409 naming the first)', async (_name, url) => {
      const first = await api.POST('/api/web/v1/webhooks', { body: parms('dup', { callbackUrl: 'https://dup.example.com/hook' }) });
      const firstId = first.data?.id ?? (first.error as { existingWebhookId?: string }).existingWebhookId;
      const { response, error } = await api.POST('/api/web/v1/webhooks', { body: parms('dup', { callbackUrl: url }) });
      expect(response.status).toBe(409);
      expect(error).toMatchObject({ status: 409, existingWebhookId: firstId });
      expect(error!.detail).toContain(firstId!);
    });

    it('refuses to update a webhook to a URL another webhook of the tenant has', async () => {
      const { data: a } = await api.POST('/api/web/v1/webhooks', { body: parms('upd-a') });
      const { data: b } = await api.POST('/api/web/v1/webhooks', { body: parms('upd-b') });
      const { response, error } = await api.PUT('/api/web/v1/webhooks/{id}', {
        params: { path: { id: b!.id } },
        body: parms('upd-a'),
      });
      expect(response.status).toBe(409);
      expect(error).toMatchObject({ existingWebhookId: a!.id });
      const { data: unchanged } = await api.GET('/api/web/v1/webhooks/{id}', { params: { path: { id: b!.id } } });
      expect(unchanged!.callbackUrl).toBe(b!.callbackUrl);
    });

    it('lets a webhook keep its own URL on update', async () => {
      const { data: a } = await api.POST('/api/web/v1/webhooks', { body: parms('self') });
      const { response } = await api.PUT('/api/web/v1/webhooks/{id}', {
        params: { path: { id: a!.id } },
        body: parms('self', { description: 'same URL' }),
      });
      expect(response.status).toBe(200);
    });

    it('lists in creation order, page by page through the Link header', async () => {
      const own = service.client(await service.token('tenant-list'));
      const created: string[] = [];
      for (let i = 0; i < 7; i++) {
        const { data } = await own.POST('/api/web/v1/webhooks', { body: parms(`list${i}`) });
        created.push(data!.id);
      }
      const seen: string[] = [];
      let query: { limit: number; cursor?: string } = { limit: 3 };
      for (let page = 0; page < 5; page++) {
        const { data, response } = await own.GET('/api/web/v1/webhooks', { params: { query } });
        expect(response.status).toBe(200);
        seen.push(...data!.map((w) => w.id));
        const link = response.headers.get('link');
        if (!link) break;
        const match = /^<([^>]+)>; rel="next"$/.exec(link);
        expect(match).not.toBeNull();
        const next = new URL(match![1]!, service.baseUrl);
        expect(next.pathname).toBe('/api/web/v1/webhooks');
        query = { limit: Number(next.searchParams.get('limit')), cursor: next.searchParams.get('cursor')! };
      }
      expect(seen).toEqual(created);
    });

    it('lists 100 by default and no Link header when nothing more remains', async () => {
      const own = service.client(await service.token('tenant-default-limit'));
      await own.POST('/api/web/v1/webhooks', { body: parms('only') });
      const { data, response } = await own.GET('/api/web/v1/webhooks');
      expect(data).toHaveLength(1);
      expect(response.headers.get('link')).toBeNull();
    });
  });
}
