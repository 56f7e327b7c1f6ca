// The command line as an operator uses it: serve with its bootstrap key, keys create/list/revoke, migrate,
// configuration errors, and a graceful stop.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli, type ServeProcess, startServe } from '../support/process.js';

let dataDir: string;
let serve: ServeProcess | undefined;
beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'webhooks-cli-'));
});
afterEach(async () => {
  if (serve && serve.child.exitCode === null) {
    serve.child.kill('SIGKILL');
    await serve.exited;
  }
  serve = undefined;
  rmSync(dataDir, { recursive: true, force: true });
});

describe('serve', () => {
  it('makes a bootstrap key on first start, prints it with a curl line, and the key works', async () => {
    serve = await startServe({ DATA_DIR: dataDir });
    expect(serve.bootstrapToken).toMatch(/^whk_/);
    expect(serve.output()).toContain(`curl -H 'Authorization: Bearer ${serve.bootstrapToken}' ${serve.baseUrl}/api/web/v1/webhooks`);
    const response = await fetch(`${serve.baseUrl}/api/web/v1/webhooks`, {
      headers: { authorization: `Bearer ${serve.bootstrapToken}` },
    });
    expect(response.status).toBe(200);
    // The token is printed, never logged.
    const logLines = serve.output().split('\n').filter((line) => line.startsWith('{'));
    expect(logLines.join('\n')).not.toContain(serve.bootstrapToken);
  });

  it('makes no bootstrap key when WEBHOOKS_BOOTSTRAP_KEY=false, nor when a key exists', async () => {
    serve = await startServe({ DATA_DIR: dataDir, WEBHOOKS_BOOTSTRAP_KEY: 'false' });
    expect(serve.bootstrapToken).toBeUndefined();
    serve.child.kill('SIGTERM');
    await serve.exited;
    runCli(['keys', 'create', '--tenant', 't', '--permissions', 'WEBHOOKS:VIEW'], { DATA_DIR: dataDir });
    serve = await startServe({ DATA_DIR: dataDir });
    expect(serve.bootstrapToken).toBeUndefined();
  });

  it('logs each request at info with the request id it answers in x-request-id', async () => {
    serve = await startServe({ DATA_DIR: dataDir });
    const response = await fetch(`${serve.baseUrl}/api/web/v1/webhooks`, {
      headers: { authorization: `Bearer ${serve.bootstrapToken}` },
    });
    const requestId = response.headers.get('x-request-id');
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    const linesOf = (id: string) =>
      serve!
        .output()
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as { reqId?: string; msg?: string })
        .filter((entry) => entry.reqId === id);
    // Request loggers are made lazily (server/http/request-logger.ts); the lines must still carry the id.
    await expect.poll(() => linesOf(requestId!).map((entry) => entry.msg)).toEqual(['incoming request', 'request completed']);
  });

  it('exits 0 on SIGTERM after finishing', async () => {
    serve = await startServe({ DATA_DIR: dataDir, WEBHOOKS_BOOTSTRAP_KEY: 'false' });
    serve.child.kill('SIGTERM');
    expect(await serve.exited).toBe(0);
  });

  it.each([
    ['PORT', 'http'],
    ['LOG_LEVEL', 'loud'],
    ['DATABASE_URL', 'mysql://x'],
    ['CALLBACK_ALLOWED_CIDRS', '10.0.0.0/33'],
    ['WEBHOOKS_BOOTSTRAP_KEY', 'maybe'],
    ['REQUEST_TIMEOUT_MS', '500'],
    ['DELIVERY_RETENTION', '0s'],
    ['JWT_ISSUER', 'https://id.example.com/'],
  ])('refuses a bad %s with one clear line and exit code 2', (name, value) => {
    const result = runCli(['serve'], { DATA_DIR: dataDir, [name]: value });
    expect(result.status).toBe(2);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^webhooks-api: ${name}`));
  });
});

describe('keys', () => {
  it('creates a key as JSON, lists it, and revokes it', () => {
    const created = runCli(
      ['keys', 'create', '--tenant', 'acme', '--permissions', 'WEBHOOKS:VIEW,WEBHOOKS:ADD', '--expires-in', '30d', '--json'],
      { DATA_DIR: dataDir },
    );
    expect(created.status).toBe(0);
    const key = JSON.parse(created.stdout);
    expect(key).toMatchObject({ tenant: 'acme', permissions: ['WEBHOOKS:VIEW', 'WEBHOOKS:ADD'] });
    expect(key.token).toMatch(/^whk_[A-Za-z0-9_-]{43}$/);
    expect(Date.parse(key.expiresAt) - Date.now()).toBeGreaterThan(29 * 86_400_000);

    const listed = runCli(['keys', 'list', '--tenant', 'acme', '--json'], { DATA_DIR: dataDir });
    const keys = JSON.parse(listed.stdout);
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({ id: key.id, tenant: 'acme' });
    expect(listed.stdout).not.toContain(key.token);

    expect(runCli(['keys', 'revoke', key.id], { DATA_DIR: dataDir }).status).toBe(0);
    const after = JSON.parse(runCli(['keys', 'list', '--json'], { DATA_DIR: dataDir }).stdout);
    expect(after[0].revokedAt).toBeTruthy();
    expect(runCli(['keys', 'revoke', key.id], { DATA_DIR: dataDir }).status).toBe(2);
  });

  it.each([
    [['keys', 'create', '--permissions', 'WEBHOOKS:VIEW'], /needs --tenant/],
    [['keys', 'create', '--tenant', 't', '--permissions', 'WEBHOOKS:FLY'], /unknown permission WEBHOOKS:FLY/],
    [['keys', 'create', '--tenant', 't', '--permissions', 'WEBHOOKS:VIEW', '--expires-in', 'soon'], /--expires-in/],
    [['keys', 'fly'], /unknown keys command/],
    [['launch'], /unknown command/],
  ])('refuses %j with a clear message', (args, message) => {
    const result = runCli(args, { DATA_DIR: dataDir });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(message);
  });
});

it('migrate applies the migrations once', () => {
  expect(runCli(['migrate'], { DATA_DIR: dataDir }).stdout).toMatch(/applied 0001/);
  expect(runCli(['migrate'], { DATA_DIR: dataDir }).stdout).toMatch(/up to date/);
});
