/** Percentiles and medians of measured samples. */

/** The `p`-th percentile (0–100) of `samples` by nearest rank; NaN when there are none. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

export function median(samples: readonly number[]): number {
  return percentile(samples, 50);
}

/**
 * The `p`-th percentile (0–100) of samples that each stand for `weight` observations: the
 * smallest value whose cumulative weight reaches p% of the total. NaN when there are none.
 */
export function weightedPercentile(samples: readonly { value: number; weight: number }[], p: number): number {
  const sorted = samples.filter((sample) => sample.weight > 0).sort((a, b) => a.value - b.value);
  const total = sorted.reduce((sum, sample) => sum + sample.weight, 0);
  if (total === 0) return Number.NaN;
  const rank = (p / 100) * total;
  let cumulative = 0;
  for (const sample of sorted) {
    cumulative += sample.weight;
    if (cumulative >= rank - 1e-9) return sample.value;
  }
  return sorted.at(-1)!.value;
}
