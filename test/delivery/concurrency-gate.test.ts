// The gate in isolation: tasks are promises the test settles by hand, so order and counts are exact.
import { describe, expect, it } from 'vitest';
import { createConcurrencyGate } from '../../server/delivery/concurrency-gate.js';

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((settle) => {
    resolve = settle;
  });
  return { promise, resolve };
}

describe('the concurrency gate', () => {
  it('runs at most `limit` tasks and starts the waiting ones in arrival order', async () => {
    const gate = createConcurrencyGate(2);
    const tasks = Array.from({ length: 5 }, deferred);
    const started: number[] = [];
    const runs = tasks.map((task, index) =>
      gate.run(async () => {
        started.push(index);
        await task.promise;
        return index;
      }),
    );
    await Promise.resolve();
    expect(started).toEqual([0, 1]);
    expect([gate.running, gate.waiting]).toEqual([2, 3]);

    tasks[1]?.resolve();
    await runs[1];
    await Promise.resolve();
    expect(started).toEqual([0, 1, 2]);

    for (const task of tasks) task.resolve();
    expect(await Promise.all(runs)).toEqual([0, 1, 2, 3, 4]);
    expect(started).toEqual([0, 1, 2, 3, 4]);
    expect([gate.running, gate.waiting]).toEqual([0, 0]);
  });

  it('frees the slot when a task fails', async () => {
    const gate = createConcurrencyGate(1);
    await expect(gate.run(() => Promise.reject(new Error('receiver gone')))).rejects.toThrow('receiver gone');
    expect(await gate.run(async () => 'next')).toBe('next');
  });

  it('refuses a limit that is not a positive integer', () => {
    expect(() => createConcurrencyGate(0)).toThrow(/positive integer/);
  });
});
