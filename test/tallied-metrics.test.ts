// The request path's metric handles: tallies and the tallied histogram reach Prometheus text (and
// the cluster aggregation) exactly as prom-client's own metrics would.
import { AggregatorRegistry, Counter, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { TalliedHistogram } from '../gateway/metrics/tallied-histogram.js';
import { tallies, tally } from '../gateway/metrics/tallies.js';

describe('TalliedHistogram', () => {
  it('exposes cumulative buckets, sum and count per label value', async () => {
    const registry = new Registry();
    const h = new TalliedHistogram('t_seconds', 'test', 'upstream', [0.001, 0.01, 0.1], registry);
    const a = h.series('a');
    for (const v of [0.0005, 0.001, 0.005, 0.2]) a.observe(v);
    h.series('b').observe(0.05);
    expect(h.series('a')).toBe(a);
    const text = await registry.metrics();
    expect(text).toContain('# TYPE t_seconds histogram');
    expect(text).toContain('t_seconds_bucket{le="0.001",upstream="a"} 2'); // le is inclusive
    expect(text).toContain('t_seconds_bucket{le="0.01",upstream="a"} 3');
    expect(text).toContain('t_seconds_bucket{le="0.1",upstream="a"} 3');
    expect(text).toContain('t_seconds_bucket{le="+Inf",upstream="a"} 4');
    expect(text).toContain('t_seconds_count{upstream="a"} 4');
    expect(text).toMatch(/t_seconds_sum\{upstream="a"\} 0\.2065/);
    expect(text).toContain('t_seconds_bucket{le="0.01",upstream="b"} 0');
    expect(text).toContain('t_seconds_bucket{le="0.1",upstream="b"} 1');

    // Two cluster workers' histograms add up.
    const other = new Registry();
    new TalliedHistogram('t_seconds', 'test', 'upstream', [0.001, 0.01, 0.1], other).series('a').observe(0.0001);
    const merged = AggregatorRegistry.aggregate([await registry.getMetricsAsJSON(), await other.getMetricsAsJSON()] as never);
    const mergedText = await merged.metrics();
    expect(mergedText).toContain('t_seconds_bucket{le="0.001",upstream="a"} 3');
    expect(mergedText).toContain('t_seconds_count{upstream="a"} 5');
  });
});

describe('tallies', () => {
  it('count in numbers, export the series at zero at once, and report the difference at each scrape', async () => {
    const registry = new Registry();
    const owner = tallies();
    const counter = new Counter({ name: 't_total', help: 'test', labelNames: ['route'] as const, registers: [registry], collect: owner.collect });
    const t = tally(owner, counter, { route: 'r' });
    expect(await registry.metrics()).toContain('t_total{route="r"} 0');
    t.inc();
    t.inc(2);
    expect(tally(owner, counter, { route: 'r' })).toBe(t);
    expect(await registry.metrics()).toContain('t_total{route="r"} 3');
    t.inc();
    expect(await registry.metrics()).toContain('t_total{route="r"} 4');
  });
});
