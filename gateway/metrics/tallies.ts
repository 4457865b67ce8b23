// Counter handles for hot paths: an event is a plain number increment, and the sum reaches
// prom-client only when Prometheus scrapes (prom-client hashes the labels on every inc, even
// through a bound child). Label sets are bound once (per listener, per route), never per event.

export type Inc = { inc(value?: number): void };

/** A counter handle that counts in a number and reports to its series at scrape time. */
export class Tally implements Inc {
  #count = 0;
  #reported = 0;
  constructor(private readonly series: { inc(value: number): void }) {}
  inc(value = 1): void {
    this.#count += value;
  }
  flush(): void {
    if (this.#count === this.#reported) return;
    this.series.inc(this.#count - this.#reported);
    this.#reported = this.#count;
  }
}

export interface Tallies {
  /** One tally per label set, so that a reload binding the same route again reuses it. */
  readonly byLabels: Map<string, Tally>;
  /** The counter's collect(): flushes every tally. */
  readonly collect: () => void;
}

/** The tallies of one counter, flushed by its collect(). */
export function tallies(): Tallies {
  const byLabels = new Map<string, Tally>();
  return { byLabels, collect: () => byLabels.forEach((t) => t.flush()) };
}

/** The tally of one label set, its series exported at zero from the start so that rate() and alerts see it. */
export function tally<L extends Record<string, string>>(owner: Tallies, metric: { labels(labels: L): { inc(value: number): void } }, labels: L): Tally {
  const key = JSON.stringify(labels);
  let t = owner.byLabels.get(key);
  if (t === undefined) {
    const series = metric.labels(labels);
    series.inc(0);
    owner.byLabels.set(key, (t = new Tally(series)));
  }
  return t;
}
