// Whether the serving process is stopping gracefully (drain). Registered with the process's own
// registry (configRegistry: what a cluster primary adds to its workers' aggregated metrics), so it
// is the primary's state with workers and the gateway's own without.
import { Gauge } from 'prom-client';
import { configRegistry } from './config-metrics.js';

export const draining = new Gauge({
  name: 'gatehouse_draining',
  help: '1 while the gateway drains (SIGTERM, SIGINT, POST /drain, or a handover to a new process): /readyz answers 503, in-flight requests finish; 0 otherwise',
  registers: [configRegistry],
});
draining.set(0);
