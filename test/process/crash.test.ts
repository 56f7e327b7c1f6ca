// A write answered 200 survives kill -9 of the server at any moment: writers run flat out, the process is killed
// mid-stream, and after a restart on the same store every webhook it had confirmed is there.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { startServe } from '../support/process.js';

const dataDir = mkdtempSync(join(tmpdir(), 'webhooks-crash-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

async function listAll(baseUrl: string, token: string): Promise<Set<string>> {
  const ids = new Set<string>();
  let url: string | undefined = `${baseUrl}/api/web/v1/webhooks?limit=1000`;
  while (url) {
    const response: Response = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    for (const webhook of (await response.json()) as { id: string }[]) ids.add(webhook.id);
    const next = /^<([^>]+)>/.exec(response.headers.get('link') ?? '')?.[1];
    url = next ? new URL(next, baseUrl).href : undefined;
  }
  return ids;
}

it('keeps every webhook whose create was answered 200 across two kill -9', async () => {
  const confirmed = new Set<string>();
  let token: string | undefined;
  let counter = 0;

  for (let round = 0; round < 2; round++) {
    const serve = await startServe({ DATA_DIR: dataDir });
    token ??= serve.bootstrapToken!;
    let stop = false;
    // Four writers in parallel; the kill lands while requests are in flight.
    const writers = Array.from({ length: 4 }, async () => {
      while (!stop) {
        try {
          const response = await fetch(`${serve.baseUrl}/api/web/v1/webhooks`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ callbackUrl: `https://crash${counter++}.example.com/h`, events: ['*'] }),
          });
          if (response.status === 200) confirmed.add(((await response.json()) as { id: string }).id);
        } catch {
          return; // the server is gone
        }
      }
    });
    const target = confirmed.size + 150;
    const deadline = Date.now() + 20_000;
    while (confirmed.size < target && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    serve.child.kill('SIGKILL');
    stop = true;
    await serve.exited;
    await Promise.all(writers);
  }

  const serve = await startServe({ DATA_DIR: dataDir });
  try {
    const stored = await listAll(serve.baseUrl, token!);
    const lost = [...confirmed].filter((id) => !stored.has(id));
    expect(confirmed.size).toBeGreaterThanOrEqual(300);
    expect(lost).toEqual([]);
  } finally {
    serve.child.kill('SIGTERM');
    await serve.exited;
  }
}, 90_000);
