// `npm run generate:watch`: regenerates generated/ whenever a file in openapi/ changes, for the API owner editing
// the contract. A spec that does not parse or validate is reported and the last good generated/ is kept: the
// owner is mid-edit, and wiping generated/ would break every import of it until the next good save.
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, watch } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from './contract.js';
import { generate } from './generate.js';

// Editors save in bursts (write, rename, chmod); one regeneration per burst.
const debounceMs = 200;
const openapiDir = join(projectRoot, 'openapi');
const generatedDir = join(projectRoot, 'generated');

let timer: NodeJS.Timeout | undefined;
let running = false;
let pending = false;

function stamp(): string {
  return new Date().toTimeString().slice(0, 8);
}

async function regenerate(): Promise<void> {
  // A save during a run must not start a second generator on the same files; it runs once this one ends.
  if (running) {
    pending = true;
    return;
  }
  running = true;
  const started = performance.now();
  const scratch = mkdtempSync(join(tmpdir(), 'webhooks-watch-'));
  try {
    await generate(scratch);
    // Overwrite in place, then drop what is no longer generated: editors and `tsc --watch` reading generated/
    // never see it missing.
    cpSync(scratch, generatedDir, { recursive: true });
    removeFilesNotIn(scratch, generatedDir);
    console.log(`[${stamp()}] generated/ rewritten in ${Math.round(performance.now() - started)} ms`);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    console.error(`[${stamp()}] spec error, generated/ left as it was: ${message.trim()}`);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
    running = false;
  }
  if (pending) {
    pending = false;
    await regenerate();
  }
}

function removeFilesNotIn(fresh: string, target: string): void {
  for (const name of readdirSync(target)) {
    const path = join(target, name);
    if (!existsSync(join(fresh, name))) rmSync(path, { recursive: true, force: true });
    else if (statSync(path).isDirectory()) removeFilesNotIn(join(fresh, name), path);
  }
}

function schedule(): void {
  clearTimeout(timer);
  timer = setTimeout(() => void regenerate(), debounceMs);
}

// The folder, not the file: editors that save by renaming a temp file over the original end a file watch.
const watcher = watch(openapiDir, schedule);
watcher.on('error', (error) => console.error(`[${stamp()}] watching openapi/ failed: ${error.message}`));
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    clearTimeout(timer);
    watcher.close();
  });
}
console.log(`[${stamp()}] watching openapi/ (Ctrl-C to stop)`);
await regenerate();
