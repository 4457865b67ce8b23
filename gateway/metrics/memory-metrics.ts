// The gateway's memory, read when Prometheus scrapes (nothing on the request path): resident set,
// the V8 heap (in all, and by space: v8_new_space, the young generation, is what grows under a
// high rate of new connections, up to twice --max-semi-space-size), and what JavaScript objects
// hold outside it (external: TLS and socket buffers, X509Certificate objects among them;
// array_buffers: Buffers). With workers, the primary's /metrics sums them over the workers. And
// the identity cache, which holds one entry per client certificate seen (up to its capacity).
import v8 from 'node:v8';
import { Gauge } from 'prom-client';
import { registry } from './registry.js';

new Gauge({
  name: 'gatehouse_process_memory_bytes',
  help: 'Memory of the gateway process by kind: rss (resident set), heap_total and heap_used (V8 heap), v8_<space> (V8 heap spaces, e.g. v8_new_space), external and array_buffers (held by JavaScript objects outside the V8 heap)',
  labelNames: ['kind'] as const,
  registers: [registry],
  collect() {
    const m = process.memoryUsage();
    this.labels('rss').set(m.rss);
    this.labels('heap_total').set(m.heapTotal);
    this.labels('heap_used').set(m.heapUsed);
    this.labels('external').set(m.external);
    this.labels('array_buffers').set(m.arrayBuffers);
    for (const space of v8.getHeapSpaceStatistics()) this.labels('v8_' + space.space_name).set(space.space_size);
  },
});

/** Set by the runtime before a scrape (runtime/gateway.ts refreshGauges). */
export const identityCacheEntries = new Gauge({
  name: 'gatehouse_identity_cache_entries',
  help: 'Client certificates whose verified identity is cached (by SHA-256 fingerprint)',
  registers: [registry],
});
