// The addresses behind a host-name endpoint, re-resolved every dns_refresh: new connections go to
// them in turn. When the set changes, the endpoint's pooled connections are renewed (requests in
// flight finish on the old ones), so an address that appears (a replica added behind the name)
// gets its share at once and one that disappears gets nothing new. A failed lookup keeps the last
// good answer and is logged; before the first answer, connections use the name (the system resolves
// it at connect time).
import { log } from '../log.js';
import type { ResolveAddresses } from './dns-resolver.js';

export class EndpointAddresses {
  #addresses: readonly string[] = [];
  #next = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(
    private readonly upstream: string,
    private readonly host: string,
    private readonly refreshMs: number,
    private readonly resolve: ResolveAddresses,
    /** The set changed: renew connections so that the new set shares them. */
    private readonly onChange: () => void,
  ) {}

  /** The address for the next connection, or undefined before the first answer. */
  next(): string | undefined {
    const addresses = this.#addresses;
    if (addresses.length === 0) return undefined;
    const i = this.#next++ % addresses.length;
    return addresses[i];
  }

  get addresses(): readonly string[] {
    return this.#addresses;
  }

  /** Resolves now, then every refreshMs. */
  start(): void {
    void this.#refresh();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  async #refresh(): Promise<void> {
    try {
      const found = [...new Set(await this.resolve(this.host))].sort();
      if (this.#stopped) return;
      if (found.join() !== this.#addresses.join()) {
        log.info('upstream_dns_changed', { upstream: this.upstream, host: this.host, addresses: found, before: this.#addresses });
        const first = this.#addresses.length === 0;
        this.#addresses = found;
        // Connections made by name before the first answer went where the system's resolver said.
        if (!first) this.onChange();
      }
    } catch (err) {
      if (this.#stopped) return;
      log.warn('upstream_dns_failed', { upstream: this.upstream, host: this.host, error: (err as Error).message, kept: this.#addresses });
    }
    this.#timer = setTimeout(() => void this.#refresh(), this.refreshMs);
    this.#timer.unref();
  }
}
