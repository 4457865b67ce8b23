// The front door's route table: which route a TLS connection belongs to, from its SNI and the
// ALPN protocols it offers. Compiled once per listener (and again on reload); a lookup is two
// map probes and no allocation. Order, as Envoy's filter chain match: exact name, then the
// wildcard `*.suffix` for exactly one more label (so a name has one candidate suffix, the
// longest one, and `*.b.example.com` beats `*.example.com` by construction), then the default. At each level an entry that
// requires an ALPN protocol only matches a client that offered it; entries with ALPN come before
// the plain one of the same name, in config order; if none at a level matches, the next level is
// tried. Terminate routes claim their `match.host` (or, without one, the default).
import type { PassthroughRoute, Route } from '../config/types.js';
import { wildcardKey } from '../terminate/host-pattern.js';

export type SniLookup<R> = { readonly kind: 'passthrough'; readonly route: R } | { readonly kind: 'terminate' } | { readonly kind: 'none' };

interface Entry<R> {
  /** The ALPN protocol the client must offer; undefined: any client. */
  readonly alpn: string | undefined;
  readonly result: SniLookup<R>;
}

const TERMINATE = Object.freeze({ kind: 'terminate' as const });
const NONE = Object.freeze({ kind: 'none' as const });

export class SniRouter<R> {
  readonly #exact = new Map<string, Entry<R>[]>();
  /** Keyed by the suffix with its leading dot: `*.example.com` → `.example.com`. */
  readonly #wildcard = new Map<string, Entry<R>[]>();
  readonly #default: Entry<R>[] = [];

  /**
   * Builds the table from a listener's routes. `bind` turns each passthrough route into what a
   * lookup returns (e.g. the route with its balancer and metric handles), once per route.
   */
  constructor(routes: readonly Route[], bind: (route: PassthroughRoute) => R) {
    for (const route of routes) {
      if (route.kind === 'passthrough') {
        const entry: Entry<R> = { alpn: route.alpn, result: Object.freeze({ kind: 'passthrough' as const, route: bind(route) }) };
        for (const name of route.sni) this.#add(name, entry);
        if (route.default) add(this.#default, entry);
      } else {
        const entry: Entry<R> = { alpn: undefined, result: TERMINATE };
        if (route.match.host === undefined) add(this.#default, entry);
        else this.#add(route.match.host, entry);
      }
    }
  }

  /** `sni` as the ClientHello reader gives it: lowercase, without a trailing dot. */
  lookup(sni: string | undefined, alpn: readonly string[]): SniLookup<R> {
    if (sni !== undefined) {
      const exact = this.#exact.get(sni);
      const found = exact && pick(exact, alpn);
      if (found) return found;
      const key = wildcardKey(sni);
      const wildcard = key === undefined ? undefined : this.#wildcard.get(key);
      const wild = wildcard && pick(wildcard, alpn);
      if (wild) return wild;
    }
    return pick(this.#default, alpn) ?? NONE;
  }

  #add(pattern: string, entry: Entry<R>): void {
    const name = normalizePattern(pattern);
    const table = name.startsWith('*.') ? this.#wildcard : this.#exact;
    const key = name.startsWith('*.') ? name.slice(1) : name;
    let list = table.get(key);
    if (list === undefined) table.set(key, (list = []));
    add(list, entry);
  }
}

/** Entries with an ALPN requirement first (config order kept among them), then plain ones. */
function add<R>(list: Entry<R>[], entry: Entry<R>): void {
  if (entry.alpn === undefined) list.push(entry);
  else {
    const firstPlain = list.findIndex((e) => e.alpn === undefined);
    list.splice(firstPlain === -1 ? list.length : firstPlain, 0, entry);
  }
}

function pick<R>(list: readonly Entry<R>[], offered: readonly string[]): SniLookup<R> | undefined {
  for (const entry of list) {
    if (entry.alpn === undefined || offered.includes(entry.alpn)) return entry.result;
  }
  return undefined;
}

function normalizePattern(pattern: string): string {
  const lower = pattern.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}
