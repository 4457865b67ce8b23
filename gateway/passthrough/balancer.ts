// Picks the endpoint of a passthrough backend for a new connection and the order of failover
// when connecting fails. Round robin rotates the starting endpoint; least connections starts at
// the endpoint with the fewest open connections (ties broken by rotation, so an idle backend
// still spreads). One balancer per backend, shared by every route and listener that uses it.
import type { Address, Backend, BalancePolicy } from '../config/types.js';

export class Balancer {
  readonly endpoints: readonly Address[];
  readonly policy: BalancePolicy;
  /** Connections being opened or open, per endpoint index. */
  readonly #active: Uint32Array;
  #next = 0;

  constructor(backend: Pick<Backend, 'name' | 'endpoints' | 'balance'>) {
    if (backend.endpoints.length === 0) throw new Error(`backend '${backend.name}' has no endpoints`);
    this.endpoints = backend.endpoints;
    this.policy = backend.balance;
    this.#active = new Uint32Array(backend.endpoints.length);
  }

  /**
   * Index of the first endpoint to try. Failover tries `(first + k) % endpoints.length` for
   * k = 1 .. endpoints.length - 1: every endpoint at most once per connection.
   */
  first(): number {
    const n = this.endpoints.length;
    const start = this.#next;
    this.#next = (start + 1) % n;
    if (this.policy === 'round_robin' || n === 1) return start;
    let best = start;
    for (let k = 1; k < n; k++) {
      const i = (start + k) % n;
      if (this.#active[i]! < this.#active[best]!) best = i;
    }
    return best;
  }

  /** An attempt on endpoint `i` started; pair with `release(i)` when it fails or closes. */
  acquire(i: number): void {
    this.#active[i]!++;
  }

  release(i: number): void {
    if (this.#active[i]! > 0) this.#active[i]!--;
  }

  active(i: number): number {
    return this.#active[i]!;
  }
}
