// Configuration from environment variables, checked once at start: a bad value stops the process with one
// line that names the variable and says what it should be.
import { resolve } from 'node:path';
import ipaddr from 'ipaddr.js';
import { defaultRetrySchedule } from './delivery/retry-schedule.js';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface JwtConfig {
  /** PEM file holding the identity provider's public key (SPKI or X.509 certificate). */
  publicKeyFile?: string;
  /** JSON Web Key Set file (`{"keys":[…]}`), for providers that rotate keys. */
  jwksFile?: string;
  issuer: string;
  audience: string;
  /** Claim that names the caller's tenant. */
  tenantClaim: string;
  algorithms: string[];
}

export interface DeliveryConfig {
  /** CIDR ranges callback URLs may reach even though they are not public (e.g. 127.0.0.0/8 in development). */
  allowedCidrs: string[];
  timeoutMs: number;
  maxConcurrency: number;
  /** An attempt this long makes its webhook slow; a slow webhook's attempts are limited (slow-webhooks.ts). */
  slowAfterMs: number;
  /** Attempts in flight at most to one slow webhook; slow webhooks together hold half of maxConcurrency at most. */
  slowWebhookConcurrency: number;
  maxResponseBytes: number;
  /** Run the delivery worker inside `serve` (`webhooks-api worker` runs it alone). */
  worker: boolean;
  /** Delay before each attempt in ms; its length is the number of attempts. */
  retrySchedule: number[];
  leaseMs: number;
  pollMs: number;
  /** A webhook whose deliveries all failed for this long is disabled. */
  disableAfterMs: number;
  /** Ended deliveries (and events) older than this are deleted. */
  retentionMs: number;
}

export interface Config {
  host: string;
  port: number;
  dataDir: string;
  /** postgres://… to use PostgreSQL; absent means the embedded SQLite file in dataDir. */
  databaseUrl?: string;
  logLevel: string;
  bodyLimit: number;
  /** How long a client may take to send a whole request (headers and body); a slower one gets 408. */
  requestTimeoutMs: number;
  corsOrigins: string[];
  bootstrapKey: boolean;
  apiKeyCacheTtlMs: number;
  jwt?: JwtConfig;
  delivery: DeliveryConfig;
}

type Env = Record<string, string | undefined>;

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, not "${raw}"`);
  }
  return value;
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return fallback;
  if (['true', '1', 'yes', 'on'].includes(raw)) return true;
  if (['false', '0', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(`${name} must be true or false, not "${env[name]}"`);
}

function list(env: Env, name: string): string[] {
  return (env[name] ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
}

const units = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `250ms`, `5s`, `30m`, `2h`, `5d` (a bare number is milliseconds); undefined when it is none of these. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) return undefined;
  return Number(match[1]) * units[(match[2] ?? 'ms') as keyof typeof units];
}

function duration(env: Env, name: string, fallback: string): number {
  const raw = env[name] || fallback;
  const value = parseDuration(raw);
  if (value === undefined) throw new ConfigError(`${name} must be a duration like 500ms, 5s, 30m, 2h or 5d, not "${raw}"`);
  return value;
}

function schedule(env: Env, name: string): number[] {
  const raw = env[name];
  const items = raw ? raw.split(',').map((item) => item.trim()) : defaultRetrySchedule;
  const delays = items.map(parseDuration);
  if (delays.length === 0 || delays.length > 50 || delays.some((d) => d === undefined)) {
    throw new ConfigError(`${name} must be 1 to 50 comma-separated durations like 0s,5s,5m,2h, not "${raw}"`);
  }
  return delays as number[];
}

function cidrs(env: Env, name: string): string[] {
  const ranges = list(env, name);
  for (const range of ranges) {
    try {
      ipaddr.parseCIDR(range);
    } catch {
      throw new ConfigError(`${name} must list CIDR ranges like 127.0.0.0/8 or ::1/128, not "${range}"`);
    }
  }
  return ranges;
}

function jwtConfig(env: Env): JwtConfig | undefined {
  const publicKeyFile = env.JWT_PUBLIC_KEY_FILE || undefined;
  const jwksFile = env.JWT_JWKS_FILE || undefined;
  if (!publicKeyFile && !jwksFile) {
    for (const name of ['JWT_ISSUER', 'JWT_AUDIENCE', 'JWT_TENANT_CLAIM']) {
      if (env[name]) throw new ConfigError(`${name} is set but neither JWT_PUBLIC_KEY_FILE nor JWT_JWKS_FILE is`);
    }
    return undefined;
  }
  if (publicKeyFile && jwksFile) throw new ConfigError('set JWT_PUBLIC_KEY_FILE or JWT_JWKS_FILE, not both');
  const issuer = env.JWT_ISSUER;
  const audience = env.JWT_AUDIENCE;
  if (!issuer) throw new ConfigError('JWT_ISSUER is required when JWT verification is configured');
  if (!audience) throw new ConfigError('JWT_AUDIENCE is required when JWT verification is configured');
  return {
    ...(publicKeyFile ? { publicKeyFile: resolve(publicKeyFile) } : {}),
    ...(jwksFile ? { jwksFile: resolve(jwksFile) } : {}),
    issuer,
    audience,
    tenantClaim: env.JWT_TENANT_CLAIM || 'tenant_id',
    algorithms: list(env, 'JWT_ALGORITHMS').length > 0 ? list(env, 'JWT_ALGORITHMS') : ['RS256', 'ES256', 'EdDSA'],
  };
}

export function loadConfig(env: Env = process.env): Config {
  const databaseUrl = env.DATABASE_URL || undefined;
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL must be a postgres:// URL (leave it unset for the embedded SQLite store)');
  }
  const logLevel = env.LOG_LEVEL || 'info';
  if (!logLevels.includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of ${logLevels.join(', ')}, not "${logLevel}"`);
  }
  for (const origin of list(env, 'CORS_ORIGINS')) {
    if (origin !== '*' && !/^https?:\/\/[^/]+$/.test(origin)) {
      throw new ConfigError(`CORS_ORIGINS must list origins like https://app.example.com, not "${origin}"`);
    }
  }
  const jwt = jwtConfig(env);
  const timeoutMs = integer(env, 'DELIVERY_TIMEOUT_MS', 10_000, 100, 120_000);
  if (duration(env, 'DELIVERY_LEASE', '60s') <= timeoutMs) {
    throw new ConfigError('DELIVERY_LEASE must be longer than DELIVERY_TIMEOUT_MS, or a slow attempt is sent twice');
  }
  const slowAfterMs = duration(env, 'DELIVERY_SLOW_AFTER', `${Math.round(timeoutMs / 5)}ms`);
  if (slowAfterMs < 1 || slowAfterMs >= timeoutMs) {
    throw new ConfigError(
      `DELIVERY_SLOW_AFTER must be from 1ms to less than DELIVERY_TIMEOUT_MS (${timeoutMs}ms), ` +
        `not "${env.DELIVERY_SLOW_AFTER}"`,
    );
  }
  const retentionMs = duration(env, 'DELIVERY_RETENTION', '30d');
  if (retentionMs < 1_000 || retentionMs > 3650 * 86_400_000) {
    throw new ConfigError(`DELIVERY_RETENTION must be from 1s to 3650d, not "${env.DELIVERY_RETENTION}"`);
  }
  return {
    host: env.HOST || '127.0.0.1',
    port: integer(env, 'PORT', 3000, 0, 65535),
    dataDir: resolve(env.DATA_DIR || 'data'),
    ...(databaseUrl ? { databaseUrl } : {}),
    logLevel,
    bodyLimit: integer(env, 'BODY_LIMIT_BYTES', 1_048_576, 1024, 100 * 1_048_576),
    requestTimeoutMs: integer(env, 'REQUEST_TIMEOUT_MS', 30_000, 1_000, 600_000),
    corsOrigins: list(env, 'CORS_ORIGINS'),
    bootstrapKey: boolean(env, 'WEBHOOKS_BOOTSTRAP_KEY', true),
    apiKeyCacheTtlMs: integer(env, 'API_KEY_CACHE_TTL_MS', 5_000, 0, 60_000),
    ...(jwt ? { jwt } : {}),
    delivery: {
      allowedCidrs: cidrs(env, 'CALLBACK_ALLOWED_CIDRS'),
      timeoutMs,
      maxConcurrency: integer(env, 'DELIVERY_MAX_CONCURRENCY', 50, 1, 10_000),
      slowAfterMs,
      slowWebhookConcurrency: integer(env, 'DELIVERY_SLOW_WEBHOOK_CONCURRENCY', 5, 1, 10_000),
      maxResponseBytes: integer(env, 'DELIVERY_MAX_RESPONSE_BYTES', 65_536, 0, 10 * 1_048_576),
      worker: boolean(env, 'DELIVERY_WORKER', true),
      retrySchedule: schedule(env, 'DELIVERY_RETRY_SCHEDULE'),
      leaseMs: duration(env, 'DELIVERY_LEASE', '60s'),
      pollMs: duration(env, 'DELIVERY_POLL_INTERVAL', '250ms'),
      disableAfterMs: duration(env, 'WEBHOOK_DISABLE_AFTER', '5d'),
      retentionMs,
    },
  };
}
