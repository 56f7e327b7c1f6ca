// What the service answers besides the webhook operations: health, its own contract, CORS, request ids, and a
// clean 500 when something unexpected breaks.
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

it('gives every answer a request id', async () => {
  service = await startService();
  const response = await fetch(`${service.baseUrl}/healthz`);
  expect(response.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
});
