// The process as Prometheus sees it, read at scrape time (nothing on the request path): CPU time,
// open file descriptors, event-loop delay, start time, and which build runs. With workers, the
// primary's /metrics adds CPU and descriptors up over the workers, shows the worst event-loop
// delay and the earliest start, and one build_info line.
import fs from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge } from 'prom-client';
import { registry } from './registry.js';

/** The package's version, read once (dist/gateway/metrics → the package root). */
const VERSION = (() => {
  try {
    return (JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
})();

new Gauge({
  name: 'gatehouse_build_info',
  aggregator: 'first',
  help: 'Always 1: the version of gatehouse and of the Node.js and OpenSSL it runs on, as labels',
  labelNames: ['version', 'node', 'openssl'] as const,
  registers: [registry],
  collect() {
    this.labels(VERSION, process.version, process.versions.openssl ?? 'none').set(1);
  },
});

/** CPU time already counted, in microseconds: each scrape adds what was used since. */
let countedCpu = { user: 0, system: 0 };

new Counter({
  name: 'gatehouse_process_cpu_seconds_total',
  help: 'CPU time the gateway process has used, by mode (user, system)',
  labelNames: ['mode'] as const,
  registers: [registry],
  collect() {
    const cpu = process.cpuUsage();
    this.labels('user').inc((cpu.user - countedCpu.user) / 1e6);
    this.labels('system').inc((cpu.system - countedCpu.system) / 1e6);
    countedCpu = cpu;
  },
});

new Gauge({
  name: 'gatehouse_process_open_fds',
  help: 'File descriptors the gateway process holds open (sockets included)',
  registers: [registry],
  collect() {
    try {
      this.set(fs.readdirSync('/proc/self/fd').length);
    } catch {
      // Not Linux: no /proc, no value.
    }
  },
});

new Gauge({
  name: 'gatehouse_process_start_time_seconds',
  aggregator: 'min',
  help: 'When the gateway process started, in seconds since the Unix epoch',
  registers: [registry],
  collect() {
    this.set(Math.round(Date.now() / 1000 - process.uptime()));
  },
});

// Sampled by Node at 20 ms resolution; the histogram is reset at each scrape, so each value covers
// the time since the one before.
const loopDelay = monitorEventLoopDelay({ resolution: 20 });
loopDelay.enable();

new Gauge({
  name: 'gatehouse_event_loop_delay_seconds',
  aggregator: 'max',
  help: 'How late the event loop ran timers since the previous scrape: p50, p99 and max',
  labelNames: ['quantile'] as const,
  registers: [registry],
  collect() {
    this.labels('0.5').set(loopDelay.percentile(50) / 1e9);
    this.labels('0.99').set(loopDelay.percentile(99) / 1e9);
    this.labels('1').set(loopDelay.max / 1e9);
    loopDelay.reset();
  },
});
