// Bounds how many deliveries are in flight at once, so a burst of events cannot open thousands of sockets;
// the rest wait their turn in arrival order.

export interface ConcurrencyGate {
  /** Runs `task` once fewer than the limit are running; tasks wait in FIFO order. */
  run<T>(task: () => Promise<T>): Promise<T>;
  /** Tasks running now and waiting now, for metrics and tests. */
  readonly running: number;
  readonly waiting: number;
}

export function createConcurrencyGate(limit: number): ConcurrencyGate {
  if (!Number.isInteger(limit) || limit < 1) {
    throw new Error(`concurrency limit must be a positive integer, not ${limit}`);
  }
  let running = 0;
  const queue: Array<() => void> = [];

  const acquire = (): Promise<void> => {
    if (running < limit) {
      running += 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => queue.push(resolve));
  };

  const release = () => {
    const next = queue.shift();
    // The slot passes straight to the next waiter, so `running` only drops when nobody waits.
    if (next) next();
    else running -= 1;
  };

  return {
    async run(task) {
      await acquire();
      try {
        return await task();
      } finally {
        release();
      }
    },
    get running() {
      return running;
    },
    get waiting() {
      return queue.length;
    },
  };
}
