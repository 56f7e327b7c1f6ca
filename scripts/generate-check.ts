// `npm run generate:check`: regenerates into a temporary folder and fails, naming the files, when generated/
// is not what `npm run generate` makes from the current openapi/webhooks.yaml.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { projectRoot } from './contract.js';
import { generate } from './generate.js';

function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? listFiles(path) : [path];
  });
}

const committed = join(projectRoot, 'generated');
const fresh = mkdtempSync(join(tmpdir(), 'webhooks-generated-'));
try {
  await generate(fresh);
  const names = new Set([
    ...listFiles(committed).map((f) => relative(committed, f)),
    ...listFiles(fresh).map((f) => relative(fresh, f)),
  ]);
  const stale = [...names].sort().filter((name) => {
    const a = join(committed, name);
    const b = join(fresh, name);
    return !existsSync(a) || !existsSync(b) || !readFileSync(a).equals(readFileSync(b));
  });
  if (stale.length > 0) {
    console.error('generated/ is out of date with openapi/webhooks.yaml. These files differ:');
    for (const name of stale) console.error(`  generated/${name}`);
    console.error('Run `npm run generate` and commit the result.');
    process.exitCode = 1;
  } else {
    console.log('generated/ is in sync with openapi/webhooks.yaml');
  }
} finally {
  rmSync(fresh, { recursive: true, force: true });
}
