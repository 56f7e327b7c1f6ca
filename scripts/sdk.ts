// `npm run sdk -- <generator> [outDir]`: writes a client SDK in any openapi-generator language (python, go, java,
// typescript-fetch, ...) into sdks/<generator> (gitignored) or outDir, from the contract's derived 3.0.3 copy.
// Other teams' SDKs are built, not committed: the contract is what we publish.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { contractAs30, projectRoot } from './contract.js';
import { runOpenapiGenerator } from './openapi-generator.js';

// Generator options some languages need to give code that builds with today's toolchains.
const extraArgs: Record<string, string[]> = {
  // Without it, generator 4.3.1 writes TypeScript that tsc 5.x rejects.
  'typescript-fetch': ['--additional-properties=typescriptThreePlus=true'],
};

const [generator, outArg] = process.argv.slice(2);
if (!generator || generator.startsWith('-')) {
  console.error(
    [
      'Usage: npm run sdk -- <generator> [outDir]',
      '  <generator>  an openapi-generator 4.3.1 generator name: python, typescript-fetch, go, java, csharp, ...',
      '  [outDir]     where to write the SDK; default sdks/<generator> (replaced on every run)',
      'Example: npm run sdk -- typescript-fetch',
    ].join('\n'),
  );
  process.exit(2);
}

const outDir = outArg ? resolve(outArg) : join(projectRoot, 'sdks', generator);
// Only our own default folder is emptied first (stale files from an older contract would linger); a folder the
// caller names may hold other things.
if (!outArg) rmSync(outDir, { recursive: true, force: true });

const scratch = mkdtempSync(join(tmpdir(), 'webhooks-sdk-'));
try {
  const spec30 = join(scratch, 'openapi-3.0.yaml');
  writeFileSync(spec30, contractAs30());
  runOpenapiGenerator(['generate', '-g', generator, '-i', spec30, '-o', outDir, ...(extraArgs[generator] ?? [])]);
  console.log(`${generator} SDK written to ${relative(process.cwd(), outDir) || '.'}`);
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
