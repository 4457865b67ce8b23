// A Prometheus histogram for the request path: a series is bound once per label value and an
// observation is a bucket search and three number updates (prom-client's Histogram hashes the
// labels on every observe, even through a bound child). It registers itself with prom-client's
// registry like any metric, so exposition and cluster aggregation (sum) are prom-client's own.
import type { Registry } from 'prom-client';

export class HistogramSeries {
  /** Observations per bucket (not cumulative); the last slot is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  metricName: string;
}

export class TalliedHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #series = new Map<string, HistogramSeries>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelName: string,
    private readonly bounds: readonly number[],
    registry: Registry,
  ) {
    registry.registerMetric(this as never);
  }

  /** The series of one label value (the same object for the same value, across reloads). */
  series(labelValue: string): HistogramSeries {
    let series = this.#series.get(labelValue);
    if (series === undefined) this.#series.set(labelValue, (series = new HistogramSeries(this.bounds)));
    return series;
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricValue[] }> {
    const values: MetricValue[] = [];
    for (const [labelValue, s] of this.#series) {
      let cumulative = 0;
      this.bounds.forEach((bound, i) => {
        cumulative += s.counts[i]!;
        values.push({ value: cumulative, labels: { le: bound, [this.labelName]: labelValue }, metricName: `${this.name}_bucket` });
      });
      values.push({ value: s.count, labels: { le: '+Inf', [this.labelName]: labelValue }, metricName: `${this.name}_bucket` });
      values.push({ value: s.sum, labels: { [this.labelName]: labelValue }, metricName: `${this.name}_sum` });
      values.push({ value: s.count, labels: { [this.labelName]: labelValue }, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** Zeroes every series in place: routes hold their series for good. */
  reset(): void {
    for (const s of this.#series.values()) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}
