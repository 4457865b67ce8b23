// Open connections per client address, for a listener's max_connections_per_source. An address
// is only in the map while it has a connection open, so the map is bounded by the listener's open
// connections. Counts are per worker process, like max_connections.

export class ConnectionsPerSource {
  readonly #open = new Map<string, number>();

  /** Counts a new connection from `source`, unless it already has `limit` open: then false. */
  admit(source: string, limit: number): boolean {
    const open = this.#open.get(source) ?? 0;
    if (open >= limit) return false;
    this.#open.set(source, open + 1);
    return true;
  }

  /** A connection `admit` counted has closed. */
  release(source: string): void {
    const open = this.#open.get(source);
    if (open === undefined) return;
    if (open <= 1) this.#open.delete(source);
    else this.#open.set(source, open - 1);
  }

  /** Addresses with a connection open. */
  get sources(): number {
    return this.#open.size;
  }
}
