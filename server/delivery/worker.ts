// The delivery worker: leases due deliveries from the store (the deliveries table is the queue), sends them
// signed through the guarded sender, and records each outcome. At least once: a worker that dies mid-delivery
// loses its lease, and another worker (or this process after a restart) sends the message again with the same
// webhook-id. Order between deliveries is not kept. A slow receiver holds a few of the worker's slots at most
// (slow-webhooks.ts); its other due deliveries are postponed, unsent, rather than waiting in a slot. It also prunes
// the delivery log past its retention, on a timer.
import type { FastifyBaseLogger } from 'fastify';
import type { ClaimedDelivery, CompletedAttempt, DeliveryStore } from '../store/deliveries.js';
import type { PrunedRows } from '../store/retention.js';
import { signingSecrets, type WebhookRecord, type WebhookStore } from '../store/webhooks.js';
import type { HttpSender } from './http-sender.js';
import { formatDuration, nextAttempt } from './retry-schedule.js';
import { signPayload } from './signature.js';
import { type SlowWebhookLimits, SlowWebhooks } from './slow-webhooks.js';

export interface WorkerOptions {
  deliveries: DeliveryStore;
  webhooks: WebhookStore;
  sender: HttpSender;
  /** Delay before each attempt, in ms; its length is the number of attempts. */
  retrySchedule: readonly number[];
  /** How long a claim lasts; longer than one attempt can take. */
  leaseMs: number;
  /** How often to look for due deliveries when nothing wakes the worker sooner. */
  pollMs: number;
  /** Deliveries in flight at most. */
  maxInFlight: number;
  /** The limits on slow webhooks' attempts (slow-webhooks.ts). */
  slowWebhooks: SlowWebhookLimits;
  disableAfterMs: number;
  /** Deletes what has outlived the log's retention; run every `everyMs`, first at start, stopped by `signal`. */
  prune?: { everyMs: number; run: (signal: AbortSignal) => Promise<PrunedRows> };
  log: FastifyBaseLogger;
}

/** Outcomes are written in batches: one transaction (one disk sync) for many deliveries. */
const flushEveryMs = 20;
const flushAtCount = 200;

export class DeliveryWorker {
  private running = false;
  private loop?: Promise<void>;
  private inFlight = 0;
  private pending: CompletedAttempt[] = [];
  /** The chain of outcome writes: one at a time, and stop() can wait for all of them. */
  private flushing: Promise<void> = Promise.resolve();
  private flushTimer?: NodeJS.Timeout;
  private wake?: () => void;
  /** notify() was called since the current claim began: that claim may have read the queue before the publish. */
  private notified = false;
  private pruneTimer?: NodeJS.Timeout;
  private pruning: Promise<void> = Promise.resolve();
  /** Aborted by stop(): a pass of pruning ends after the chunk it is in. */
  private pruneStop = new AbortController();

  private readonly autoDisable: { afterMs: number; reason: string };
  private readonly slow: SlowWebhooks;

  constructor(private readonly options: WorkerOptions) {
    this.slow = new SlowWebhooks(options.slowWebhooks, (change) => {
      // Once per webhook that becomes slow, and once when it is fast again: what an operator asks "why is this
      // customer's webhook behind?" about.
      if (change.limited) {
        options.log.warn(
          { webhookId: change.webhookId, slowMs: change.slowMs, inFlight: change.perWebhook },
          'slow receiver: its deliveries are limited and the rest postponed',
        );
      } else options.log.info({ webhookId: change.webhookId }, 'receiver answers in time again: its limit is lifted');
    });
    this.autoDisable = {
      afterMs: options.disableAfterMs,
      reason: `Every delivery failed for ${formatDuration(options.disableAfterMs)} without a success.`,
    };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
    this.pruneStop = new AbortController();
    this.schedulePrune(0);
  }

  /** Tells the worker that deliveries may be due now (a publish or a retry in this process). */
  notify(): void {
    this.notified = true;
    this.wake?.();
  }

  /** Stops claiming, waits for deliveries in flight and records them. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearTimeout(this.pruneTimer);
    this.pruneStop.abort();
    this.wake?.();
    await this.loop;
    await this.pruning;
    while (this.inFlight > 0) await new Promise<void>((resolve) => (this.wake = resolve));
    await this.flush();
  }

  private async run(): Promise<void> {
    const { deliveries, leaseMs, maxInFlight, pollMs, log } = this.options;
    while (this.running) {
      let claimed: ClaimedDelivery[] = [];
      let claimFailed = false;
      const room = maxInFlight - this.inFlight;
      // Whatever was published before this claim begins, the claim sees.
      this.notified = false;
      if (room > 0) {
        try {
          claimed = await deliveries.claimDue(room, leaseMs);
        } catch (error) {
          claimFailed = true;
          log.error({ err: error }, 'delivery worker could not claim deliveries; retrying');
        }
        if (claimed.length > 0) this.dispatch(claimed);
      }
      // Told of a publish while claiming, with room: look again at once (the claim may have read the queue before
      // that publish committed); so too after a full batch with room left. Otherwise wait for a wake-up or the poll.
      const lookAgain = room > 0 && !claimFailed && this.inFlight < maxInFlight && this.notified;
      if (!lookAgain && (claimed.length === 0 || claimed.length < room || this.inFlight >= maxInFlight)) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, pollMs);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = undefined;
      }
    }
  }

  private schedulePrune(delayMs: number): void {
    const { prune, log } = this.options;
    if (!prune) return;
    const stopped = this.pruneStop.signal;
    this.pruneTimer = setTimeout(() => {
      if (stopped.aborted) return;
      this.pruning = prune
        .run(stopped)
        .then(
          (pruned) => {
            if (pruned.deliveries > 0 || pruned.events > 0) log.info({ pruned }, 'pruned the delivery log');
          },
          (error: unknown) => log.error({ err: error }, 'could not prune the delivery log; trying again later'),
        )
        .finally(() => {
          if (!stopped.aborted) this.schedulePrune(prune.everyMs);
        });
    }, delayMs);
    // A timer of its own never keeps the process alive.
    this.pruneTimer.unref();
  }

  private dispatch(claimed: ClaimedDelivery[]): void {
    // Counted from the claim on, so the loop never holds more than maxInFlight leases.
    this.inFlight += claimed.length;
    void this.options.webhooks.getMany(claimed.map((delivery) => delivery.webhook_id)).then(
      (webhooks) => {
        const now = Date.now();
        const held: ClaimedDelivery[] = [];
        for (const delivery of claimed) {
          const webhook = webhooks.get(delivery.webhook_id);
          // Deleted since it was claimed: its deliveries went with it (cascade), nothing to do.
          if (!webhook) this.finished();
          else if (this.slow.admit(webhook.id, now)) void this.deliver(delivery, webhook, now);
          else held.push(delivery);
        }
        if (held.length > 0) this.postpone(held, now);
      },
      (error: unknown) => {
        // The leases run out and the deliveries are claimed again.
        this.options.log.error({ err: error }, 'delivery worker could not load webhooks');
        for (let i = 0; i < claimed.length; i++) this.finished();
      },
    );
  }

  private finished(): void {
    this.inFlight--;
    this.wake?.();
  }

  /**
   * Gives slow webhooks' deliveries back to the queue, unsent, each due again when its webhook should have room
   * (slow-webhooks.ts paces them); their slots are free once that is written.
   */
  private postpone(held: ClaimedDelivery[], now: number): void {
    const items = held.map((delivery) => {
      // A created_at that does not parse (a row written by hand) counts as new, rather than failing the batch.
      const waitedMs = now - Date.parse(delivery.created_at) || 0;
      return { delivery, until: new Date(this.slow.nextSlot(delivery.webhook_id, now, waitedMs)) };
    });
    void this.options.deliveries
      .postpone(items)
      // Not written: the leases run out and the deliveries are claimed again.
      .catch((error: unknown) => this.options.log.error({ err: error }, 'could not postpone deliveries'))
      .finally(() => {
        for (let i = 0; i < held.length; i++) this.finished();
      });
  }

  private async deliver(delivery: ClaimedDelivery, webhook: WebhookRecord, admittedAt: number) {
    let tookMs: number | undefined;
    try {
      const attemptedAt = new Date();
      const timestamp = Math.floor(attemptedAt.getTime() / 1000);
      const result = await this.options.sender.send({
        url: webhook.callbackUrl,
        headers: {
          ...webhook.headers,
          'webhook-id': delivery.message_id,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': signPayload({
            secrets: signingSecrets(webhook, attemptedAt),
            messageId: delivery.message_id,
            timestamp,
            body: delivery.payload,
          }),
        },
        body: delivery.payload,
      });
      tookMs = result.durationMs;
      const gone = result.responseStatus === 410;
      const next = result.ok
        ? ({ status: 'succeeded' } as const)
        : gone
          ? ({ status: 'failed' } as const)
          : nextAttempt(this.options.retrySchedule, delivery.attempt_count + 1, new Date(), result.retryAfterMs);
      this.pending.push({
        delivery,
        attemptedAt,
        result,
        next,
        ...(gone ? { disableWebhook: 'The receiver answered 410 Gone.' } : {}),
      });
      this.scheduleFlush();
    } catch (error) {
      this.options.log.error({ err: error, deliveryId: delivery.id }, 'delivery attempt failed unexpectedly');
    } finally {
      this.slow.finished(webhook.id, admittedAt, Date.now(), tookMs);
      this.finished();
    }
  }

  private scheduleFlush(): void {
    if (this.pending.length >= flushAtCount) void this.flush();
    else this.flushTimer ??= setTimeout(() => void this.flush(), flushEveryMs);
  }

  private flush(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return this.flushing;
    this.flushing = this.flushing.then(() =>
      this.options.deliveries
        .complete(batch, this.autoDisable)
        .catch((error: unknown) => {
          // Their leases run out and they are sent again: at least once still holds.
          // Part of a batch may have been recorded: its AggregateError holds one error per outcome that was not.
          const count = error instanceof AggregateError ? error.errors.length : batch.length;
          this.options.log.error({ err: error, count, of: batch.length }, 'could not record delivery outcomes');
        }),
    );
    return this.flushing;
  }
}
