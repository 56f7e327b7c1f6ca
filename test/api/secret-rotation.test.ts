// Rotating a webhook's signing secret end to end, on every store backend: the new secret is shown once; during
// the grace period every delivery carries two signatures and receivers holding either secret verify it with the
// `standardwebhooks` library; afterwards (or with a grace period of 0) only the new secret verifies.
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebhookParms } from '../../client/index.js';
import { backends } from '../support/backends.js';
import {
  envelopeOf,
  eventually,
  type LoggedRequest,
  signatureHeaders,
  receiverPool,
} from '../support/receiver-log.js';
import { type Client, startService, type TestService } from '../support/service.js';


const permissions = ['WEBHOOKS:VIEW', 'WEBHOOKS:ADD', 'WEBHOOKS:EDIT', 'WEBHOOKS:REMOVE', 'EVENTS:PUBLISH'];
const secretOf = (bytes: number, fill = 9) => `whsec_${Buffer.alloc(bytes, fill).toString('base64')}`;
const day = 86_400_000;

/** Whether a receiver holding `secret` accepts the request, per the Standard Webhooks library. */
function verifies(secret: string, request: LoggedRequest): boolean {
  try {
    new StandardWebhook(secret).verify(request.body, signatureHeaders(request));
    return true;
  } catch {
    return false;
  }
}

const signatureCount = (request: LoggedRequest) => request.headers['webhook-signature']!.split(' ').length;

for (const backend of backends) {
  describe.skipIf(!backend.available)(`secret rotation on ${backend.name}`, () => {
    let service: TestService;
    const receivers = receiverPool();
    let tenantCount = 0;

    beforeAll(async () => {
      service = await startService(backend, { DELIVERY_POLL_INTERVAL: '20ms' });
    });
    afterAll(async () => {
      await receivers.closeAll();
      await service?.close();
    });

    /** A tenant, a receiver and a webhook on it; `deliver()` publishes an event and resolves with its request. */
    async function setup(parms: Partial<WebhookParms> = {}) {
      const tenant = `rotation-${backend.name}-${++tenantCount}`;
      const api = service.client(await service.token(tenant, permissions));
      const r = await receivers.start();
      const { data: hook, response } = await api.POST('/api/web/v1/webhooks', {
        body: { callbackUrl: r.url, events: ['order.*'], ...parms },
      });
      expect(response.status).toBe(200);
      let count = 0;
      const deliver = async (): Promise<LoggedRequest> => {
        const marker = `m${++count}`;
        const published = await api.POST('/api/web/v1/events', { body: { type: 'order.created', data: { marker } } });
        expect(published.response.status).toBe(202);
        const [request] = await r.waitFor(1, { where: (q) => envelopeOf(q).data.marker === marker });
        return request!;
      };
      return { tenant, api, r, hook: hook!, oldSecret: hook!.secret!, deliver };
    }

    const rotate = (api: Client, id: string, body?: { secret?: string; gracePeriodSeconds?: number }) =>
      api.POST('/api/web/v1/webhooks/{id}/secret/rotate', { params: { path: { id } }, ...(body ? { body } : {}) });

    it('answers 200 with a new generated secret, shown this once, the old one valid for a day by default', async () => {
      const { api, hook, oldSecret } = await setup();
      for (const body of [undefined, {}]) {
        const before = Date.now();
        const { data, response } = await rotate(api, hook.id, body);
        expect(response.status).toBe(200);
        expect(Object.keys(data!).sort()).toEqual(['previousSecretExpiresAt', 'secret']);
        expect(data!.secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
        expect(Buffer.from(data!.secret.slice('whsec_'.length), 'base64')).toHaveLength(32);
        expect(data!.secret).not.toBe(oldSecret);
        const expires = Date.parse(data!.previousSecretExpiresAt!);
        expect(expires).toBeGreaterThanOrEqual(before + day - 1000);
        expect(expires).toBeLessThanOrEqual(Date.now() + day + 1000);
      }
      const { data: read } = await api.GET('/api/web/v1/webhooks/{id}', { params: { path: { id: hook.id } } });
      expect(read).not.toHaveProperty('secret');
      const { data: listed } = await api.GET('/api/web/v1/webhooks');
      expect(listed!.every((w) => !('secret' in w))).toBe(true);
    });

    it('signs every delivery during the grace period with both secrets, each verifying alone', async () => {
      const { api, hook, oldSecret, deliver } = await setup();
      const { data } = await rotate(api, hook.id, { gracePeriodSeconds: 3600 });
      const request = await deliver();
      expect(signatureCount(request)).toBe(2);
      expect(request.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=* v1,[A-Za-z0-9+/]+=*$/);
      expect(verifies(data!.secret, request)).toBe(true);
      expect(verifies(oldSecret, request)).toBe(true);
      expect(verifies(secretOf(32, 1), request)).toBe(false);
    });

    it('signs the test notification with both secrets during the grace period too', async () => {
      const { api, r, hook, oldSecret } = await setup();
      const { data } = await rotate(api, hook.id, { gracePeriodSeconds: 3600 });
      const tested = await api.POST('/api/web/v1/webhooks/test/{id}', { params: { path: { id: hook.id } } });
      expect(tested.response.status).toBe(200);
      const [request] = await r.waitFor(1);
      expect(envelopeOf(request!).type).toBe('webhook.test');
      expect(verifies(data!.secret, request!), 'new secret').toBe(true);
      expect(verifies(oldSecret, request!), 'old secret, during its grace period').toBe(true);
    });

    it('signs with the new secret alone once the grace period is over', async () => {
      const { api, hook, oldSecret, deliver } = await setup();
      const { data } = await rotate(api, hook.id, { gracePeriodSeconds: 1 });
      const expires = Date.parse(data!.previousSecretExpiresAt!);
      expect(expires - Date.now()).toBeLessThanOrEqual(1000);
      const during = await deliver();
      // Signed before it arrived, so before the expiry when it arrived before it: then both secrets sign.
      if (during.arrivedAt < expires) expect(signatureCount(during)).toBe(2);
      expect(verifies(oldSecret, during)).toBe(signatureCount(during) === 2);
      expect(verifies(data!.secret, during)).toBe(true);
      await eventually(async () => (Date.now() > expires ? true : undefined), { timeoutMs: 3_000, what: 'grace period over' });
      const after = await deliver();
      expect(signatureCount(after)).toBe(1);
      expect(verifies(data!.secret, after)).toBe(true);
      expect(verifies(oldSecret, after)).toBe(false);
    });

    it('with gracePeriodSeconds 0, signs with the new secret alone at once', async () => {
      const { api, hook, oldSecret, deliver } = await setup();
      const { data, response } = await rotate(api, hook.id, { gracePeriodSeconds: 0 });
      expect(response.status).toBe(200);
      expect(data).not.toHaveProperty('previousSecretExpiresAt');
      const request = await deliver();
      expect(signatureCount(request)).toBe(1);
      expect(verifies(data!.secret, request)).toBe(true);
      expect(verifies(oldSecret, request)).toBe(false);
    });

    it.each([
      ['24 bytes', secretOf(24, 3)],
      ['64 bytes', secretOf(64, 4)],
    ])('keeps a secret the caller gives (%s), and signs with it', async (_name, secret) => {
      const { api, hook, oldSecret, deliver } = await setup();
      const { data, response } = await rotate(api, hook.id, { secret, gracePeriodSeconds: 0 });
      expect(response.status).toBe(200);
      expect(data!.secret).toBe(secret);
      const request = await deliver();
      expect(verifies(secret, request)).toBe(true);
      expect(verifies(oldSecret, request)).toBe(false);
    });

    it('rotating again during a grace period leaves only the newest two secrets signing', async () => {
      const { api, hook, oldSecret, deliver } = await setup();
      const second = (await rotate(api, hook.id, { gracePeriodSeconds: 3600 })).data!.secret;
      const third = (await rotate(api, hook.id, { gracePeriodSeconds: 3600 })).data!.secret;
      const request = await deliver();
      expect(signatureCount(request)).toBe(2);
      expect(verifies(third, request)).toBe(true);
      expect(verifies(second, request)).toBe(true);
      expect(verifies(oldSecret, request)).toBe(false);
    });

    it('accepts the longest grace period, 604800 seconds', async () => {
      const { api, hook } = await setup();
      const before = Date.now();
      const { data, response } = await rotate(api, hook.id, { gracePeriodSeconds: 604_800 });
      expect(response.status).toBe(200);
      expect(Date.parse(data!.previousSecretExpiresAt!)).toBeGreaterThanOrEqual(before + 7 * day - 1000);
    });

    it.each([
      ['gracePeriodSeconds 604801', { gracePeriodSeconds: 604_801 }, '/gracePeriodSeconds'],
      ['a negative gracePeriodSeconds', { gracePeriodSeconds: -1 }, '/gracePeriodSeconds'],
      ['a fractional gracePeriodSeconds', { gracePeriodSeconds: 1.5 }, '/gracePeriodSeconds'],
      ['gracePeriodSeconds as a string', { gracePeriodSeconds: '60' }, '/gracePeriodSeconds'],
      ['a secret of 23 bytes', { secret: secretOf(23) }, '/secret'],
      ['a secret of 65 bytes', { secret: secretOf(65) }, '/secret'],
      ['a secret without whsec_', { secret: Buffer.alloc(32, 9).toString('base64') }, '/secret'],
      ['an unknown property', { grace: 10 }, '/grace'],
    ])('answers 400 to %s, and keeps the secret', async (_name, body, pointer) => {
      const { api, hook, oldSecret, deliver } = await setup();
      const { response, error } = await rotate(api, hook.id, body as never);
      expect(response.status).toBe(400);
      expect(error!.errors).toContainEqual(expect.objectContaining({ pointer, in: 'body' }));
      const request = await deliver();
      expect(signatureCount(request)).toBe(1);
      expect(verifies(oldSecret, request)).toBe(true);
    });

    it("answers 404 for another tenant's webhook, 403 without WEBHOOKS:EDIT, and keeps the secret", async () => {
      const { tenant, hook, oldSecret, deliver } = await setup();
      const stranger = service.client(await service.token(`${tenant}-other`, permissions));
      const foreign = await rotate(stranger, hook.id, { gracePeriodSeconds: 0 });
      expect(foreign.response.status).toBe(404);
      expect(foreign.error).toMatchObject({ status: 404, detail: `No webhook with id ${hook.id}.` });
      const viewer = service.client(await service.token(tenant, ['WEBHOOKS:VIEW', 'EVENTS:PUBLISH']));
      expect((await rotate(viewer, hook.id, { gracePeriodSeconds: 0 })).response.status).toBe(403);
      const request = await deliver();
      expect(signatureCount(request)).toBe(1);
      expect(verifies(oldSecret, request)).toBe(true);
    });
  });
}
