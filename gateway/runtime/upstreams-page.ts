// GET /upstreams: every upstream's endpoints with their health, ejection, requests and connections.
// With workers, each worker has its own pools, so the page the primary serves adds up their
// requests and connections per endpoint; an endpoint is healthy only where every worker sends it
// traffic (health checks are shared, so they agree but for a moment after a
// verdict; passive ejections are each worker's own).
import type { UpstreamCluster, UpstreamEndpointStatus } from '../upstream/upstream-cluster.js';

export type UpstreamsPage = Record<string, { balance: string; endpoints: UpstreamEndpointStatus[] }>;

/** One process's page. */
export function upstreamsPage(clusters: ReadonlyMap<string, UpstreamCluster>): UpstreamsPage {
  const page: UpstreamsPage = {};
  for (const [name, cluster] of clusters) page[name] = { balance: cluster.config.balance ?? 'round_robin', endpoints: cluster.endpoints() };
  return page;
}

/** The workers' pages as one. */
export function mergeUpstreamsPages(pages: readonly UpstreamsPage[]): UpstreamsPage {
  const merged: UpstreamsPage = {};
  for (const page of pages) {
    for (const [name, upstream] of Object.entries(page)) {
      const into = merged[name];
      if (into === undefined) {
        merged[name] = { balance: upstream.balance, endpoints: upstream.endpoints.map((e) => ({ ...e })) };
        continue;
      }
      upstream.endpoints.forEach((e, i) => {
        const sum = into.endpoints[i];
        if (sum === undefined || sum.endpoint !== e.endpoint) return; // a worker between reloads: its page is another configuration's
        into.endpoints[i] = {
          ...sum,
          healthy: sum.healthy && e.healthy,
          ejected_until: sum.ejected_until ?? e.ejected_until,
          in_flight: sum.in_flight + e.in_flight,
          connections: sum.connections + e.connections,
          idle_connections: sum.idle_connections + e.idle_connections,
          pending: sum.pending + e.pending,
        };
      });
    }
  }
  return merged;
}
