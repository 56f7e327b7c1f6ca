// The contract at run time: where openapi/webhooks.yaml is, its parsed form, and the TypeScript types the
// handlers are held to, all derived from the generated types so nothing here re-declares a field.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { parse } from 'yaml';
import type { components, operations, paths } from '../generated/schema.js';

export type Schemas = components['schemas'];
export type Webhook = Schemas['Webhook'];
export type WebhookParms = Schemas['WebhookParms'];
export type Problem = Schemas['Problem'];
export type ValidationError = Schemas['ValidationError'];

/** Finds openapi/webhooks.yaml from server/ (run by tsx) and from dist/server/ (compiled) alike. */
function findContract(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'openapi', 'webhooks.yaml');
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('openapi/webhooks.yaml not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

export const contractPath = findContract();
export const contractYaml = readFileSync(contractPath, 'utf8');
export const contract = parse(contractYaml) as {
  paths: Record<string, Record<string, { operationId?: string; security?: Record<string, string[]>[] }>>;
};

/** Every permission named as a bearerAuth scope anywhere in the contract. */
export const contractPermissions: readonly string[] = [
  ...new Set(
    Object.values(contract.paths).flatMap((item) =>
      Object.values(item).flatMap((operation) => (operation.security ?? []).flatMap((req) => req.bearerAuth ?? [])),
    ),
  ),
].sort();

// ---- Handler types, derived from the generated `operations` ----

type HttpMethod = 'get' | 'put' | 'post' | 'delete' | 'patch' | 'head' | 'options' | 'trace';
type RouteOperation = { [P in keyof paths]: NonNullable<paths[P][HttpMethod & keyof paths[P]]> }[keyof paths];
/** operationIds that are HTTP routes (the top-level `webhooks` are payloads we send, not routes). */
export type RouteOperationId = {
  [K in keyof operations]: operations[K] extends RouteOperation ? K : never;
}[keyof operations];

type ContentOf<R> = R extends { content: infer C } ? C[keyof C] : undefined;
type SuccessStatus = 200 | 201 | 202 | 204;
type SuccessBody<Op> = Op extends { responses: infer R }
  ? { [S in SuccessStatus & keyof R]: ContentOf<R[S]> }[SuccessStatus & keyof R]
  : never;
type RequestBody<Op> = Op extends { requestBody: { content: { 'application/json': infer B } } }
  ? B
  : Op extends { requestBody?: never }
    ? undefined
    : Op extends { requestBody?: { content: { 'application/json': infer B } } }
      ? B | undefined
      : undefined;
type PathParams<Op> = Op extends { parameters: { path: infer P } } ? P : Record<string, never>;
type QueryParams<Op> = Op extends { parameters: { query?: infer Q } } ? NonNullable<Q> : Record<string, never>;

export type ContractRequest<Op> = FastifyRequest<{
  Body: RequestBody<Op>;
  Params: PathParams<Op>;
  Querystring: QueryParams<Op>;
}>;

/** A handler answers its operation's success body (undefined for an empty one) or throws a problem. */
export type OperationHandler<Op> = (request: ContractRequest<Op>, reply: FastifyReply) => Promise<SuccessBody<Op>>;

/** One handler per route operationId of the contract: a missing one or a wrong body fails `tsc`. */
export type ServiceHandlers = { [K in RouteOperationId]: OperationHandler<operations[K]> };
