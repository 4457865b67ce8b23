// A probe is one measurement against a running peer: it drives a load generator pinned to the
// load core and returns named values. The gateway's CPU time over the same window turns rates
// into work per gateway CPU-second.
import type { BenchPki } from './certificates.js';
import type { Ports } from './layout.js';
import type { BenchOptions } from './options.js';
import { treeCpuSeconds } from './proc-stats.js';

export interface ProbeTarget {
  /** The peer's root process: CPU and memory are read for it and its descendants. */
  readonly pid: number;
  readonly ports: Ports;
  readonly pki: BenchPki;
  readonly options: BenchOptions;
}

export interface Metric {
  readonly key: string;
  readonly label: string;
  readonly unit: string;
  readonly lowerIsBetter?: boolean;
  /** Decimal places in the report. */
  readonly digits?: number;
  /** Shown in the SVG chart of ratios (default true); shares, baselines and cross-checks are not. */
  readonly chart?: boolean;
}

/** Values by metric key, and what went wrong if anything did (shown next to the cell). */
export interface Measurement {
  readonly values: Readonly<Record<string, number>>;
  readonly problem?: string;
}

export interface Probe {
  readonly id: string;
  readonly metrics: readonly Metric[];
  /** The load command as a person would type it, for the report. */
  command(t: ProbeTarget): string;
  run(t: ProbeTarget): Promise<Measurement>;
}

/** Runs `work` and returns its result with the peer's CPU seconds spent meanwhile. */
export async function withCpu<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; cpuSeconds: number }> {
  const before = treeCpuSeconds(pid);
  const result = await work();
  return { result, cpuSeconds: treeCpuSeconds(pid) - before };
}

/** count / cpuSeconds, or NaN when too little CPU was measured to divide by (clock ticks are 10 ms). */
export function perCpuSecond(count: number, cpuSeconds: number): number {
  return cpuSeconds >= 0.05 ? count / cpuSeconds : Number.NaN;
}
