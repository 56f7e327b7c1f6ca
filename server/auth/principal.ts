import type { FastifyRequest } from 'fastify';

/** Who is calling: the tenant whose webhooks they reach and the permissions they hold. */
export interface Principal {
  tenant: string;
  permissions: readonly string[];
  /** How they proved it, for logs: an API key id or a JWT subject. */
  credential: { kind: 'api-key'; keyId: string } | { kind: 'jwt'; subject?: string };
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the bearer auth of the contract's security requirement; null on routes without one. */
    principal: Principal | null;
  }
}

/** The caller's tenant; every handler behind the contract's bearerAuth has one. */
export function tenantOf(request: FastifyRequest): string {
  // The security handler runs before every handler here; a missing principal is a wiring bug, not a 401.
  if (!request.principal) throw new Error('handler reached without an authenticated principal');
  return request.principal.tenant;
}
