// Reads the hand-written contract and derives the OpenAPI 3.0.3 copy that openapi-generator 4.3.1 needs
// (it cannot read 3.1). Shared by `npm run generate`, `npm run sdk` and `npm run lint:spec`.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Converter } from '@apiture/openapi-down-convert';
import { parse, stringify } from 'yaml';

export const projectRoot = fileURLToPath(new URL('..', import.meta.url));
export const contractPath = fileURLToPath(new URL('../openapi/webhooks.yaml', import.meta.url));

export function readContract(): Record<string, unknown> {
  return parse(readFileSync(contractPath, 'utf8')) as Record<string, unknown>;
}

/** The contract as OpenAPI 3.0.3, for openapi-generator. */
export function contractAs30(): string {
  const converted = new Converter(readContract(), { verbose: false }).convert() as {
    info: Record<string, unknown>;
  };
  // `info.summary` is 3.1-only and the converter keeps it; generator 4.3.1 rejects it.
  delete converted.info.summary;
  return stringify(converted, { lineWidth: 0 });
}
