// How an upstream chooses the endpoint for a request (before outlier detection passes over
// ejected ones): round robin; least request as the power of two choices (two distinct endpoints
// at random, the one with fewer requests in flight or waiting: a slow endpoint, whose requests
// pile up, gets fewer new ones, without scanning every endpoint); or random. Each is a function
// chosen once per upstream: nothing allocated per request.
import type { UpstreamBalance } from '../config/types.js';

/** What the balancer reads of an endpoint's pool. */
export interface Balanced {
  /** Requests running on its connections or waiting for one. */
  readonly inFlight: number;
}

/** The index of the endpoint a new request goes to. */
export type Balancer = (pools: readonly Balanced[]) => number;

export function createBalancer(policy: UpstreamBalance): Balancer {
  switch (policy) {
    case 'round_robin': {
      let next = 0;
      return (pools) => {
        const i = next < pools.length ? next : 0;
        next = i + 1;
        return i;
      };
    }
    case 'random':
      return (pools) => Math.floor(Math.random() * pools.length);
    case 'least_request':
      return (pools) => {
        const n = pools.length;
        if (n === 1) return 0;
        const a = Math.floor(Math.random() * n);
        let b = Math.floor(Math.random() * (n - 1));
        if (b >= a) b++;
        return pools[b]!.inFlight < pools[a]!.inFlight ? b : a;
      };
  }
}
