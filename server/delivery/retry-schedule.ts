// When the next attempt of a failed delivery is due. The schedule lists the delay before each attempt (the first
// is normally 0: at once); after the last one fails, the delivery has failed. Jitter spreads the retries of many
// deliveries that failed together, and a receiver's Retry-After pushes the next attempt back, never forward.

export const defaultRetrySchedule = ['0s', '5s', '5m', '30m', '2h', '5h', '10h', '10h'];

/** Retry-After is honoured up to this long; a receiver cannot park a delivery for weeks. */
const maxRetryAfterMs = 24 * 3_600_000;

export type NextAttempt = { status: 'pending'; nextAttemptAt: Date } | { status: 'failed' };

export function nextAttempt(
  schedule: readonly number[],
  attemptsMade: number,
  now: Date,
  retryAfterMs?: number,
  random: () => number = Math.random,
): NextAttempt {
  const delay = schedule[attemptsMade];
  if (delay === undefined) return { status: 'failed' };
  const jittered = delay * (0.9 + 0.2 * random()); // ±10 %
  const wait = Math.max(jittered, Math.min(retryAfterMs ?? 0, maxRetryAfterMs));
  return { status: 'pending', nextAttemptAt: new Date(now.getTime() + wait) };
}

const durationUnits: [ms: number, singular: string][] = [
  [86_400_000, 'day'],
  [3_600_000, 'hour'],
  [60_000, 'minute'],
  [1_000, 'second'],
];

/** `5 days`, `2 hours`, `300 ms`: the largest whole unit, for sentences people read. */
export function formatDuration(ms: number): string {
  for (const [size, unit] of durationUnits) {
    if (ms >= size && ms % size === 0) return `${ms / size} ${unit}${ms === size ? '' : 's'}`;
  }
  return `${ms} ms`;
}
