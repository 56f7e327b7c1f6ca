// Runs the openapi-generator that ships inside @openapitools/openapi-generator-cli 1.x (no download; needs Java).
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const jar = join(
  dirname(require.resolve('@openapitools/openapi-generator-cli/package.json')),
  'bin',
  'openapi-generator.jar',
);

export function runOpenapiGenerator(args: string[]): void {
  const result = spawnSync('java', ['-jar', jar, ...args], { encoding: 'utf8' });
  if (result.error) {
    throw new Error(`openapi-generator needs Java 17 or newer on the PATH: ${result.error.message}`);
  }
  if (result.status !== 0) {
    throw new Error(`openapi-generator ${args[0]} failed:\n${result.stdout}\n${result.stderr}`);
  }
}
