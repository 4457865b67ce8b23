// The one place the request path decides to try a failed request again, and where: only when
// nothing of it can have reached the upstream (the failure says so: the connection never came up),
// none of its body has been read (so it can still be sent whole, whatever the method), the client
// is still waiting, and an endpoint is left that it has not been tried on — the one after the
// endpoint that failed, not whatever round robin would hand out next.
import type { UpstreamCluster } from '../upstream/upstream-cluster.js';
import type { RequestFailure } from '../upstream/upstream-errors.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';

/** The endpoint to try after attempt number `attempt` (1 for the first) failed on `failed`, or undefined to answer the failure. */
export function failoverPool(failure: RequestFailure, cluster: UpstreamCluster, failed: UpstreamPool, attempt: number, bodyStarted: boolean, clientGone: boolean): UpstreamPool | undefined {
  if (!failure.retrySafe || bodyStarted || clientGone || attempt >= cluster.poolCount) return undefined;
  return cluster.after(failed);
}
