// Keeps slow receivers from taking every delivery slot. The worker has DELIVERY_MAX_CONCURRENCY attempts in flight
// at most; without a limit per webhook, one receiver that hangs until the timeout, with a backlog of deliveries,
// would hold every slot for DELIVERY_TIMEOUT_MS at a time and all other tenants' deliveries would wait behind it.
//
// A webhook counts as slow while its last finished attempt took `slowAfterMs` or longer (a timeout always does), or
// while one of its attempts has been in flight that long. A slow webhook may have `perWebhook` attempts in flight,
// and slow webhooks together `total`; the rest of the slots stay free for the others. A fast webhook has no limit of
// its own: its attempts give their slots back soon. One fast attempt makes a slow webhook fast again; one it has not
// tried for `forgetAfterMs` is forgotten.
//
// In memory, per worker process: with several workers (PostgreSQL) each applies the limits to its own attempts.
// What the worker does with a delivery it may not send now is its own business (it postpones it: worker.ts).

export interface SlowWebhookLimits {
  /** An attempt that takes this long, or has been in flight this long, makes its webhook slow. */
  slowAfterMs: number;
  /** Attempts in flight at most to one slow webhook. */
  perWebhook: number;
  /** Attempts in flight at most to all slow webhooks together. */
  total: number;
  /** A slow webhook with no attempt finished for this long counts as fast again. */
  forgetAfterMs: number;
}

export class SlowWebhooks {
  /** Start times of the attempts in flight, oldest first, by webhook; only webhooks with attempts in flight. */
  private readonly inFlight = new Map<string, number[]>();
  /** Until when a webhook counts as slow after a slow attempt, by webhook. */
  private readonly slowUntil = new Map<string, number>();
  private lastSweep = 0;

  constructor(private readonly limits: SlowWebhookLimits) {}

  /**
   * Whether an attempt to this webhook may start now; if it may, it is counted as started at `now` until
   * `finished` is called with the same `now`.
   */
  admit(webhookId: string, now: number): boolean {
    const started = this.inFlight.get(webhookId);
    if (this.isSlow(webhookId, now)) {
      if ((started?.length ?? 0) >= this.limits.perWebhook) return false;
      if (this.slowInFlight(now) >= this.limits.total) return false;
    }
    if (started) started.push(now);
    else this.inFlight.set(webhookId, [now]);
    return true;
  }

  /** An attempt admitted at `startedAt` has ended: its slot is free, and how long it took classifies its webhook. */
  finished(webhookId: string, startedAt: number, now: number): void {
    const started = this.inFlight.get(webhookId);
    const at = started?.indexOf(startedAt) ?? -1;
    if (started && at >= 0) {
      started.splice(at, 1);
      if (started.length === 0) this.inFlight.delete(webhookId);
    }
    if (now - startedAt >= this.limits.slowAfterMs) this.slowUntil.set(webhookId, now + this.limits.forgetAfterMs);
    else this.slowUntil.delete(webhookId);
    this.sweep(now);
  }

  isSlow(webhookId: string, now: number): boolean {
    if ((this.slowUntil.get(webhookId) ?? 0) > now) return true;
    const oldest = this.inFlight.get(webhookId)?.[0];
    return oldest !== undefined && now - oldest >= this.limits.slowAfterMs;
  }

  /** Attempts in flight to webhooks that are slow now: at most the worker's in-flight limit to add up. */
  private slowInFlight(now: number): number {
    let count = 0;
    for (const [webhookId, started] of this.inFlight) if (this.isSlow(webhookId, now)) count += started.length;
    return count;
  }

  /** Forgets the slow webhooks whose time ran out, once per `forgetAfterMs`, so the map does not only grow. */
  private sweep(now: number): void {
    if (now - this.lastSweep < this.limits.forgetAfterMs) return;
    this.lastSweep = now;
    for (const [webhookId, until] of this.slowUntil) if (until <= now) this.slowUntil.delete(webhookId);
  }
}
