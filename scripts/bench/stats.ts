// Percentiles over exact samples (autocannon's own histogram rounds latencies to whole milliseconds, too coarse for
// sub-millisecond answers).

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  mean: number;
  max: number;
}

/** Nearest-rank percentile of ascending `sorted`; NaN for no samples. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

export function summarize(samples: ArrayLike<number>): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (const value of sorted) sum += value;
  return {
    count: sorted.length,
    p50: round3(percentile(sorted, 0.5)),
    p99: round3(percentile(sorted, 0.99)),
    mean: round3(sorted.length ? sum / sorted.length : NaN),
    max: round3(sorted.length ? sorted[sorted.length - 1]! : NaN),
  };
}

export const mean = (values: number[]) => (values.length ? values.reduce((a, b) => a + b, 0) / values.length : NaN);

export const round3 = (value: number) => Math.round(value * 1000) / 1000;

/** A growable buffer of float samples (no array of boxed numbers per request). */
export class Samples {
  private buffer = new Float64Array(65_536);
  length = 0;

  push(value: number): void {
    if (this.length === this.buffer.length) {
      const bigger = new Float64Array(this.buffer.length * 2);
      bigger.set(this.buffer);
      this.buffer = bigger;
    }
    this.buffer[this.length++] = value;
  }

  values(): Float64Array {
    return this.buffer.subarray(0, this.length);
  }
}
