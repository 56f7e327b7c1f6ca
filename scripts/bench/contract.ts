// The contract as the bench needs it: whether a path exists (to switch sections on when an API lands), and the
// route schemas of an operation with every $ref resolved, so the baseline serialises exactly what the contract says.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { projectRoot } from './processes.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header' | 'cookie';
  required?: boolean;
  schema: JsonObject;
}

interface Operation {
  operationId?: string;
  parameters?: Parameter[];
  requestBody?: { content?: Record<string, { schema?: JsonObject }> };
  responses?: Record<string, { content?: Record<string, { schema?: JsonObject }> }>;
}

export interface Contract {
  paths: Record<string, Record<string, Operation>>;
  components?: JsonObject;
}

export const contractFile = join(projectRoot, 'openapi', 'webhooks.yaml');

export function loadContract(): Contract {
  return parse(readFileSync(contractFile, 'utf8')) as Contract;
}

export function contractHasPath(path: string, contract = loadContract()): boolean {
  return Object.hasOwn(contract.paths, path);
}

function pointer(root: unknown, ref: string): unknown {
  if (!ref.startsWith('#/')) throw new Error(`only local $refs are supported, not ${ref}`);
  return ref
    .slice(2)
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], root);
}

/** A deep copy of `node` with every local $ref replaced by what it points at (the contract has no cycles). */
export function resolveRefs<T>(node: T, root: unknown, seen: string[] = []): T {
  if (Array.isArray(node)) return node.map((item) => resolveRefs(item, root, seen)) as T;
  if (node === null || typeof node !== 'object') return node;
  const object = node as Record<string, unknown>;
  if (typeof object.$ref === 'string') {
    const ref = object.$ref;
    if (seen.includes(ref)) throw new Error(`$ref cycle through ${ref}`);
    const target = pointer(root, ref);
    if (target === undefined) throw new Error(`$ref ${ref} points at nothing`);
    const { $ref: _ref, ...siblings } = object;
    return { ...(resolveRefs(target, root, [...seen, ref]) as object), ...resolveRefs(siblings, root, seen) } as T;
  }
  return Object.fromEntries(Object.entries(object).map(([key, value]) => [key, resolveRefs(value, root, seen)])) as T;
}

export interface RouteSchemas {
  params?: JsonObject;
  querystring?: JsonObject;
  body?: JsonObject;
  /** The 200 application/json schema, when the operation has one. */
  response200?: JsonObject;
}

function objectOf(parameters: Parameter[]): JsonObject | undefined {
  if (parameters.length === 0) return undefined;
  return {
    type: 'object',
    properties: Object.fromEntries(parameters.map((p) => [p.name, p.schema])),
    required: parameters.filter((p) => p.required).map((p) => p.name),
  };
}

/** Fastify route schemas for one operation of the contract, refs resolved. */
export function routeSchemas(contract: Contract, path: string, method: string): RouteSchemas {
  const raw = contract.paths[path]?.[method];
  if (!raw) throw new Error(`the contract has no ${method.toUpperCase()} ${path}`);
  const operation = resolveRefs(raw, contract);
  const parameters = operation.parameters ?? [];
  const params = objectOf(parameters.filter((p) => p.in === 'path'));
  const querystring = objectOf(parameters.filter((p) => p.in === 'query'));
  const body = operation.requestBody?.content?.['application/json']?.schema;
  const response200 = operation.responses?.['200']?.content?.['application/json']?.schema;
  return {
    ...(params ? { params } : {}),
    ...(querystring ? { querystring } : {}),
    ...(body ? { body } : {}),
    ...(response200 ? { response200 } : {}),
  };
}
