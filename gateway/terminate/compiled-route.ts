// A terminate route compiled for the request path: its policy, its upstream cluster and its
// metric handles, all bound once at config load.
import type { TerminateRoute } from '../config/types.js';
import { AuthorizationPolicy } from '../authz/authorization-policy.js';
import { httpRefusals, httpRequests, upstreamDuration } from '../metrics/proxy-metrics.js';
import type { UpstreamCluster } from '../upstream/upstream-cluster.js';

type Child = ReturnType<typeof httpRequests.labels>;

export class CompiledRoute {
  readonly policy: AuthorizationPolicy;
  readonly #statusCounters = new Map<number, Child>();
  readonly #refusalCounters = new Map<string, Child>();
  readonly latency: ReturnType<typeof upstreamDuration.labels>;

  constructor(
    readonly listener: string,
    readonly config: TerminateRoute,
    readonly cluster: UpstreamCluster,
  ) {
    this.policy = new AuthorizationPolicy(config.authorization);
    this.latency = upstreamDuration.labels(cluster.name);
  }

  countStatus(status: number): void {
    let counter = this.#statusCounters.get(status);
    if (!counter) this.#statusCounters.set(status, (counter = httpRequests.labels(this.listener, this.config.name, String(status))));
    counter.inc();
  }

  countRefusal(reason: string): void {
    let counter = this.#refusalCounters.get(reason);
    if (!counter) this.#refusalCounters.set(reason, (counter = httpRefusals.labels(this.listener, this.config.name, reason)));
    counter.inc();
  }
}
