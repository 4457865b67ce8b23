// Medians and ranges over the runs of one cell, and ratios of two cells' medians.
import type { RowResult } from './runner.js';

export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

export function summarize(samples: readonly number[]): Summary | undefined {
  const sorted = samples.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (sorted.length === 0) return undefined;
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, n: sorted.length };
}

/** Ratio of the medians of two cells, or undefined when either is missing. */
export function ratioOf(row: RowResult, numerator: string, denominator: string): number | undefined {
  const a = summarize(row.cells[numerator]?.samples ?? []);
  const b = summarize(row.cells[denominator]?.samples ?? []);
  return a && b && b.median !== 0 ? a.median / b.median : undefined;
}
