// Request routing on a terminate listener, compiled once per config: routes grouped by host
// (exact, then `*.suffix`, then any host), each group ordered by longest path prefix. Paths are
// matched as request-path.ts normalized them, case-sensitively unless a route's
// match.case_insensitive says otherwise (ASCII letters only, as upstreams that ignore case do).
import type { TerminateRoute } from '../config/types.js';
import { startsWithFolded } from '../message/header-name-table.js';
import { wildcardKey } from './host-pattern.js';
import { ALLOW_DOUBLE_ENCODING, ALLOW_PATH_PARAMETERS } from './request-path.js';

/** A route with its path prefix as compared: lowercased when the route ignores case. */
interface Candidate<R> {
  readonly route: R;
  readonly prefix: string;
  readonly caseInsensitive: boolean;
}

export class TerminateRouter<R extends { readonly config: TerminateRoute }> {
  readonly #exact = new Map<string, Candidate<R>[]>();
  readonly #wildcard = new Map<string, Candidate<R>[]>();
  readonly #anyHost: Candidate<R>[] = [];
  /** What at least one route allows of request-path.ts's refusals (ALLOW_* bits): 0 in most configs. */
  readonly pathAllowances: number;

  constructor(routes: readonly R[]) {
    let allowances = 0;
    for (const route of routes) {
      const match = route.config.match;
      const caseInsensitive = match.caseInsensitive === true;
      const candidate = { route, prefix: caseInsensitive ? match.pathPrefix.toLowerCase() : match.pathPrefix, caseInsensitive };
      const host = match.host?.toLowerCase();
      if (host === undefined) this.#anyHost.push(candidate);
      else if (host.startsWith('*.')) push(this.#wildcard, host.slice(1), candidate);
      else push(this.#exact, host, candidate);
      allowances |= pathAllowancesOf(route.config);
    }
    this.pathAllowances = allowances;
    const byPrefix = (a: Candidate<R>, b: Candidate<R>) => b.prefix.length - a.prefix.length;
    for (const group of [...this.#exact.values(), ...this.#wildcard.values(), this.#anyHost]) group.sort(byPrefix);
  }

  /** `host` normalized (host-pattern.ts); `path` normalized (request-path.ts), without the query. */
  match(host: string, path: string): R | undefined {
    const exact = this.#exact.get(host);
    const hit = exact && firstPrefix(exact, path);
    if (hit) return hit;
    const key = wildcardKey(host);
    const wild = key === undefined ? undefined : this.#wildcard.get(key);
    return (wild && firstPrefix(wild, path)) || firstPrefix(this.#anyHost, path);
  }
}

export function pathAllowancesOf(route: TerminateRoute): number {
  return (route.allowPathParameters ? ALLOW_PATH_PARAMETERS : 0) | (route.allowDoubleEncoding ? ALLOW_DOUBLE_ENCODING : 0);
}

function push<R>(map: Map<string, R[]>, key: string, route: R): void {
  const list = map.get(key);
  if (list) list.push(route);
  else map.set(key, [route]);
}

function firstPrefix<R>(candidates: readonly Candidate<R>[], path: string): R | undefined {
  for (const candidate of candidates) {
    if (candidate.caseInsensitive ? startsWithFolded(path, candidate.prefix) : path.startsWith(candidate.prefix)) return candidate.route;
  }
  return undefined;
}
