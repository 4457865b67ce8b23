// Front door and passthrough metrics on the shared registry. Label sets are bound once per
// listener and per route (at compile time), never per connection; relayed bytes are read from
// the sockets' own counters when a relay closes and, for relays still open, when Prometheus
// scrapes, so the byte path itself carries no metric work.
import { Counter, Gauge } from 'prom-client';
import { registry } from '../metrics/registry.js';
import { FRONT_DOOR_REASONS, PASSTHROUGH_OUTCOMES, type FrontDoorReason, type PassthroughOutcome } from '../reasons.js';

/** What the first bytes of a connection were: a hello, or why not (`incomplete` ends as timeout or closed). */
export const HELLO_METRIC_OUTCOMES = ['hello', 'not_tls', 'too_large', 'malformed', 'timeout', 'closed'] as const;
export type HelloMetricOutcome = (typeof HELLO_METRIC_OUTCOMES)[number];
export type RelayDirection = 'to_backend' | 'to_client';

const passthroughConnections = new Counter({
  name: 'gatehouse_passthrough_connections_total',
  help: 'Passthrough connections by listener, route and outcome (relayed, or why no backend took it)',
  labelNames: ['listener', 'route', 'outcome'] as const,
  registers: [registry],
});

/** Relays whose bytes are not yet all counted; flushed at scrape time. */
const openRelays = new Set<RelayByteCounter>();

const relayedBytes = new Counter({
  name: 'gatehouse_relayed_bytes_total',
  help: 'Bytes relayed by passthrough routes, to_backend (client to backend) and to_client',
  labelNames: ['listener', 'route', 'direction'] as const,
  registers: [registry],
  collect() {
    for (const relay of openRelays) relay.flush();
  },
});

const activeConnections = new Gauge({
  name: 'gatehouse_active_connections',
  help: 'Open client connections accepted by a front door listener (passthrough, terminate and plaintext)',
  labelNames: ['listener'] as const,
  registers: [registry],
});

const clientHellos = new Counter({
  name: 'gatehouse_client_hello_total',
  help: 'First bytes of front door connections: a ClientHello, or not_tls, too_large, malformed, timeout, closed',
  labelNames: ['listener', 'outcome'] as const,
  registers: [registry],
});

const plaintextConnections = new Counter({
  name: 'gatehouse_plaintext_connections_total',
  help: 'Plaintext (no TLS, no client certificate) connections taken by PERMISSIVE listeners: watch it reach zero before switching to STRICT',
  labelNames: ['listener'] as const,
  registers: [registry],
});

const frontDoorRefusals = new Counter({
  name: 'gatehouse_front_door_refusals_total',
  help: 'Connections the front door closed before any route took them, by reason',
  labelNames: ['listener', 'reason'] as const,
  registers: [registry],
});

const backendConnectFailures = new Counter({
  name: 'gatehouse_backend_connect_failures_total',
  help: 'Failed connection attempts to passthrough backend endpoints (each one failed over to the next endpoint)',
  labelNames: ['backend', 'endpoint', 'reason'] as const,
  registers: [registry],
});

type Inc = { inc(value?: number): void };

/**
 * One bound handle per label value, created (and exported at zero, so that rate() and alerts
 * see the series before the first event) up front.
 */
function bindEach<K extends string>(values: readonly K[], bind: (value: K) => Inc): Record<K, Inc> {
  const handles = {} as Record<K, Inc>;
  for (const value of values) {
    handles[value] = bind(value);
    handles[value].inc(0);
  }
  return handles;
}

export interface ListenerMetrics {
  readonly active: { inc(): void; dec(): void };
  readonly plaintext: Inc;
  readonly hello: Record<HelloMetricOutcome, Inc>;
  readonly refused: Record<FrontDoorReason, Inc>;
}

/** Handles for one listener, created once per front door. */
export function listenerMetrics(listener: string): ListenerMetrics {
  const active = activeConnections.labels({ listener });
  active.inc(0);
  const plaintext = plaintextConnections.labels({ listener });
  plaintext.inc(0);
  return {
    active,
    plaintext,
    hello: bindEach(HELLO_METRIC_OUTCOMES, (outcome) => clientHellos.labels({ listener, outcome })),
    refused: bindEach(FRONT_DOOR_REASONS, (reason) => frontDoorRefusals.labels({ listener, reason })),
  };
}

export interface RouteMetrics {
  readonly outcome: Record<PassthroughOutcome, Inc>;
  readonly toBackend: Inc;
  readonly toClient: Inc;
}

/** Handles for one passthrough route on one listener, created when the route table is compiled. */
export function routeMetrics(listener: string, route: string): RouteMetrics {
  return {
    outcome: bindEach(PASSTHROUGH_OUTCOMES, (outcome) => passthroughConnections.labels({ listener, route, outcome })),
    toBackend: relayedBytes.labels({ listener, route, direction: 'to_backend' }),
    toClient: relayedBytes.labels({ listener, route, direction: 'to_client' }),
  };
}

/** Handles for one backend's endpoints, created with its balancer. */
export function backendMetrics(backend: string, endpoints: readonly { host: string; port: number }[]): { connectFailed(endpoint: number, reason: 'upstream_unavailable' | 'upstream_connect_timeout'): void } {
  const bound = endpoints.map((e) => {
    const endpoint = `${e.host}:${e.port}`;
    return {
      upstream_unavailable: backendConnectFailures.labels({ backend, endpoint, reason: 'upstream_unavailable' }),
      upstream_connect_timeout: backendConnectFailures.labels({ backend, endpoint, reason: 'upstream_connect_timeout' }),
    };
  });
  return { connectFailed: (endpoint, reason) => bound[endpoint]![reason].inc() };
}

/**
 * Counts one relay's bytes from its sockets' own running totals (read through the two
 * functions), so that nothing happens per chunk. Registered while the relay is open so that a
 * scrape also sees long-lived connections.
 */
export class RelayByteCounter {
  #toBackend = 0;
  #toClient = 0;

  constructor(
    private readonly metrics: RouteMetrics,
    private readonly readToBackend: () => number,
    private readonly readToClient: () => number,
  ) {
    openRelays.add(this);
  }

  flush(): void {
    const toBackend = this.readToBackend();
    const toClient = this.readToClient();
    if (toBackend > this.#toBackend) this.metrics.toBackend.inc(toBackend - this.#toBackend);
    if (toClient > this.#toClient) this.metrics.toClient.inc(toClient - this.#toClient);
    this.#toBackend = toBackend;
    this.#toClient = toClient;
  }

  /** Final count; the relay is forgotten. */
  close(): void {
    this.flush();
    openRelays.delete(this);
  }
}
