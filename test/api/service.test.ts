// What the service answers besides the webhook operations: health, its own contract, CORS, request ids, and a
// clean 500 when something unexpected breaks.
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { contractYaml } from '../../server/contract.js';
import { startService, type TestService } from '../support/service.js';

let service: TestService | undefined;
afterEach(async () => {
  await service?.close();
  service = undefined;
});

describe('health', () => {
  it('answers 200 without credentials while the store is reachable', async () => {
    service = await startService();
    const response = await fetch(`${service.baseUrl}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok', checks: { store: 'ok' } });
  });

  it('answers 503 when the store is gone, and other requests get a 500 problem without a stack trace', async () => {
    service = await startService();
    const token = await service.token();
    await service.app.db.destroy();
    const health = await fetch(`${service.baseUrl}/healthz`);
    expect(health.status).toBe(503);
    expect(await health.json()).toEqual({ status: 'unavailable', checks: { store: 'unreachable' } });

    const { response, error } = await service.client(token).POST('/api/web/v1/webhooks', {
      body: { callbackUrl: 'https://x.example.com/h', events: ['a'] },
    });
    // The key is cached, so the request reaches the store and fails there.
    expect(response.status).toBe(500);
    expect(response.headers.get('content-type')).toContain('application/problem+json');
    expect(error!.detail).toBe(`An unexpected error occurred. Request id: ${response.headers.get('x-request-id')}.`);
    expect(JSON.stringify(error)).not.toMatch(/driver has already been destroyed|\.ts:\d+|\.js:\d+/);
  });
});

describe('the contract', () => {
  it('is served as YAML, byte for byte the file the server was built from', async () => {
    service = await startService();
    const response = await fetch(`${service.baseUrl}/openapi.yaml`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('application/yaml');
    expect(await response.text()).toBe(contractYaml);
  });

  it('is served as JSON, equal to the YAML', async () => {
    service = await startService();
    const response = await fetch(`${service.baseUrl}/openapi.json`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual(JSON.parse(JSON.stringify(parse(contractYaml))));
  });
});

describe('CORS', () => {
  it('sends no CORS headers by default', async () => {
    service = await startService();
    const response = await fetch(`${service.baseUrl}/healthz`, { headers: { origin: 'https://app.example.com' } });
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('allows the origins in CORS_ORIGINS, preflight included, and no others', async () => {
    service = await startService(undefined, { CORS_ORIGINS: 'https://app.example.com' });
    const preflight = await fetch(`${service.baseUrl}/api/web/v1/webhooks`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://app.example.com',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type',
      },
    });
    expect(preflight.status).toBeLessThan(300);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    const other = await fetch(`${service.baseUrl}/healthz`, { headers: { origin: 'https://evil.example.com' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });
});

it('closes promptly while a request is in flight, after answering it', async () => {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const receiver = createServer((_request, response) => void held.then(() => response.end('ok')));
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const arrived = once(receiver, 'request');
  try {
    service = await startService();
    const api = service.client(await service.token());
    const port = (receiver.address() as AddressInfo).port;
    const { data } = await api.POST('/api/web/v1/webhooks', { body: { callbackUrl: `http://127.0.0.1:${port}/h`, events: ['*'] } });
    const inFlight = api.POST('/api/web/v1/webhooks/test/{id}', { params: { path: { id: data!.id } } });
    await arrived;
    const closing = service.close();
    service = undefined;
    release();
    expect((await inFlight).response.status).toBe(200);
    // Without `connection: close` on answers given while closing, the keep-alive socket held close for ~72 s.
    const started = Date.now();
    await closing;
    expect(Date.now() - started).toBeLessThan(5_000);
  } finally {
    receiver.close();
  }
});

it('gives every answer a request id', async () => {
  service = await startService();
  const response = await fetch(`${service.baseUrl}/healthz`);
  expect(response.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
});
