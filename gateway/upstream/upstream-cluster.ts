// One configured upstream: a pool of keep-alive connections per endpoint (upstream-pool.ts), chosen
// by the upstream's balance policy (balancer.ts) among the endpoints outlier detection has not
// ejected (outlier-detector.ts), all sharing one TLS state (swappable on reload) and one session cache. Retiring the pools
// (after a certificate rotation) lets in-flight requests finish on the old connections while new
// requests open connections with the new identity.
import { UPSTREAM_LIMITS_DEFAULT, type Upstream } from '../config/types.js';
import { createBalancer, type Balancer } from './balancer.js';
import { OutlierDetector } from './outlier-detector.js';
import { TlsSessionCache } from './tls-session-cache.js';
import { createUpstreamConnector } from './upstream-connector.js';
import { UpstreamPool, type PoolStats } from './upstream-pool.js';
import type { UpstreamTlsState } from './upstream-tls-state.js';

export interface UpstreamClusterHooks {
  onConnected?: (upstream: string, resumed: boolean) => void;
}

export class UpstreamCluster {
  readonly name: string;
  readonly sessions = new TlsSessionCache();
  #pools: UpstreamPool[];
  readonly #choose: Balancer;
  /** Per endpoint (by index, across pool generations): connect failures and ejections. */
  readonly #outliers: OutlierDetector;
  #tlsState: UpstreamTlsState | undefined;

  constructor(
    readonly config: Upstream,
    tlsState: UpstreamTlsState | undefined,
    private readonly hooks: UpstreamClusterHooks = {},
  ) {
    this.name = config.name;
    this.#tlsState = tlsState;
    this.#outliers = new OutlierDetector(config.name, config.endpoints.map(endpointName), config.outlierDetection);
    this.#pools = this.#createPools();
    this.#choose = createBalancer(config.balance ?? 'round_robin');
  }

  #createPools(): UpstreamPool[] {
    const { config } = this;
    const outliers = this.#outliers;
    const limits = config.limits ?? UPSTREAM_LIMITS_DEFAULT;
    return config.endpoints.map((endpoint, index) => {
      return new UpstreamPool({
        endpointIndex: index,
        maxConnections: config.connections,
        maxPending: limits.maxPending,
        maxStreams: limits.maxConcurrentStreams ?? UPSTREAM_LIMITS_DEFAULT.maxConcurrentStreams,
        protocol: config.protocol,
        timeouts: config.timeouts,
        hostHeader: endpointName(endpoint),
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
        }),
      });
    });
  }

  /** The pool of the endpoint the balance policy chooses, passing over ejected endpoints. */
  pick(): UpstreamPool {
    const i = this.#choose(this.#pools);
    return this.#pools[this.#outliers.ejectedCount === 0 ? i : this.#outliers.usable(i)]!;
  }

  /** The pool of the first endpoint in after `tried`'s, for a retry (from the first endpoint if `tried` was retired meanwhile). */
  after(tried: UpstreamPool): UpstreamPool {
    const pools = this.#pools;
    const i = (pools.indexOf(tried) + 1) % pools.length;
    return pools[this.#outliers.ejectedCount === 0 ? i : this.#outliers.usable(i)]!;
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
    for (const pool of this.#pools) pool.destroy();
  }
}

/** host:port, bracketed IPv6: the Host header sent when the client's request had none, and the endpoint's metric label. */
function endpointName(endpoint: Upstream['endpoints'][number]): string {
  const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
  return `${host}:${endpoint.port}`;
}
