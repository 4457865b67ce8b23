// A terminate route compiled for the request path: its policy, what it does with the client's
// headers and path, its upstream cluster and its metric handles, all bound once at config load.
import type { TerminateRoute } from '../config/types.js';
import { AuthorizationPolicy } from '../authz/authorization-policy.js';
import { refusalCount, requestCount, requestDuration, upstreamDuration } from '../metrics/proxy-metrics.js';
import type { HistogramSeries } from '../metrics/tallied-histogram.js';
import type { Inc } from '../metrics/tallies.js';
import type { UpstreamCluster } from '../upstream/upstream-cluster.js';
import { pathAllowancesOf } from './terminate-router.js';
import { RetryPolicy } from './retry-policy.js';
import { RequestHeaderPolicy } from './upstream-request-headers.js';

export class CompiledRoute {
  readonly policy: AuthorizationPolicy;
  /** The route's own limit, else its listener's (Infinity: none). */
  readonly maxRequestBodyBytes: number;
  readonly requestHeaders: RequestHeaderPolicy;
  /** request-path.ts ALLOW_* bits. */
  readonly pathAllowances: number;
  readonly mergeSlashes: boolean;
  readonly #statusCounters = new Map<number, Inc>();
  readonly #refusalCounters = new Map<string, Inc>();
  readonly latency: HistogramSeries;
  /** The whole request, downstream: until its answer has ended. */
  readonly duration: HistogramSeries;
  readonly retries: RetryPolicy;
  /** timeouts.request (0: none). */
  readonly requestTimeoutMs: number;
  /** The upstream may speak HTTP/2 (h2 or auto): gRPC can go there. */
  readonly carriesGrpc: boolean;

  constructor(
    readonly listener: string,
    readonly config: TerminateRoute,
    readonly cluster: UpstreamCluster,
    listenerMaxRequestBodyBytes: number,
  ) {
    this.policy = new AuthorizationPolicy(config.authorization);
    this.maxRequestBodyBytes = config.maxRequestBodyBytes ?? listenerMaxRequestBodyBytes;
    this.requestHeaders = RequestHeaderPolicy.of(config);
    this.pathAllowances = pathAllowancesOf(config);
    this.mergeSlashes = config.mergeSlashes !== false;
    this.latency = upstreamDuration.series(cluster.name);
    this.duration = requestDuration.series(`${listener}/${config.name}`);
    this.retries = new RetryPolicy(config.retries ?? cluster.config.retries);
    this.requestTimeoutMs = config.timeouts?.requestMs ?? 0;
    this.carriesGrpc = (cluster.config.protocol ?? 'http1') !== 'http1';
  }

  countStatus(status: number): void {
    let counter = this.#statusCounters.get(status);
    if (!counter) this.#statusCounters.set(status, (counter = requestCount(this.listener, this.config.name, status)));
    counter.inc();
  }

  countRefusal(reason: string): void {
    let counter = this.#refusalCounters.get(reason);
    if (!counter) this.#refusalCounters.set(reason, (counter = refusalCount(this.listener, this.config.name, reason)));
    counter.inc();
  }
}
