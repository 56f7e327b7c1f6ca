// The contract as other teams first meet it: a real Prism mock of openapi/webhooks.yaml, called through our typed
// client. Every answer is checked against the schema the contract declares for its operation and status, so an
// example in the YAML that breaks its own schema, or a refusal the contract does not declare, fails here.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createWebhooksClient, type WebhookParms, type WebhooksClient } from '../../client/index.js';
import { type PrismProcess, startPrism } from '../support/prism.js';

// ajv-formats is CommonJS; under NodeNext its default import is the module object.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

const root = fileURLToPath(new URL('../../', import.meta.url));

const id = '3f1c2a4e-8b7d-4c39-9a51-2d6f0e8b7a10';
const parms: WebhookParms = { callbackUrl: 'https://shop.example.com/hooks/orders', events: ['order.created'] };

type Json = Record<string, unknown>;
const contract = parse(readFileSync(`${root}openapi/webhooks.yaml`, 'utf8')) as Json;

function resolve(node: Json): Json {
  const ref = node.$ref;
  if (typeof ref !== 'string') return node;
  return resolve(ref.slice(2).split('/').reduce<unknown>((at, key) => (at as Json)[key], contract) as Json);
}

const schemasId = 'urn:webhooks-api:schemas';
// The contract's schemas under one id, its `#/components/schemas/X` refs made absolute so that schemas taken out of
// operations resolve them too.
const absoluteRefs = (node: unknown): Json =>
  JSON.parse(JSON.stringify(node).replaceAll('"#/components/schemas/', `"${schemasId}#/$defs/`)) as Json;
const ajv = new Ajv2020({ allErrors: true, strict: true });
addFormats(ajv);
// OpenAPI's annotation keyword; it never affects validity.
ajv.addVocabulary(['example']);
ajv.addSchema({ $id: schemasId, $defs: absoluteRefs((contract.components as Json).schemas) });

function declaredResponse(operationId: string, status: number): Json {
  for (const item of Object.values(contract.paths as Record<string, Record<string, Json>>)) {
    for (const operation of Object.values(item)) {
      if (operation.operationId !== operationId) continue;
      const response = (operation.responses as Record<string, Json>)[String(status)];
      if (!response) throw new Error(`${operationId} declares no ${status} response`);
      return resolve(response);
    }
  }
  throw new Error(`no operation ${operationId}`);
}

/** Fails unless status, media type and body are what the contract declares for this operation. */
function expectDeclared(operationId: string, response: Response, body: unknown): void {
  const content = declaredResponse(operationId, response.status).content as Record<string, Json> | undefined;
  if (!content) {
    expect(body, `${operationId} ${response.status} declares no body`).toBeUndefined();
    return;
  }
  const mediaType = response.headers.get('content-type')?.split(';')[0] ?? '';
  expect(Object.keys(content)).toContain(mediaType);
  const validate = ajv.compile(absoluteRefs(content[mediaType]!.schema));
  expect(validate(body), ajv.errorsText(validate.errors)).toBe(true);
}

let prism: PrismProcess | undefined;
let baseUrl: string;
let api: WebhooksClient;

beforeAll(async () => {
  prism = await startPrism(['mock', 'openapi/webhooks.yaml']);
  baseUrl = prism.url;
  api = createWebhooksClient({ baseUrl, token: 'whk_mock' });
});

afterAll(() => prism?.stop());

describe('the Prism mock, through the typed client', () => {
  const operations: [string, (api: WebhooksClient) => Promise<{ data?: unknown; response: Response }>][] = [
    ['createWebhookUsingPOST', (api) => api.POST('/api/web/v1/webhooks', { body: parms })],
    ['getWebhooksUsingGET', (api) => api.GET('/api/web/v1/webhooks', {})],
    ['readWebhookUsingGET', (api) => api.GET('/api/web/v1/webhooks/{id}', { params: { path: { id } } })],
    ['updateWebhookUsingPUT', (api) => api.PUT('/api/web/v1/webhooks/{id}', { params: { path: { id } }, body: parms })],
    ['deleteWebhookUsingDELETE', (api) => api.DELETE('/api/web/v1/webhooks/{id}', { params: { path: { id } } })],
    ['testWebhookUsingPOST', (api) => api.POST('/api/web/v1/webhooks/test/{id}', { params: { path: { id } } })],
  ];

  it.each(operations)('%s answers 200 with the body the contract declares', async (operationId, call) => {
    const { data, response } = await call(api);
    expect(response.status).toBe(200);
    expectDeclared(operationId, response, data);
  });

  it('refuses a body without events with the declared 400 problem', async () => {
    const { error, response } = await api.POST('/api/web/v1/webhooks', {
      // @ts-expect-error events is left out on purpose: the mock must refuse what the compiler would
      body: { callbackUrl: parms.callbackUrl },
    });
    expect(response.status).toBe(400);
    expectDeclared('createWebhookUsingPOST', response, error);
  });

  it('refuses an id that is not a UUID with the declared 400 problem', async () => {
    const { error, response } = await api.GET('/api/web/v1/webhooks/{id}', {
      params: { path: { id: 'not-a-uuid' } },
    });
    expect(response.status).toBe(400);
    expectDeclared('readWebhookUsingGET', response, error);
  });

  it('answers 401 with a problem to a request without a token', async () => {
    // A fetch that drops the header the client adds: the only way to send no token through the client.
    const anonymous = createWebhooksClient({
      baseUrl,
      token: 'whk_mock',
      fetch: (request) => {
        const bare = new Request(request);
        bare.headers.delete('Authorization');
        return fetch(bare);
      },
    });
    const { error, response } = await anonymous.GET('/api/web/v1/webhooks', {});
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer /);
    expectDeclared('getWebhooksUsingGET', response, error);
  });

  it('answers the 404 problem when asked for it with Prefer: code=404', async () => {
    const { error, response } = await api.GET('/api/web/v1/webhooks/{id}', {
      params: { path: { id } },
      headers: { Prefer: 'code=404' },
    });
    expect(response.status).toBe(404);
    expectDeclared('readWebhookUsingGET', response, error);
    expect(error).toMatchObject({ status: 404 });
  });
});
