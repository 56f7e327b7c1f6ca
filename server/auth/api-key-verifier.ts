// Checks `whk_…` tokens against the store without a store round trip on every request: answers are cached for a
// short time (API_KEY_CACHE_TTL_MS, 5 s by default), which is also how long a revocation may take to bite.
import { type ApiKeyStore, hashToken } from '../store/api-keys.js';
import type { Principal } from './principal.js';

interface CacheEntry {
  principal: Principal | undefined;
  expiresAt?: number;
  cachedUntil: number;
}

export type ApiKeyVerifier = (token: string) => Promise<Principal | undefined>;

export function createApiKeyVerifier(store: ApiKeyStore, ttlMs: number, maxEntries = 10_000): ApiKeyVerifier {
  // Keyed by the token's hash so raw tokens never sit in memory longer than a request.
  const cache = new Map<string, CacheEntry>();

  async function load(tokenHash: string): Promise<CacheEntry> {
    const key = await store.findByTokenHash(tokenHash);
    const usable = key && !key.revokedAt;
    return {
      principal: usable
        ? { tenant: key.tenant, permissions: key.permissions, credential: { kind: 'api-key', keyId: key.id } }
        : undefined,
      ...(usable && key.expiresAt ? { expiresAt: Date.parse(key.expiresAt) } : {}),
      cachedUntil: Date.now() + ttlMs,
    };
  }

  return async (token) => {
    const hash = hashToken(token);
    let entry = cache.get(hash);
    if (!entry || entry.cachedUntil <= Date.now()) {
      entry = await load(hash);
      cache.delete(hash);
      if (ttlMs > 0) {
        // Map keeps insertion order, so the first key is the oldest: a cheap bound on memory.
        if (cache.size >= maxEntries) cache.delete(cache.keys().next().value as string);
        cache.set(hash, entry);
      }
    }
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) return undefined;
    return entry.principal;
  };
}
