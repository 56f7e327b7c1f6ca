// Verifies JWT bearer tokens from the identity provider with jose: signature (public key or JWKS file), issuer,
// audience, expiry. Permissions come from a `permissions` array claim and/or a space-separated `scope` claim.
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, type JWTPayload, jwtVerify } from 'jose';
import type { JwtConfig } from '../config.js';
import type { Principal } from './principal.js';

export type JwtVerifier = (token: string) => Promise<Principal | undefined>;

function permissionsOf(payload: JWTPayload): string[] {
  const fromArray = Array.isArray(payload.permissions)
    ? payload.permissions.filter((p): p is string => typeof p === 'string')
    : [];
  const fromScope = typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : [];
  return [...new Set([...fromArray, ...fromScope])];
}

export function createJwtVerifier(config: JwtConfig): JwtVerifier {
  const key = config.jwksFile
    ? createLocalJWKSet(JSON.parse(readFileSync(config.jwksFile, 'utf8')))
    : createPublicKey(readFileSync(config.publicKeyFile!, 'utf8'));
  // A token without `exp` would be valid forever; clocks of the provider and this host may differ a little.
  const options = {
    issuer: config.issuer,
    audience: config.audience,
    algorithms: config.algorithms,
    requiredClaims: ['exp'],
    clockTolerance: 30,
  };

  return async (token) => {
    try {
      // Two calls because jose types the key set and the single key as separate overloads.
      const { payload } = typeof key === 'function' ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options);
      const tenant = payload[config.tenantClaim];
      if (typeof tenant !== 'string' || tenant === '') return undefined;
      return {
        tenant,
        permissions: permissionsOf(payload),
        credential: { kind: 'jwt', ...(payload.sub ? { subject: payload.sub } : {}) },
      };
    } catch {
      return undefined;
    }
  };
}
