// One configured upstream: a pool of keep-alive connections per endpoint (upstream-pool.ts), chosen
// by the upstream's balance policy (balancer.ts) among the endpoints outlier detection has not
// ejected (outlier-detector.ts), all sharing one TLS state (swappable on reload) and one session cache. Retiring the pools
// (after a certificate rotation) lets in-flight requests finish on the old connections while new
// requests open connections with the new identity.
import { UPSTREAM_LIMITS_DEFAULT, type Upstream } from '../config/types.js';
import { isIP } from 'node:net';
// host:port as written: the Host header sent when the client's request had none, and the endpoint's metric label.
import { formatAddress } from '../config/config-values.js';
import { createBalancer, type Balancer } from './balancer.js';
import { dnsResolver } from './dns-resolver.js';
import { EndpointAddresses } from './endpoint-addresses.js';
import { HealthChecker } from './health-checker.js';
import type { HealthResult, HealthShare } from './health-share.js';
import { OutlierDetector } from './outlier-detector.js';
import { TlsSessionCache } from './tls-session-cache.js';
import { RetryBudget } from './retry-budget.js';
import { createUpstreamConnector } from './upstream-connector.js';
import { UpstreamPool, type PoolStats } from './upstream-pool.js';
import type { UpstreamTlsState } from './upstream-tls-state.js';

export interface UpstreamClusterHooks {
  onConnected?: (upstream: string, resumed: boolean) => void;
  /** How active health checks are shared (health-share.ts); needed when the upstream has health_check. */
  healthShare?: HealthShare;
}

export class UpstreamCluster {
  readonly name: string;
  readonly sessions = new TlsSessionCache();
  readonly retryBudget = new RetryBudget();
  #pools: UpstreamPool[];
  readonly #choose: Balancer;
  /** Per endpoint (by index, across pool generations): connect failures and ejections. */
  readonly #outliers: OutlierDetector;
  #tlsState: UpstreamTlsState | undefined;
  readonly #checker: HealthChecker | undefined;
  /** Per endpoint: the addresses behind its host name, undefined for an IP address. */
  readonly #addresses: ReadonlyArray<EndpointAddresses | undefined>;

  constructor(
    readonly config: Upstream,
    tlsState: UpstreamTlsState | undefined,
    private readonly hooks: UpstreamClusterHooks = {},
  ) {
    this.name = config.name;
    this.#tlsState = tlsState;
    this.#outliers = new OutlierDetector(config.name, config.endpoints.map(formatAddress), config.outlierDetection);
    const resolve = dnsResolver(config.dnsResolvers);
    this.#addresses = config.endpoints.map((e, i) => (isIP(e.host) === 0 ? new EndpointAddresses(config.name, e.host, config.dnsRefreshMs ?? 30_000, resolve, () => this.#renewPool(i)) : undefined));
    this.#pools = this.#createPools();
    this.#choose = createBalancer(config.balance ?? 'round_robin');
    const check = config.healthCheck;
    if (check !== undefined && hooks.healthShare !== undefined) {
      const scheme = tlsState === undefined ? 'http' : 'https';
      this.#checker = new HealthChecker(config.name, config.endpoints.map(formatAddress), check, () => this.#pools, this.#outliers, hooks.healthShare, scheme);
    }
  }

  /** Starts health checks and DNS refresh (once the cluster serves: a reload's candidate clusters do neither). */
  start(): void {
    this.#checker?.start();
    for (const addresses of this.#addresses) addresses?.start();
  }

  /** A health check's result, from this process or another worker. */
  recordHealth(result: HealthResult): void {
    this.#checker?.record(result);
  }

  /** Each endpoint as /upstreams shows it: health, ejection, requests and connections. */
  endpoints(): UpstreamEndpointStatus[] {
    this.#outliers.expire();
    return this.#pools.map((pool, i) => {
      const out = this.#outliers.status(i);
      const s = pool.stats();
      return {
        endpoint: formatAddress(this.config.endpoints[i]!),
        addresses: this.#addresses[i]?.addresses ?? null,
        healthy: !out.unhealthy && out.ejectedUntil === 0,
        health_check: this.#checker?.state(i) ?? null,
        ejected_until: out.ejectedUntil === 0 ? null : new Date(out.ejectedUntil).toISOString(),
        in_flight: pool.inFlight,
        connections: s.connected,
        idle_connections: s.free,
        pending: s.pending,
      };
    });
  }

  #createPools(): UpstreamPool[] {
    return this.config.endpoints.map((_, index) => this.#createPool(index));
  }

  #createPool(index: number): UpstreamPool {
    const { config } = this;
    const outliers = this.#outliers;
    const endpoint = config.endpoints[index]!;
    const limits = config.limits ?? UPSTREAM_LIMITS_DEFAULT;
    return new UpstreamPool({
      endpointIndex: index,
      maxConnections: config.connections,
      maxPending: limits.maxPending,
      maxStreams: limits.maxConcurrentStreams ?? UPSTREAM_LIMITS_DEFAULT.maxConcurrentStreams,
      protocol: config.protocol,
      timeouts: config.timeouts,
      hostHeader: formatAddress(endpoint),
      connect: createUpstreamConnector({
        endpoint,
        protocol: config.protocol,
        tlsState: () => this.#tlsState,
        sessions: this.sessions,
        connectTimeoutMs: config.timeouts.connectMs,
        onConnected: (resumed) => {
          outliers.connected(index);
          this.hooks.onConnected?.(config.name, resumed);
        },
        onConnectFailed: () => outliers.connectFailed(index),
        address: this.#addresses[index] && (() => this.#addresses[index]!.next()),
      }),
    });
  }

  /** A host-name endpoint's addresses changed: its connections are renewed (in-flight requests finish), so the new set shares them. */
  #renewPool(index: number): void {
    const old = this.#pools[index]!;
    this.#pools[index] = this.#createPool(index);
    old.retire();
  }

  /** The pool of the endpoint the balance policy chooses, passing over ejected endpoints. */
  pick(): UpstreamPool {
    const i = this.#choose(this.#pools);
    return this.#pools[this.#outliers.outCount === 0 ? i : this.#outliers.usable(i)]!;
  }

  /** The pool of the first endpoint in after `tried`'s, for a retry (from the first endpoint if `tried` was retired meanwhile). */
  after(tried: UpstreamPool): UpstreamPool {
    const pools = this.#pools;
    const i = (pools.indexOf(tried) + 1) % pools.length;
    return pools[this.#outliers.outCount === 0 ? i : this.#outliers.usable(i)]!;
  }

  /** A request reached `pool`'s endpoint and got no answer (a reset, a try past its timeout): a failure for outlier detection. */
  failed(pool: UpstreamPool): void {
    this.#outliers.connectFailed(pool.endpointIndex);
  }

  /** A response head came from `pool`'s endpoint: outlier detection counts 502/503/504 in a row. */
  responded(pool: UpstreamPool, status: number): void {
    this.#outliers.responded(pool.endpointIndex, status);
  }

  /** Ends expired ejections now rather than at the next pick (for the health gauge at scrape time). */
  expireEjections(): void {
    this.#outliers.expire();
  }

  /** How many endpoints there are: a request is tried on each at most once. */
  get poolCount(): number {
    return this.#pools.length;
  }

  get tlsState(): UpstreamTlsState | undefined {
    return this.#tlsState;
  }

  /** New TLS state (rotated certificate or bundle): new connections use it; old pools drain and close. */
  replaceTlsState(state: UpstreamTlsState | undefined): void {
    this.#tlsState = state;
    const old = this.#pools;
    this.#pools = this.#createPools();
    for (const pool of old) pool.retire();
  }

  /** Sessions open across the endpoints and the requests on them, for the pool gauge. */
  stats(): PoolStats {
    const sum: PoolStats = { connected: 0, free: 0, pending: 0, running: 0, h2Sessions: 0, h2Streams: 0 };
    for (const pool of this.#pools) {
      const s = pool.stats();
      for (const key of Object.keys(sum) as (keyof PoolStats)[]) sum[key] += s[key];
    }
    return sum;
  }

  async close(): Promise<void> {
    this.#checker?.stop();
    for (const addresses of this.#addresses) addresses?.stop();
    for (const pool of this.#pools) pool.destroy();
  }
}

export interface UpstreamEndpointStatus {
  readonly endpoint: string;
  /** A host-name endpoint's addresses as last resolved (null: an IP address). */
  readonly addresses: readonly string[] | null;
  /** In the balancer: not ejected, not failing its health checks. */
  readonly healthy: boolean;
  readonly health_check: { check: 'healthy' | 'unhealthy'; last: string | undefined } | null;
  readonly ejected_until: string | null;
  readonly in_flight: number;
  readonly connections: number;
  readonly idle_connections: number;
  readonly pending: number;
}
