// Who may call what: bearer API keys and JWTs, the permission each operation's security requirement names,
// and the 401/403 answers with their WWW-Authenticate headers.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contract } from '../../server/contract.js';
import { ApiKeyStore, hashToken } from '../../server/store/api-keys.js';
import { type Client as Api, startService, type TestService } from '../support/service.js';

const someId = '7d444840-9dc0-11d1-b245-5ffdce74fad2';
const body = { callbackUrl: 'https://perm.example.com/hook', events: ['order.created'] };

// One call per operation; the permission column is checked against the contract below.
const operations: [operationId: string, permission: string, call: (api: Api, id: string) => Promise<{ response: Response; error?: unknown }>][] = [
  ['getWebhooksUsingGET', 'WEBHOOKS:VIEW', (api) => api.GET('/api/web/v1/webhooks')],
  ['createWebhookUsingPOST', 'WEBHOOKS:ADD', (api) => api.POST('/api/web/v1/webhooks', { body })],
  ['readWebhookUsingGET', 'WEBHOOKS:VIEW', (api, id) => api.GET('/api/web/v1/webhooks/{id}', { params: { path: { id } } })],
  ['updateWebhookUsingPUT', 'WEBHOOKS:EDIT', (api, id) => api.PUT('/api/web/v1/webhooks/{id}', { params: { path: { id } }, body })],
  ['deleteWebhookUsingDELETE', 'WEBHOOKS:REMOVE', (api, id) => api.DELETE('/api/web/v1/webhooks/{id}', { params: { path: { id } } })],
  ['testWebhookUsingPOST', 'WEBHOOKS:EDIT', (api, id) => api.POST('/api/web/v1/webhooks/test/{id}', { params: { path: { id } } })],
];

const allPermissions = ['WEBHOOKS:VIEW', 'WEBHOOKS:ADD', 'WEBHOOKS:EDIT', 'WEBHOOKS:REMOVE'];

describe('API keys and permissions', () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startService(undefined, { API_KEY_CACHE_TTL_MS: '200' });
  });
  afterAll(() => service?.close());

  it('uses the permissions the contract names for each operation', () => {
    const fromContract = Object.fromEntries(
      Object.values(contract.paths).flatMap((item) =>
        Object.values(item).map((op) => [op.operationId, op.security?.[0]?.bearerAuth?.[0]]),
      ),
    );
    for (const [operationId, permission] of operations) expect(fromContract[operationId]).toBe(permission);
  });

  it.each(operations)('%s without a token answers 401 with a Bearer challenge', async (_op, _perm, call) => {
    const api = service.client('');
    const { response, error } = await call(api, someId);
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="webhooks"');
    expect(error).toMatchObject({ status: 401, detail: 'A bearer token is required.' });
  });

  it.each([
    ['an unknown API key', 'whk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'],
    ['a token of no known kind', 'not-a-token'],
    ['a JWT when no identity provider is configured', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln'],
  ])('refuses %s with 401 invalid_token', async (_name, token) => {
    const { response } = await service.client(token).GET('/api/web/v1/webhooks');
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('looks keys up by the SHA-256 of the token, so keys stored by earlier versions still verify', () => {
    // The FIPS 180-2 test vector: a change of hash or encoding would lock every existing key out.
    expect(hashToken('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('refuses a non-Bearer Authorization header', async () => {
    const response = await fetch(`${service.baseUrl}/api/web/v1/webhooks`, {
      headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` },
    });
    expect(response.status).toBe(401);
  });

  // Who may call is decided before whether the call is valid, as the Prism mock does: a caller without a valid
  // token learns nothing of the schema from a 400, and the service does not parse its body.
  const invalidRequests: [name: string, method: string, path: string, init?: { type: string; body: string }][] = [
    ['a body the schema refuses', 'POST', '/api/web/v1/webhooks', { type: 'application/json', body: '{"bad":1}' }],
    ['a body that is not JSON', 'POST', '/api/web/v1/webhooks', { type: 'application/json', body: '{broken' }],
    ['a media type the operation does not take', 'POST', '/api/web/v1/webhooks', { type: 'text/plain', body: 'hi' }],
    ['a body over the size limit', 'POST', '/api/web/v1/webhooks', { type: 'application/json', body: 'x'.repeat(2 << 20) }],
    ['an id that is not a UUID', 'GET', '/api/web/v1/webhooks/not-a-uuid'],
    ['a query the schema refuses', 'GET', '/api/web/v1/webhooks?limit=0'],
    ['a body the schema refuses, on update', 'PUT', `/api/web/v1/webhooks/${someId}`, { type: 'application/json', body: '[]' }],
  ];
  const send = (method: string, path: string, token: string | undefined, init?: { type: string; body: string }) =>
    fetch(`${service.baseUrl}${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(init ? { 'content-type': init.type } : {}),
      },
      body: init?.body,
    });

  it.each(invalidRequests)('answers 401, not 400, to %s sent without a valid token', async (_name, method, path, init) => {
    for (const token of [undefined, 'whk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA']) {
      const response = await send(method, path, token, init);
      expect(response.status).toBe(401);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(JSON.stringify(await response.json())).not.toMatch(/schema|body|pattern|limit|media/i);
    }
  });

  it.each(invalidRequests)('answers 403 to %s from a key without the permission, and 4xx with it', async (_name, method, path, init) => {
    const permission = method === 'GET' ? 'WEBHOOKS:VIEW' : method === 'POST' ? 'WEBHOOKS:ADD' : 'WEBHOOKS:EDIT';
    const without = await service.token('tenant-a', allPermissions.filter((p) => p !== permission));
    expect((await send(method, path, without, init)).status).toBe(403);
    const withIt = await send(method, path, await service.token('tenant-a', [permission]), init);
    expect([400, 413, 415]).toContain(withIt.status);
  });

  describe.each(operations)('%s (needs %s)', (_operationId, permission, call) => {
    it('answers 403 to a key holding every permission but that one', async () => {
      const token = await service.token('tenant-a', allPermissions.filter((p) => p !== permission));
      const { response, error } = await call(service.client(token), someId);
      expect(response.status).toBe(403);
      expect(response.headers.get('www-authenticate')).toContain(`scope="${permission}"`);
      expect(error).toMatchObject({ status: 403, detail: `This operation needs the ${permission} permission.` });
    });

    it('lets a key holding only that permission through', async () => {
      const token = await service.token('tenant-a', [permission]);
      const { response } = await call(service.client(token), someId);
      expect([401, 403]).not.toContain(response.status);
    });
  });

  it('stops accepting a revoked key within the cache lifetime', async () => {
    const keys = new ApiKeyStore(service.app.db);
    const key = await keys.create('tenant-a', allPermissions);
    const api = service.client(key.token);
    expect((await api.GET('/api/web/v1/webhooks')).response.status).toBe(200);
    await keys.revoke(key.id);
    const deadline = Date.now() + 5_000;
    let status = 200;
    while (status === 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      status = (await api.GET('/api/web/v1/webhooks')).response.status;
    }
    expect(status).toBe(401);
  });

  it('refuses an expired key', async () => {
    const keys = new ApiKeyStore(service.app.db);
    const key = await keys.create('tenant-a', allPermissions, new Date(Date.now() - 1000));
    expect((await service.client(key.token).GET('/api/web/v1/webhooks')).response.status).toBe(401);
  });
});

describe('JWT bearer tokens', () => {
  const issuer = 'https://id.example.com/';
  const audience = 'webhooks-api';
  let keyPair: Awaited<ReturnType<typeof generateKeyPair>>;
  let services: TestService[] = [];

  const sign = (claims: Record<string, unknown>, options: { aud?: string; exp?: string; key?: CryptoKey } = {}) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setIssuer(issuer)
      .setAudience(options.aud ?? audience)
      .setSubject('user-1')
      .setIssuedAt()
      .setExpirationTime(options.exp ?? '5m')
      .sign(options.key ?? keyPair.privateKey);

  beforeAll(async () => {
    keyPair = await generateKeyPair('RS256', { extractable: true });
    const dir = mkdtempSync(join(tmpdir(), 'webhooks-jwt-'));
    writeFileSync(join(dir, 'key.pem'), await exportSPKI(keyPair.publicKey));
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(keyPair.publicKey)), kid: 'k1', alg: 'RS256' }] }));
    const common = { JWT_ISSUER: issuer, JWT_AUDIENCE: audience, JWT_TENANT_CLAIM: 'org' };
    services = [
      await startService(undefined, { ...common, JWT_PUBLIC_KEY_FILE: join(dir, 'key.pem') }),
      await startService(undefined, { ...common, JWT_JWKS_FILE: join(dir, 'jwks.json') }),
    ];
  });
  afterAll(async () => {
    for (const s of services) await s.close();
  });

  for (const [index, source] of ['a PEM public key', 'a JWKS file'].entries()) {
    describe(`verified with ${source}`, () => {
      const svc = () => services[index]!;

      it('accepts permissions from a `permissions` array claim, tenant from the configured claim', async () => {
        const token = await sign({ org: 'jwt-tenant', permissions: ['WEBHOOKS:ADD', 'WEBHOOKS:VIEW'] });
        const api = svc().client(token);
        const { response } = await api.POST('/api/web/v1/webhooks', { body: { ...body, callbackUrl: `https://jwt${index}.example.com/h` } });
        expect(response.status).toBe(200);
        const { data } = await api.GET('/api/web/v1/webhooks');
        expect(data!.map((w) => w.callbackUrl)).toEqual([`https://jwt${index}.example.com/h`]);
      });

      it('accepts permissions from a space-separated `scope` claim', async () => {
        const token = await sign({ org: 'jwt-tenant', scope: 'openid WEBHOOKS:VIEW' });
        expect((await svc().client(token).GET('/api/web/v1/webhooks')).response.status).toBe(200);
      });

      it('answers 403 when the token lacks the permission', async () => {
        const token = await sign({ org: 'jwt-tenant', scope: 'WEBHOOKS:VIEW' });
        const { response } = await svc().client(token).POST('/api/web/v1/webhooks', { body });
        expect(response.status).toBe(403);
      });

      it.each([
        ['another audience', { org: 't', scope: 'WEBHOOKS:VIEW' }, { aud: 'someone-else' }],
        ['an expired token', { org: 't', scope: 'WEBHOOKS:VIEW' }, { exp: '-1m' }],
        ['no tenant claim', { scope: 'WEBHOOKS:VIEW' }, {}],
      ])('refuses %s with 401', async (_name, claims, options) => {
        const token = await sign(claims, options);
        expect((await svc().client(token).GET('/api/web/v1/webhooks')).response.status).toBe(401);
      });

      it('refuses a token without an expiry, which would otherwise be valid forever', async () => {
        const token = await new SignJWT({ org: 't', scope: 'WEBHOOKS:VIEW' })
          .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
          .setIssuer(issuer)
          .setAudience(audience)
          .sign(keyPair.privateKey);
        expect((await svc().client(token).GET('/api/web/v1/webhooks')).response.status).toBe(401);
      });

      it('refuses a token signed by another key', async () => {
        const other = await generateKeyPair('RS256');
        const token = await sign({ org: 't', scope: 'WEBHOOKS:VIEW' }, { key: other.privateKey });
        expect((await svc().client(token).GET('/api/web/v1/webhooks')).response.status).toBe(401);
      });
    });
  }
});
