// `npm run lint:spec`: Redocly lints the 3.1 contract as written, then openapi-generator validates the 3.0.3 copy
// derived from it (what SDKs and docs are built from), so a spec that only one of them rejects still fails.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { contractAs30, projectRoot } from './contract.js';
import { runOpenapiGenerator } from './openapi-generator.js';

function redoclyLint(): boolean {
  const result = spawnSync(
    join(projectRoot, 'node_modules', '.bin', 'redocly'),
    ['lint', '--config', 'openapi/redocly.yaml', 'openapi/webhooks.yaml'],
    {
      cwd: projectRoot,
      stdio: 'inherit',
      // Machines here have no internet: skip Redocly's telemetry and update check instead of waiting on them.
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
    },
  );
  if (result.error) console.error(`redocly could not start: ${result.error.message}`);
  return result.status === 0;
}

function generatorValidate(): boolean {
  const scratch = mkdtempSync(join(tmpdir(), 'webhooks-lint-'));
  try {
    const spec30 = join(scratch, 'openapi-3.0.yaml');
    writeFileSync(spec30, contractAs30());
    runOpenapiGenerator(['validate', '-i', spec30]);
    console.log('openapi-generator validate: the derived OpenAPI 3.0.3 copy is valid');
    return true;
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    return false;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

// Both run even when the first fails, so one pass shows every complaint.
const redoclyOk = redoclyLint();
const generatorOk = generatorValidate();
const failed = [redoclyOk ? '' : 'redocly lint', generatorOk ? '' : 'openapi-generator validate'].filter(Boolean);
if (failed.length > 0) {
  console.error(`lint:spec failed: ${failed.join(', ')}`);
  process.exitCode = 1;
}
