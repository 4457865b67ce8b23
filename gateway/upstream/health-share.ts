// How active health checks are shared by the processes that proxy: a single process checks every
// interval and records its own results; with N workers, each checks every N intervals from its own
// slot, and every result reaches every worker through the primary (runtime/worker-cluster.ts), so
// all workers hold the same verdicts for the probe traffic of one.

export interface HealthResult {
  readonly upstream: string;
  readonly endpoint: number;
  readonly pass: boolean;
  /** What the check saw: `status 200`, `no response within 1000 ms`, the connect error. */
  readonly outcome: string;
}

export interface HealthShare {
  /** This process's slot among those that check (0-based), and how many there are. */
  readonly slot: number;
  readonly slots: number;
  /** A result of this process's checks: recorded by every process (this one included). */
  publish(result: HealthResult): void;
}

/** One process alone: its results are recorded at once. */
export function soloHealthShare(record: (result: HealthResult) => void): HealthShare {
  return { slot: 0, slots: 1, publish: record };
}
