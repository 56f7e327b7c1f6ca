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
