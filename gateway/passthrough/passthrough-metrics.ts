// Front door and passthrough metrics on the shared registry. Label sets are bound once per
// listener and per route (at compile time), never per connection, and a connection's events are
// tallies (../metrics/tallies.ts) that reach prom-client when Prometheus scrapes. Relayed bytes
// are read from the relays' own counters when a relay closes and, for relays still open, at
// scrape time, so the byte path itself carries no metric work.
import { Counter, Gauge } from 'prom-client';
import { registry } from '../metrics/registry.js';
import { tallies, tally, type Inc, type Tallies } from '../metrics/tallies.js';
import { FRONT_DOOR_REASONS, PASSTHROUGH_OUTCOMES, type FrontDoorReason, type PassthroughOutcome } from '../reasons.js';

/** What the first bytes of a connection were: a hello, or why not (`incomplete` ends as timeout or closed). */
export const HELLO_METRIC_OUTCOMES = ['hello', 'not_tls', 'too_large', 'malformed', 'timeout', 'closed'] as const;
export type HelloMetricOutcome = (typeof HELLO_METRIC_OUTCOMES)[number];
export type RelayDirection = 'to_backend' | 'to_client';

const connectionTallies = tallies();
const passthroughConnections = new Counter({
  name: 'gatehouse_passthrough_connections_total',
  help: 'Passthrough connections by listener, route and outcome (relayed, or why no backend took it)',
  labelNames: ['listener', 'route', 'outcome'] as const,
  registers: [registry],
  collect: connectionTallies.collect,
});

/** Relays whose bytes are not yet all counted; flushed at scrape time. */
const openRelays = new Set<RelayByteCounter>();

const byteTallies = tallies();
const relayedBytes = new Counter({
  name: 'gatehouse_relayed_bytes_total',
  help: 'Bytes relayed by passthrough routes, to_backend (client to backend) and to_client',
  labelNames: ['listener', 'route', 'direction'] as const,
  registers: [registry],
  collect() {
    for (const relay of openRelays) relay.flush();
    byteTallies.collect();
  },
});

/** What open relays hold for readers slower than their writers, summed at scrape time (no handle kept: nothing sets it otherwise). */
new Gauge({
  name: 'gatehouse_relay_buffered_bytes',
  help: 'Bytes passthrough relays have read and not yet handed to the kernel (a relay holds at most one read buffer per direction)',
  registers: [registry],
  collect() {
    let held = 0;
    for (const relay of openRelays) held += relay.held();
    this.set(held);
  },
});

/** Open connections per listener, as plain numbers read at scrape time. */
const activeCounts = new Map<string, { value: number; series: { set(value: number): void } }>();
const activeConnections = new Gauge({
  name: 'gatehouse_active_connections',
  help: 'Open client connections accepted by a front door listener (passthrough, terminate and plaintext)',
  labelNames: ['listener'] as const,
  registers: [registry],
  collect() {
    for (const count of activeCounts.values()) count.series.set(count.value);
  },
});

const helloTallies = tallies();
const clientHellos = new Counter({
  name: 'gatehouse_client_hello_total',
  help: 'First bytes of front door connections: a ClientHello, or not_tls, too_large, malformed, timeout, closed',
  labelNames: ['listener', 'outcome'] as const,
  registers: [registry],
  collect: helloTallies.collect,
});

const plaintextTallies = tallies();
const plaintextConnections = new Counter({
  name: 'gatehouse_plaintext_connections_total',
  help: 'Plaintext (no TLS, no client certificate) connections taken by PERMISSIVE listeners: watch it reach zero before switching to STRICT',
  labelNames: ['listener'] as const,
  registers: [registry],
  collect: plaintextTallies.collect,
});

const refusalTallies = tallies();
const frontDoorRefusals = new Counter({
  name: 'gatehouse_front_door_refusals_total',
  help: 'Connections the front door closed before any route took them, by reason (bare TLS listeners count their max_connections and max_connections_per_source refusals here too)',
  labelNames: ['listener', 'reason'] as const,
  registers: [registry],
  collect: refusalTallies.collect,
});

const backendConnectFailures = new Counter({
  name: 'gatehouse_backend_connect_failures_total',
  help: 'Failed connection attempts to passthrough backend endpoints (each one failed over to the next endpoint)',
  labelNames: ['backend', 'endpoint', 'reason'] as const,
  registers: [registry],
});

function tallyEach<K extends string, L extends Record<string, string>>(owner: Tallies, metric: { labels(labels: L): { inc(value: number): void } }, values: readonly K[], labels: (value: K) => L): Record<K, Inc> {
  const handles = {} as Record<K, Inc>;
  for (const value of values) handles[value] = tally(owner, metric, labels(value));
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
  // Front doors of one listener name (a restart in tests, a reload) share one count.
  let count = activeCounts.get(listener);
  if (count === undefined) activeCounts.set(listener, (count = { value: 0, series: activeConnections.labels({ listener }) }));
  const active = count;
  return {
    active: {
      inc: () => void active.value++,
      dec: () => void active.value--,
    },
    plaintext: tally(plaintextTallies, plaintextConnections, { listener }),
    hello: tallyEach(helloTallies, clientHellos, HELLO_METRIC_OUTCOMES, (outcome) => ({ listener, outcome })),
    refused: tallyEach(refusalTallies, frontDoorRefusals, FRONT_DOOR_REASONS, (reason) => ({ listener, reason })),
  };
}

/** The refusals a listener makes at accept, before a byte is read. */
export const ACCEPT_REFUSALS = ['max_connections', 'max_connections_per_source'] as const satisfies readonly FrontDoorReason[];
export type AcceptRefusal = (typeof ACCEPT_REFUSALS)[number];

/** Accept refusal handles of a bare TLS listener (no front door): the same series a front door's would be. */
export function acceptRefusals(listener: string): Record<AcceptRefusal, Inc> {
  return tallyEach(refusalTallies, frontDoorRefusals, ACCEPT_REFUSALS, (reason) => ({ listener, reason }));
}

export interface RouteMetrics {
  readonly outcome: Record<PassthroughOutcome, Inc>;
  readonly toBackend: Inc;
  readonly toClient: Inc;
}

/** Handles for one passthrough route on one listener, created when the route table is compiled. */
export function routeMetrics(listener: string, route: string): RouteMetrics {
  return {
    outcome: tallyEach(connectionTallies, passthroughConnections, PASSTHROUGH_OUTCOMES, (outcome) => ({ listener, route, outcome })),
    toBackend: tally(byteTallies, relayedBytes, { listener, route, direction: 'to_backend' }),
    toClient: tally(byteTallies, relayedBytes, { listener, route, direction: 'to_client' }),
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

/** A relay's own running totals, read when its bytes are counted. */
export interface RelayTotals {
  /** Bytes relayed to the backend (the client's, not the PROXY header). */
  toBackendBytes(): number;
  toClientBytes(): number;
  /** Bytes the relay holds now, not yet taken by the kernel. */
  heldBytes(): number;
}

/**
 * Counts one relay's bytes from its own running totals, so that no metric work happens per
 * chunk. Registered while the relay is open so that a scrape also sees long-lived connections.
 */
export class RelayByteCounter {
  #toBackend = 0;
  #toClient = 0;

  constructor(
    private readonly metrics: RouteMetrics,
    private readonly totals: RelayTotals,
  ) {
    openRelays.add(this);
  }

  held(): number {
    return this.totals.heldBytes();
  }

  flush(): void {
    const toBackend = this.totals.toBackendBytes();
    const toClient = this.totals.toClientBytes();
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
