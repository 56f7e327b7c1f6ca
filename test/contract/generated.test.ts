// The contract lints clean and generated/ is exactly what it generates: a spec edit without `npm run generate`
// (or a hand edit under generated/) fails here, not in some other team's build.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const generatedDir = join(root, 'generated');

// Both start Java (openapi-generator) and take a few seconds; the bound only stops a hung child.
const scriptTimeoutMs = 60_000;

function npmRun(script: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    // Its own process group, so a hung run is killed with its children (npm -> tsx -> java), not just npm.
    const child = spawn('npm', ['run', '--silent', script], { cwd: root, detached: true });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const timer = setTimeout(() => {
      output += `\nkilled after ${scriptTimeoutMs} ms`;
      process.kill(-child.pid!, 'SIGKILL');
    }, scriptTimeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

describe('contract tooling', () => {
  it.each(['lint:spec', 'generate:check'])('npm run %s exits 0', async (script) => {
    const { code, output } = await npmRun(script);
    expect(code, output).toBe(0);
  }, scriptTimeoutMs + 10_000);
});

describe('generated/', () => {
  const generatedFiles = files(generatedDir).map((path) => relative(root, path));

  it('has files', () => {
    expect(generatedFiles.length).toBeGreaterThan(0);
  });

  it.each(generatedFiles)('%s starts with a "Do not edit" line', (path) => {
    const firstLine = readFileSync(join(root, path), 'utf8').split('\n', 1)[0];
    expect(firstLine).toContain('Do not edit');
  });
});
