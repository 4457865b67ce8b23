// HTTP requests through terminate routes and the upstream pools behind them.
import { Counter, Gauge, Histogram } from 'prom-client';
import { registry } from './registry.js';

export const httpRequests = new Counter({
  name: 'gatehouse_http_requests_total',
  help: 'Requests on terminate listeners by listener, route and response status',
  labelNames: ['listener', 'route', 'status'] as const,
  registers: [registry],
});

export const httpRefusals = new Counter({
  name: 'gatehouse_http_refusals_total',
  help: 'Requests the gateway answered itself (denied, misrouted, upstream failures) by reason',
  labelNames: ['listener', 'route', 'reason'] as const,
  registers: [registry],
});

export const upstreamDuration = new Histogram({
  name: 'gatehouse_upstream_response_seconds',
  help: 'Time from dispatching a request upstream to its response headers',
  labelNames: ['upstream'] as const,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});

export const upstreamConnects = new Counter({
  name: 'gatehouse_upstream_connections_opened_total',
  help: 'New upstream connections by upstream and whether the TLS session was resumed',
  labelNames: ['upstream', 'resumed'] as const,
  registers: [registry],
});

/** Filled at scrape time from the pools (see runtime). */
export const upstreamPool = new Gauge({
  name: 'gatehouse_upstream_pool_connections',
  help: 'Upstream pool connections by upstream and state (connected, free, pending requests, running requests)',
  labelNames: ['upstream', 'state'] as const,
  registers: [registry],
});
