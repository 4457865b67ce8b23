// Request routing on a terminate listener, compiled once per config: routes grouped by host
// (exact, then `*.suffix`, then any host), each group ordered by longest path prefix.
import type { TerminateRoute } from '../config/types.js';
import { wildcardKey } from './host-pattern.js';

export class TerminateRouter<R extends { readonly config: TerminateRoute }> {
  readonly #exact = new Map<string, R[]>();
  readonly #wildcard = new Map<string, R[]>();
  readonly #anyHost: R[] = [];

  constructor(routes: readonly R[]) {
    for (const route of routes) {
      const host = route.config.match.host?.toLowerCase();
      if (host === undefined) this.#anyHost.push(route);
      else if (host.startsWith('*.')) push(this.#wildcard, host.slice(1), route);
      else push(this.#exact, host, route);
    }
    const byPrefix = (a: R, b: R) => b.config.match.pathPrefix.length - a.config.match.pathPrefix.length;
    for (const group of [...this.#exact.values(), ...this.#wildcard.values(), this.#anyHost]) group.sort(byPrefix);
  }

  /** `host` normalized (host-pattern.ts); `path` the request target. */
  match(host: string, path: string): R | undefined {
    const exact = this.#exact.get(host);
    const hit = exact && firstPrefix(exact, path);
    if (hit) return hit;
    const key = wildcardKey(host);
    const wild = key === undefined ? undefined : this.#wildcard.get(key);
    return (wild && firstPrefix(wild, path)) || firstPrefix(this.#anyHost, path);
  }
}

function push<R>(map: Map<string, R[]>, key: string, route: R): void {
  const list = map.get(key);
  if (list) list.push(route);
  else map.set(key, [route]);
}

function firstPrefix<R extends { readonly config: TerminateRoute }>(routes: readonly R[], path: string): R | undefined {
  for (const route of routes) if (path.startsWith(route.config.match.pathPrefix)) return route;
  return undefined;
}
