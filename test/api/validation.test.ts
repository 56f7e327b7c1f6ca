// Strict validation by the contract: every bad input is a 400 problem+json naming what is wrong, and nothing is
// stored. Raw fetch on purpose: the typed client would not let us send these bodies.
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/receiver-log.js';
import { startService, type TestService } from '../support/service.js';

let service: TestService;
let token: string;
beforeAll(async () => {
  service = await startService();
  token = await service.token();
});
afterAll(() => service?.close());

const send = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
  fetch(`${service.baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });

/** A plain TCP connection to the service, for requests no HTTP client would send in this order. */
async function rawConnection() {
  const { hostname, port } = new URL(service.baseUrl);
  const socket: Socket = connect(Number(port), hostname);
  await once(socket, 'connect');
  const received = { text: '' };
  const errors: Error[] = [];
  socket.setEncoding('latin1');
  socket.on('data', (data: string) => (received.text += data));
  socket.on('error', (error) => errors.push(error));
  // Bounded: a connection the service never closes fails the test at once instead of hanging it.
  const closed = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the service did not close the connection within 10 s')), 10_000);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  closed.catch(() => {});
  return { socket, received, errors, closed };
}

const until = (condition: () => boolean) =>
  eventually(async () => condition() || undefined, { intervalMs: 5, what: 'the answer' });

/** The connection still answers a next request (a health check), and nothing went wrong on it; then closes it. */
type Connection = Awaited<ReturnType<typeof rawConnection>>;
async function expectOpenForNextRequest({ socket, received, errors }: Pick<Connection, 'socket' | 'received' | 'errors'>) {
  const before = received.text.length;
  socket.write('GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n');
  await until(() => /\r\n\r\n/.test(received.text.slice(before)));
  expect(received.text.slice(before)).toMatch(/^HTTP\/1\.1 200 /);
  expect(errors).toEqual([]);
  socket.destroy();
}

const valid = { callbackUrl: 'https://valid.example.com/hook', events: ['order.created'] };
const secretOf = (bytes: number) => `whsec_${Buffer.alloc(bytes, 1).toString('base64')}`;

describe('create refuses a bad body with 400 and a pointer to the fault', () => {
  const cases: [name: string, body: unknown, pointer: string][] = [
    ['an unknown property', { ...valid, colour: 'red' }, '/colour'],
    ['a missing callbackUrl', { events: ['a'] }, '/callbackUrl'],
    ['a missing events', { callbackUrl: valid.callbackUrl }, '/events'],
    ['enabled as a string (no coercion)', { ...valid, enabled: 'true' }, '/enabled'],
    ['events as a string', { ...valid, events: 'order.created' }, '/events'],
    ['empty events', { ...valid, events: [] }, '/events'],
    ['101 events', { ...valid, events: Array.from({ length: 101 }, (_, i) => `e${i}`) }, '/events'],
    ['duplicate events', { ...valid, events: ['a.b', 'a.b'] }, '/events'],
    ['a bad event name', { ...valid, events: ['Order Created'] }, '/events/0'],
    ['a wildcard in the middle', { ...valid, events: ['order.*.x'] }, '/events/0'],
    ['a relative URL', { ...valid, callbackUrl: '/hook' }, '/callbackUrl'],
    ['an ftp URL', { ...valid, callbackUrl: 'ftp://files.example.com/x' }, '/callbackUrl'],
    ['a URL over 2048 characters', { ...valid, callbackUrl: `https://a.example.com/${'x'.repeat(2048)}` }, '/callbackUrl'],
    ['a description over 500 characters', { ...valid, description: 'x'.repeat(501) }, '/description'],
    ['a secret without whsec_', { ...valid, secret: 'secret' }, '/secret'],
    ['a secret of 16 bytes', { ...valid, secret: secretOf(16) }, '/secret'],
    ['a secret of 65 bytes', { ...valid, secret: secretOf(65) }, '/secret'],
    ['a reserved header (any case)', { ...valid, headers: { 'Content-Length': '1' } }, '/headers/Content-Length'],
    ['a webhook-* header', { ...valid, headers: { 'Webhook-Signature': 'x' } }, '/headers/Webhook-Signature'],
    ['a header name with a space', { ...valid, headers: { 'X Bad': '1' } }, '/headers/X Bad'],
    ['a header value with a newline', { ...valid, headers: { 'X-A': 'a\r\nInjected: 1' } }, '/headers/X-A'],
    ['21 headers', { ...valid, headers: Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`X-${i}`, 'v'])) }, '/headers'],
    ['credentials in the callback URL', { ...valid, callbackUrl: 'https://user:pw@valid.example.com/hook' }, '/callbackUrl'],
    ['a loopback callback host', { ...valid, callbackUrl: 'http://[::1]:8080/hook' }, '/callbackUrl'],
    ['an array instead of an object', [valid], '/'],
  ];

  it.each(cases)('%s', async (_name, body, pointer) => {
    const response = await send('POST', '/api/web/v1/webhooks', body);
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toContain('application/problem+json');
    const problem = await response.json();
    expect(problem).toMatchObject({ type: 'urn:webhooks-api:problem:validation', status: 400, instance: '/api/web/v1/webhooks' });
    expect(problem.errors.map((e: { pointer: string }) => e.pointer)).toContain(pointer);
    expect(JSON.stringify(problem)).not.toMatch(/\bat .*\.(js|ts):\d+/); // no stack frames
  });

  it('stored none of the refused webhooks', async () => {
    const response = await send('GET', '/api/web/v1/webhooks');
    expect(await response.json()).toEqual([]);
  });
});

describe('other bad requests', () => {
  it.each([
    ['GET', '/api/web/v1/webhooks/not-a-uuid'],
    ['PUT', '/api/web/v1/webhooks/123'],
    ['DELETE', '/api/web/v1/webhooks/7d444840-9dc0-11d1-b245-5ffdce74fad2x'],
    ['POST', '/api/web/v1/webhooks/test/zzz'],
  ])('%s %s: a path id that is not a UUID is 400 pointing at the parameter', async (method, path) => {
    const response = await send(method, path, method === 'PUT' ? valid : undefined);
    expect(response.status).toBe(400);
    const problem = await response.json();
    expect(problem.errors).toContainEqual(expect.objectContaining({ pointer: '/id', in: 'path' }));
  });

  it.each([
    ['limit=0', '/limit'],
    ['limit=1001', '/limit'],
    ['limit=ten', '/limit'],
    ['cursor=bm9wZQ', '/cursor'],
  ])('list with %s is 400 pointing at the query parameter', async (query, pointer) => {
    const response = await send('GET', `/api/web/v1/webhooks?${query}`);
    expect(response.status).toBe(400);
    const problem = await response.json();
    expect(problem.errors).toContainEqual(expect.objectContaining({ pointer, in: 'query' }));
  });

  it('answers malformed JSON with 400', async () => {
    const response = await send('POST', '/api/web/v1/webhooks', '{"callbackUrl": ');
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toContain('application/problem+json');
  });

  it('answers a body that is not JSON with 415', async () => {
    const response = await send('POST', '/api/web/v1/webhooks', 'callbackUrl=x', { 'content-type': 'text/plain' });
    expect(response.status).toBe(415);
    expect((await response.json()).status).toBe(415);
  });

  it('answers an oversized body with 413', async () => {
    const response = await send('POST', '/api/web/v1/webhooks', { ...valid, description: 'x'.repeat(2 * 1024 * 1024) });
    expect(response.status).toBe(413);
    expect((await response.json()).status).toBe(413);
  });

  // Answers given before the body was read: 413 (over the limit), 415 (a media type the operation does not take),
  // 401 (no valid token: callers are refused before their body is parsed), 404 (no such path; a body of a type
  // nothing parses).
  const earlyAnswers: [status: number, request: string][] = [
    [413, 'POST /api/web/v1/webhooks HTTP/1.1\r\nauthorization: Bearer TOKEN\r\ncontent-type: application/json\r\n'],
    [415, 'POST /api/web/v1/webhooks HTTP/1.1\r\nauthorization: Bearer TOKEN\r\ncontent-type: text/plain\r\n'],
    [401, 'POST /api/web/v1/webhooks HTTP/1.1\r\ncontent-type: application/json\r\n'],
    [404, 'POST /api/web/v1/nothing-here HTTP/1.1\r\ncontent-type: text/plain\r\n'],
  ];
  const post = (request: string, framing: string) =>
    `${request.replace('TOKEN', token)}host: 127.0.0.1\r\n${framing}\r\n\r\n`;

  it.each(earlyAnswers)('reads a body of known length to its end after a %d, so the client can finish and go on', async (status, headers) => {
    const { socket, received, errors } = await rawConnection();
    const body = JSON.stringify({ ...valid, description: 'x'.repeat(2 * 1024 * 1024) });
    socket.write(post(headers, `content-length: ${Buffer.byteLength(body)}`));
    // The answer comes before the body was sent; a client or proxy may still be writing it then.
    await until(() => received.text.includes(`"status":${status}`));
    expect(received.text).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    expect(received.text).not.toMatch(/\r\nconnection: close\r\n/i);
    for (let sent = 0; sent < body.length; sent += 256 * 1024) {
      socket.write(body.slice(sent, sent + 256 * 1024));
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    // Closing with the upload still arriving would reset the connection; it is still open for the next request.
    await expectOpenForNextRequest({ socket, received, errors });
  });

  it.each(earlyAnswers)('reads a chunked body to its end after a %d too, and goes on', async (status, headers) => {
    const { socket, received, errors } = await rawConnection();
    socket.write(post(headers, 'transfer-encoding: chunked'));
    const chunk = 'x'.repeat(256 * 1024);
    for (let i = 0; i < 8; i++) {
      socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    socket.write('0\r\n\r\n');
    await until(() => received.text.includes(`"status":${status}`));
    expect(received.text).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    expect(received.text).not.toMatch(/\r\nconnection: close\r\n/i);
    await expectOpenForNextRequest({ socket, received, errors });
  });

  it.each(earlyAnswers)('cuts off a chunked body that grows past 16 MiB after a %d', async (status, headers) => {
    const { socket, received, closed } = await rawConnection();
    let isClosed = false;
    closed.then(() => (isClosed = true), () => {});
    socket.write(post(headers, 'transfer-encoding: chunked'));
    const chunk = 'x'.repeat(1024 * 1024);
    let sent = 0;
    while (!isClosed && sent < 64) {
      if (!socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`)) {
        await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), closed]);
      }
      sent++;
    }
    await closed;
    expect(sent).toBeLessThan(64);
    expect(received.text).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    socket.destroy();
  });

  it.each(earlyAnswers)('closes the connection after a %d to a declared body over 16 MiB, without reading it', async (status, headers) => {
    const { socket, received, closed } = await rawConnection();
    socket.write(post(headers, `content-length: ${17 * 1024 * 1024}`));
    await until(() => received.text.includes(`"status":${status}`));
    expect(received.text).toMatch(new RegExp(`^HTTP/1\\.1 ${status} [^]*\r\nconnection: close\r\n`, 'i'));
    await closed;
    socket.destroy();
  });

  it('keeps the connection open after refusing a request without a body', async () => {
    const { socket, received, errors } = await rawConnection();
    socket.write('GET /api/web/v1/webhooks HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n');
    await until(() => received.text.includes('"status":401'));
    socket.write(`GET /api/web/v1/webhooks/${'0'.repeat(8)}-0000-7000-8000-${'0'.repeat(12)} HTTP/1.1\r\n` +
      `host: 127.0.0.1\r\nauthorization: Bearer ${token}\r\n\r\n`);
    await until(() => received.text.includes('"status":404'));
    socket.write('GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n');
    await until(() => /HTTP\/1\.1 200 /.test(received.text));
    expect(received.text).not.toMatch(/\r\nconnection: close\r\n/i);
    expect(errors).toEqual([]);
    socket.destroy();
  });

  it('answers an unknown path with a 404 problem', async () => {
    const response = await send('GET', '/api/web/v1/nothing-here');
    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toContain('application/problem+json');
  });
});
