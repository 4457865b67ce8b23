// HTTP requests through terminate routes and the upstream pools behind them. Per-request
// counters are tallies flushed at scrape time (tallies.ts), the latency histogram a tallied one.
import { Counter, Gauge } from 'prom-client';
import { registry } from './registry.js';
import { TalliedHistogram } from './tallied-histogram.js';
import { tallies, tally, type Inc } from './tallies.js';

const requestTallies = tallies();
const refusalTallies = tallies();

export const httpRequests = new Counter({
  name: 'gatehouse_http_requests_total',
  help: 'Requests on terminate listeners by listener, route and response status',
  labelNames: ['listener', 'route', 'status'] as const,
  registers: [registry],
  collect: requestTallies.collect,
});

export const httpRefusals = new Counter({
  name: 'gatehouse_http_refusals_total',
  help: 'Requests the gateway answered itself (denied, misrouted, upstream failures) by reason',
  labelNames: ['listener', 'route', 'reason'] as const,
  registers: [registry],
  collect: refusalTallies.collect,
});

/** The request counter of a listener, route ('-' when none matched) and status. */
export function requestCount(listener: string, route: string, status: number): Inc {
  return tally(requestTallies, httpRequests, { listener, route, status: String(status) });
}

/** The refusal counter of a listener, route ('-' when none matched) and reason. */
export function refusalCount(listener: string, route: string, reason: string): Inc {
  return tally(refusalTallies, httpRefusals, { listener, route, reason });
}

/**
 * How a listener counts a request it answered before any route took it (bad path, no route,
 * SNI/Host mismatch, malformed or late head): a refusal and a request with route '-'. The handles
 * are bound once per status and reason, not looked up per refusal.
 */
export function listenerRefusals(listener: string): (status: number, reason: string) => void {
  const bound = new Map<string, { refusal: Inc; request: Inc }>();
  return (status, reason) => {
    const key = `${status} ${reason}`;
    let handles = bound.get(key);
    if (handles === undefined) bound.set(key, (handles = { refusal: refusalCount(listener, '-', reason), request: requestCount(listener, '-', status) }));
    handles.refusal.inc();
    handles.request.inc();
  };
}

export const upstreamDuration = new TalliedHistogram(
  'gatehouse_upstream_response_seconds',
  'Time from dispatching a request upstream to its response headers',
  'upstream',
  [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registry,
);

export const requestDuration = new TalliedHistogram(
  'gatehouse_request_duration_seconds',
  'Time from a forwarded request reaching its route to the end of its answer (every try, the whole response), by listener/route',
  'route',
  [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registry,
);

export const upstreamConnects = new Counter({
  name: 'gatehouse_upstream_connections_opened_total',
  help: 'New upstream connections by upstream and whether the TLS session was resumed',
  labelNames: ['upstream', 'resumed'] as const,
  registers: [registry],
});

export const upstreamRetries = new Counter({
  name: 'gatehouse_upstream_retries_total',
  help: 'Requests tried again, by upstream and why (connect_failure, reset, per_try_timeout, or the status retried)',
  labelNames: ['upstream', 'on'] as const,
  registers: [registry],
});

export const upstreamRetryBudgetExhausted = new Counter({
  name: 'gatehouse_upstream_retry_budget_exhausted_total',
  help: 'Retries not made because the upstream retry budget (retries.budget_percent of its requests) was spent',
  labelNames: ['upstream'] as const,
  registers: [registry],
});

export const upstreamEjections = new Counter({
  name: 'gatehouse_upstream_ejections_total',
  help: 'Endpoints ejected by outlier detection (consecutive connect failures or 502/503/504 answers), by upstream and endpoint',
  labelNames: ['upstream', 'endpoint'] as const,
  registers: [registry],
});

export const upstreamHealthChecks = new Counter({
  name: 'gatehouse_upstream_health_checks_total',
  help: 'Active health checks by upstream, endpoint and result (pass or fail); with workers, each check by the worker that made it',
  labelNames: ['upstream', 'endpoint', 'result'] as const,
  registers: [registry],
});

export const upstreamEndpointHealthy = new Gauge({
  name: 'gatehouse_upstream_endpoint_healthy',
  help: 'Whether the balancer sends an upstream endpoint requests (1) or it is out (0): ejected by outlier detection or failing its active health checks',
  labelNames: ['upstream', 'endpoint'] as const,
  registers: [registry],
});

/** Filled at scrape time from the pools (see runtime). */
export const upstreamPool = new Gauge({
  name: 'gatehouse_upstream_pool_connections',
  help: 'Upstream pool connections by upstream and state (connected, free, pending requests, running requests; of these, h2_sessions connections speaking HTTP/2 and h2_streams requests running as HTTP/2 streams)',
  labelNames: ['upstream', 'state'] as const,
  registers: [registry],
});
