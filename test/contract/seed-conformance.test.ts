// The contract must keep the seed API's meaning: the seed's API doc (docs/reference/seed-webhooks-api.md, a copy
// of the doc the old service published, in openapi-generator's Markdown with the markup stripped) against the doc
// openapi-generator writes from our contract (generated/docs/Apis/WebhooksApi.md), compared after stripping markup
// and whitespace. The doc has no response codes or scopes, so those are checked in openapi/webhooks.yaml itself.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const root = new URL('../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

// Parameters the contract documents on purpose beyond the seed: paging of the list, added for a later issue.
// Anything else the seed does not have is a change of meaning and fails.
const allowedExtraParameters: Record<string, string[]> = {
  getWebhooksUsingGET: ['limit', 'cursor'],
};

interface Parameter {
  name: string;
  type: string;
  description: string;
}

interface DocOperation {
  operationId: string;
  method: string;
  path: string;
  summary: string;
  description: string;
  parameters: Parameter[];
  returnType: string;
  /** Status code to description, where the doc has a response table (the seed's does, the generator's not). */
  responses: Record<string, string>;
}

const entities: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** Markdown of openapi-generator's `markdown` template, reduced to the text a reader sees, one line per line. */
function plainLines(markdown: string): string[] {
  return markdown
    .split('\n')
    .filter((line, i) => !(i === 0 && line.includes('Do not edit'))) // our generated-file header
    .map((line) =>
      line
        .replace(/<a name="[^"]*"><\/a>/g, '')
        // The template names a list return type by its container and links the item model: "List" of Webhook.
        .replace(/\[\*\*(List|Set|array)\*\*\]\([^)]*\/Models\/(\w+)\.md\)/g, 'List<$2>')
        .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
        .replace(/\*\*/g, '')
        .replace(/&#x([0-9a-f]+);/gi, (_, hex: string) => String.fromCodePoint(parseInt(hex, 16)))
        .replace(/&#(\d+);/g, (_, dec: string) => String.fromCodePoint(Number(dec)))
        .replace(/&(\w+);/g, (entity, name: string) => entities[name] ?? entity)
        .replace(/\\"/g, '"') // the template escapes quotes inside table cells
        .replace(/^\s*(#+|>)\s*/, '')
        .replace(/\s+/g, ' ')
        .trim(),
    )
    .filter((line) => line !== '' && !/^-+( ?\| ?-+)*( ?\|)?$/.test(line)); // blank lines and table rules
}

function cells(row: string): string[] {
  const parts = row.split('|').map((cell) => cell.trim());
  while (parts.length > 0 && parts.at(-1) === '') parts.pop();
  return parts;
}

/** The lines after `heading` up to the first of `ends` (or the end of the block). */
function section(lines: string[], heading: string, ends: string[]): string[] {
  const start = lines.indexOf(heading);
  if (start < 0) return [];
  const rest = lines.slice(start + 1);
  const end = rest.findIndex((line) => ends.includes(line));
  return end < 0 ? rest : rest.slice(0, end);
}

function parseApiDoc(markdown: string): Map<string, DocOperation> {
  const lines = plainLines(markdown);
  const indexStart = lines.findIndex((line) => line.startsWith('Method | HTTP request | Description'));
  const index = new Map<string, { method: string; path: string; summary: string }>();
  for (const row of lines.slice(indexStart + 1)) {
    const [operationId, request, summary] = cells(row);
    const [method, path] = (request ?? '').split(' ');
    if (!operationId || !method || !path || index.has(operationId)) break;
    index.set(operationId, { method, path, summary: summary ?? '' });
  }

  const operations = new Map<string, DocOperation>();
  const starts = lines.flatMap((line, i) => (i > indexStart + index.size && index.has(line) ? [i] : []));
  starts.forEach((start, n) => {
    const block = lines.slice(start, starts[n + 1] ?? lines.length);
    const operationId = block[0]!;
    const signature = new RegExp(`^(?:(.+) )?${operationId}\\((.*)\\)$`).exec(block[1] ?? '');
    if (!signature) throw new Error(`${operationId}: no signature line in ${JSON.stringify(block.slice(0, 3))}`);
    const description = block.slice(3, block.findIndex((line) => line === 'Example' || line === 'Parameters'));
    const parameterRows = section(block, 'Parameters', ['Return type']).filter(
      (line) => line.includes('|') && !line.startsWith('Name | Type'),
    );
    const returnType = section(block, 'Return type', ['Authorization']).join(' ');
    const responseRows = section(block, 'HTTP response details', []).filter((line) => /^\d{3} \|/.test(line));
    operations.set(operationId, {
      operationId,
      ...index.get(operationId)!,
      summary: block[2] ?? '',
      description: description.join(' '),
      parameters: parameterRows.map((row) => {
        const [name = '', type = '', description = ''] = cells(row);
        return { name, type, description };
      }),
      // A blank return-type section leaves the type to the signature line ("Webhook createWebhookUsingPOST(...)").
      returnType: returnType || signature[1] || '',
      responses: Object.fromEntries(responseRows.map((row) => cells(row).slice(0, 2))),
    });
  });
  return operations;
}

const seed = parseApiDoc(read('docs/reference/seed-webhooks-api.md'));
const generated = parseApiDoc(read('generated/docs/Apis/WebhooksApi.md'));
const seedIds = [...seed.keys()].sort();

describe('the parsed seed doc', () => {
  // Guards the parser: a format it misreads must fail here, not pass every comparison below vacuously.
  it('has the six operations, each with responses 200 to 409', () => {
    expect(seedIds).toHaveLength(6);
    for (const operation of seed.values()) {
      expect(Object.keys(operation.responses)).toEqual(['200', '400', '401', '403', '404', '409']);
    }
  });
});

describe('generated API doc against the seed', () => {
  it('documents the same operations', () => {
    expect([...generated.keys()].sort()).toEqual(seedIds);
  });

  describe.each(seedIds)('%s', (operationId) => {
    const want = seed.get(operationId)!;
    const got = () => generated.get(operationId)!;

    it.each(['method', 'path', 'summary', 'description', 'returnType'] as const)('has the seed %s', (field) => {
      expect(got()[field]).toBe(want[field]);
    });

    it('has the seed parameters, plus only the allowed extras', () => {
      const extras = allowedExtraParameters[operationId] ?? [];
      expect(got().parameters.filter((p) => !extras.includes(p.name))).toEqual(want.parameters);
      expect(got().parameters.map((p) => p.name).filter((name) => extras.includes(name))).toEqual(extras);
    });
  });
});

type Json = Record<string, unknown>;
const contract = parse(read('openapi/webhooks.yaml')) as Json;

function resolve(node: Json): Json {
  const ref = node.$ref;
  if (typeof ref !== 'string') return node;
  const target = ref
    .replace(/^#\//, '')
    .split('/')
    .reduce<unknown>((at, key) => (at as Json)[key.replace(/~1/g, '/').replace(/~0/g, '~')], contract);
  return resolve(target as Json);
}

function contractOperation(method: string, path: string): Json {
  const paths = contract.paths as Record<string, Json>;
  return paths[path]![method.toLowerCase()] as Json;
}

describe.each(seedIds)('contract operation %s', (operationId) => {
  const { method, path, responses } = seed.get(operationId)!;
  const operation = () => contractOperation(method, path);

  it('sits at the seed method and path', () => {
    expect(operation().operationId).toBe(operationId);
  });

  it.each(Object.entries(responses))('declares %s with the seed description "%s"', (status, description) => {
    const response = (operation().responses as Record<string, Json>)[status];
    expect(response, `no ${status} response`).toBeDefined();
    expect(resolve(response!).description).toBe(description);
  });

  it('requires the permission its description names as its bearerAuth scope', () => {
    const named = /Caller is required to have (\S+) permission\./.exec(String(operation().description));
    expect(named, 'description names no permission').not.toBeNull();
    expect(operation().security).toEqual([{ bearerAuth: [named![1]] }]);
  });
});

describe('the allowed extra parameters', () => {
  it.each(Object.entries(allowedExtraParameters))('%s documents them as the contract declares them', (id, names) => {
    const { method, path, parameters } = generated.get(id)!;
    const declared = (contractOperation(method, path).parameters as Json[]).map(resolve);
    for (const name of names) {
      const doc = parameters.find((p) => p.name === name);
      const yaml = declared.find((p) => p.name === name);
      expect(doc?.description, name).toBe(String(yaml?.description).replace(/\s+/g, ' ').trim());
    }
  });
});
