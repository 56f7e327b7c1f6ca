// Authentication behind the contract's `bearerAuth` scheme. Two strategies, API keys and JWTs, are composed with
// @fastify/auth (the first that accepts the token wins); the permission an operation needs is the scope in its
// security requirement, which fastify-openapi-glue hands to the security handler below. No second list in code.
import { promisify } from 'node:util';
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { apiKeyPrefix } from '../store/api-keys.js';
import { invalidCredentials, missingCredentials, missingPermission } from '../http/problems.js';
import type { ApiKeyVerifier } from './api-key-verifier.js';
import type { JwtVerifier } from './jwt-verifier.js';
import type { Principal } from './principal.js';

export function bearerToken(request: FastifyRequest): string | undefined {
  const match = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? '');
  return match?.[1];
}

type Strategy = (request: FastifyRequest) => Promise<void>;

/**
 * @fastify/auth reports only the last strategy's error, so a store failure in the API-key strategy would come
 * out as the JWT strategy's "not valid". Failures that are not answers about the token are kept here instead.
 */
const unexpectedFailures = new WeakMap<FastifyRequest, unknown>();

function strategy(accepts: (token: string) => boolean, verify: (token: string) => Promise<Principal | undefined>) {
  const run: Strategy = async (request) => {
    const token = bearerToken(request);
    if (!token) throw missingCredentials();
    let principal: Principal | undefined;
    try {
      principal = accepts(token) ? await verify(token) : undefined;
    } catch (error) {
      unexpectedFailures.set(request, error);
      throw error;
    }
    // One answer for every kind of bad token, so callers cannot probe which check failed.
    if (!principal) throw invalidCredentials();
    request.principal = principal;
  };
  return run;
}

export interface BearerAuthOptions {
  apiKeys: ApiKeyVerifier;
  jwt?: JwtVerifier;
}

export function createSecurityHandlers(app: FastifyInstance, options: BearerAuthOptions) {
  const strategies = [strategy((token) => token.startsWith(apiKeyPrefix), options.apiKeys)];
  if (options.jwt) strategies.push(strategy((token) => !token.startsWith(apiKeyPrefix), options.jwt));
  const authenticate = promisify(app.auth(strategies, { relation: 'or' })) as (
    request: FastifyRequest,
    reply: FastifyReply,
  ) => Promise<void>;

  return {
    async bearerAuth(request: FastifyRequest, reply: FastifyReply, scopes: string[]) {
      try {
        await authenticate(request, reply);
      } catch (error) {
        // A broken store is a 500 (logged), not a 401 that would make a client throw away a good key.
        throw unexpectedFailures.get(request) ?? error;
      }
      const held = request.principal?.permissions ?? [];
      const missing = scopes.filter((scope) => !held.includes(scope));
      if (missing.length > 0) throw missingPermission(missing);
    },
  };
}

/**
 * fastify-openapi-glue runs an operation's security handler as the route's `preHandler`, after Fastify has read,
 * parsed and validated the request: a caller without a valid token got a 400 that described the contract's schema
 * (where the Prism mock, and Stripe or GitHub, answer 401), and made the service parse its body. This moves it to
 * the route's `onRequest`, before the body is read: who may call is decided first, then whether the call is valid.
 * Call it in the scope that registers the glue plugin, and nothing else: every route added in that scope after it,
 * HEAD routes included, is changed.
 */
export function authenticateBeforeParsing(app: FastifyInstance): void {
  app.addHook('onRoute', (route: RouteOptions) => {
    if (route.preHandler === undefined) return;
    const onRequest = route.onRequest === undefined ? [] : [route.onRequest].flat();
    route.onRequest = [...onRequest, ...[route.preHandler].flat()] as RouteOptions['onRequest'];
    delete route.preHandler;
  });
}
