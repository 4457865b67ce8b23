// One configured upstream: a pool of keep-alive connections per endpoint (upstream-pool.ts), chosen
// round robin, all sharing one TLS state (swappable on reload) and one session cache. Retiring the pools
// (after a certificate rotation) lets in-flight requests finish on the old connections while new
// requests open connections with the new identity.
import { UPSTREAM_LIMITS_DEFAULT, type Upstream } from '../config/types.js';
import { TlsSessionCache } from './tls-session-cache.js';
import { createUpstreamConnector } from './upstream-connector.js';
import { UpstreamPool } from './upstream-pool.js';
import type { UpstreamTlsState } from './upstream-tls-state.js';

export interface UpstreamClusterHooks {
  onConnected?: (upstream: string, resumed: boolean) => void;
}

export class UpstreamCluster {
  readonly name: string;
  readonly sessions = new TlsSessionCache();
  #pools: UpstreamPool[];
  #next = 0;
  #tlsState: UpstreamTlsState | undefined;

  constructor(
    readonly config: Upstream,
    tlsState: UpstreamTlsState | undefined,
    private readonly hooks: UpstreamClusterHooks = {},
  ) {
    this.name = config.name;
    this.#tlsState = tlsState;
    this.#pools = this.#createPools();
  }

  #createPools(): UpstreamPool[] {
    const { config } = this;
    return config.endpoints.map((endpoint) => {
      const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
      return new UpstreamPool({
        maxConnections: config.connections,
        maxPending: (config.limits ?? UPSTREAM_LIMITS_DEFAULT).maxPending,
        timeouts: config.timeouts,
        hostHeader: `${host}:${endpoint.port}`,
        connect: createUpstreamConnector({
          endpoint,
          tlsState: () => this.#tlsState,
          sessions: this.sessions,
          connectTimeoutMs: config.timeouts.connectMs,
          onConnected: (resumed) => this.hooks.onConnected?.(config.name, resumed),
        }),
      });
    });
  }

  /** The next endpoint's pool, round robin. */
  pick(): UpstreamPool {
    const pool = this.#pools[this.#next]!;
    this.#next = (this.#next + 1) % this.#pools.length;
    return pool;
  }

  /** The pool of the endpoint after `tried`'s, for a retry (the first endpoint if `tried` was retired meanwhile). */
  after(tried: UpstreamPool): UpstreamPool {
    const pools = this.#pools;
    return pools[(pools.indexOf(tried) + 1) % pools.length]!;
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

  /** Connections open across the endpoints, for the pool gauge. */
  stats(): { connected: number; free: number; pending: number; running: number } {
    let connected = 0, free = 0, pending = 0, running = 0;
    for (const pool of this.#pools) {
      const s = pool.stats();
      connected += s.connected;
      free += s.free;
      pending += s.pending;
      running += s.running;
    }
    return { connected, free, pending, running };
  }

  async close(): Promise<void> {
    for (const pool of this.#pools) pool.destroy();
  }
}
