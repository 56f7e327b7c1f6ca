// Keeps slow receivers from taking every delivery slot. The worker has DELIVERY_MAX_CONCURRENCY attempts in flight
// at most; without a limit per webhook, one receiver that hangs until the timeout, with a backlog of deliveries,
// would hold every slot for DELIVERY_TIMEOUT_MS at a time and all other tenants' deliveries would wait behind it.
//
// A webhook is limited from its first slow attempt on: one that took `slowAfterMs` or longer (a timeout always
// does), or one that has been in flight that long. Its limit then starts at `perWebhook` attempts in flight and
// grows by one with each attempt that answers sooner, the way TCP opens its window again after a loss (additive
// increase, multiplicative decrease): a receiver that has recovered, or that had one slow moment, is soon unlimited
// again (past `total`), while one that hangs on some requests and answers others falls back to `perWebhook` at every
// slow one. Limited webhooks together have `total` attempts in flight at most, so the rest of the slots stay free for
// the others. An unlimited webhook's attempts give their slots back soon; a limited one with no attempt finished and
// none held back for `forgetAfterMs` is forgotten.
//
// A delivery a limited webhook may not take now is postponed by the worker; `nextSlot` paces those of one webhook at
// the rate it answers (its last slow attempt's time over its limit), in the order they come, so they come due about
// when the webhook has room for them, up to `horizonMs` ahead. Beyond that they are spread over a time after the
// horizon as long as each has waited (`horizonMs` at least, `spreadAtMostMs` at most) and paced when they come due
// again: a backlog that stays slow for hours is looked at less and less often, so its cost does not grow with it.
//
// In memory, per worker process: with several workers (PostgreSQL) each applies the limits to its own attempts.

export interface SlowWebhookLimits {
  /** An attempt that takes this long, or has been in flight this long, limits its webhook. */
  slowAfterMs: number;
  /** Attempts in flight to a webhook just found slow; one more for each attempt that answers faster. */
  perWebhook: number;
  /** Attempts in flight at most to all limited webhooks together; a limit that grows past it is lifted. */
  total: number;
  /** A limited webhook with no attempt finished and none held back for this long is no longer limited. */
  forgetAfterMs: number;
  /** How far ahead a postponed delivery is paced at most. */
  horizonMs: number;
  /** Beyond the horizon, a delivery is spread over at most this long. */
  spreadAtMostMs: number;
}

/** A webhook became limited (with how long the attempt that showed it took) or had its limit lifted. */
export type LimitChange =
  | { webhookId: string; limited: true; perWebhook: number; slowMs: number }
  | { webhookId: string; limited: false };

interface Limit {
  /** Attempts in flight allowed now. */
  inFlight: number;
  /** How long its last slow attempt took (or had been in flight). */
  slowMs: number;
  /** The paced time given to the last delivery postponed. */
  nextSlot: number;
  /** Forgotten after this time unless another attempt finishes. */
  expires: number;
}

export class SlowWebhooks {
  /** Start times of the attempts in flight, oldest first, by webhook; only webhooks with attempts in flight. */
  private readonly inFlight = new Map<string, number[]>();
  /** The limited webhooks. */
  private readonly limits = new Map<string, Limit>();
  private lastSweep = 0;

  constructor(
    private readonly options: SlowWebhookLimits,
    /** Told when a webhook becomes limited and when its limit is lifted (not when it is forgotten). */
    private readonly onChange: (change: LimitChange) => void = () => {},
  ) {}

  /**
   * Whether an attempt to this webhook may start now; if it may, it is counted as started at `now` until
   * `finished` is called with the same `now`.
   */
  admit(webhookId: string, now: number): boolean {
    const started = this.inFlight.get(webhookId);
    const limit = this.limitOf(webhookId, now);
    if (limit) {
      const full = (started?.length ?? 0) >= limit.inFlight || this.limitedInFlight(now) >= this.options.total;
      if (full) {
        // Still in use: a webhook whose deliveries are all postponed (the limited ones' share taken by others)
        // must not be forgotten, and so let loose, for want of a finished attempt.
        limit.expires = now + this.options.forgetAfterMs;
        return false;
      }
    }
    if (started) started.push(now);
    else this.inFlight.set(webhookId, [now]);
    return true;
  }

  /**
   * An attempt admitted at `startedAt` has ended after `tookMs` (the receiver's time, without any wait before it
   * went out): its slot is free, and how long it took moves its webhook's limit.
   */
  finished(webhookId: string, startedAt: number, now: number, tookMs = now - startedAt): void {
    const started = this.inFlight.get(webhookId);
    const at = started?.indexOf(startedAt) ?? -1;
    if (started && at >= 0) {
      started.splice(at, 1);
      if (started.length === 0) this.inFlight.delete(webhookId);
    }
    const limit = this.limits.get(webhookId);
    if (tookMs >= this.options.slowAfterMs) this.limitNow(webhookId, tookMs, now);
    else if (limit) {
      limit.inFlight += 1;
      limit.expires = now + this.options.forgetAfterMs;
      if (limit.inFlight > this.options.total) {
        this.limits.delete(webhookId);
        this.onChange({ webhookId, limited: false });
      }
    }
    this.sweep(now);
  }

  /** Attempts in flight this webhook may have now; undefined when it is not limited. */
  limitFor(webhookId: string, now: number): number | undefined {
    return this.limitOf(webhookId, now)?.inFlight;
  }

  /**
   * When a delivery of this (limited) webhook that may not go out now, and has waited `waitedMs` since it was
   * created, should come due again.
   */
  nextSlot(webhookId: string, now: number, waitedMs = 0, random = Math.random()): number {
    const limit = this.limitOf(webhookId, now) ?? this.limitNow(webhookId, this.options.slowAfterMs, now);
    const spacing = Math.max(1, Math.round(limit.slowMs / limit.inFlight));
    const slot = Math.max(limit.nextSlot, now) + spacing;
    if (slot - now <= this.options.horizonMs) {
      limit.nextSlot = slot;
      return slot;
    }
    const { horizonMs, spreadAtMostMs } = this.options;
    return now + horizonMs + Math.round(random * Math.min(spreadAtMostMs, Math.max(horizonMs, waitedMs)));
  }

  /**
   * Its limit, if it has one; an attempt of it in flight for `slowAfterMs` counts as a slow one already (a limit
   * that had grown falls back while it hangs).
   */
  private limitOf(webhookId: string, now: number): Limit | undefined {
    let limit = this.limits.get(webhookId);
    if (limit && limit.expires <= now) {
      this.limits.delete(webhookId);
      limit = undefined;
    }
    const oldest = this.inFlight.get(webhookId)?.[0];
    const hanging = oldest !== undefined && now - oldest >= this.options.slowAfterMs;
    if (hanging && (!limit || limit.inFlight > this.options.perWebhook)) {
      return this.limitNow(webhookId, now - oldest, now);
    }
    return limit;
  }

  /** A slow attempt: the webhook's limit falls back to `perWebhook` (its pacing of postponed deliveries stays). */
  private limitNow(webhookId: string, slowMs: number, now: number): Limit {
    const before = this.limits.get(webhookId);
    const limit = {
      inFlight: this.options.perWebhook,
      slowMs,
      nextSlot: before?.nextSlot ?? now,
      expires: now + this.options.forgetAfterMs,
    };
    this.limits.set(webhookId, limit);
    if (!before) this.onChange({ webhookId, limited: true, perWebhook: limit.inFlight, slowMs });
    return limit;
  }

  /** Attempts in flight to limited webhooks: at most the worker's in-flight limit of them to add up. */
  private limitedInFlight(now: number): number {
    let count = 0;
    for (const [webhookId, started] of this.inFlight) if (this.limitOf(webhookId, now)) count += started.length;
    return count;
  }

  /** Forgets the limits whose time ran out, once per `forgetAfterMs`, so the map does not only grow. */
  private sweep(now: number): void {
    if (now - this.lastSweep < this.options.forgetAfterMs) return;
    this.lastSweep = now;
    for (const [webhookId, limit] of this.limits) if (limit.expires <= now) this.limits.delete(webhookId);
  }
}
