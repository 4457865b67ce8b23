// Relations between the sections of a built config: unique names and addresses, routes that point
// at upstreams and backends that exist, what a listener needs for its routes, and no two routes
// claiming the same connections. Each problem is reported at the field that causes it (the later
// of two clashing ones, naming the earlier); fields that already have a problem are skipped.
import { isIPv6 } from 'node:net';
import { childPath, itemPath } from './config-problem.js';
import { closest } from './did-you-mean.js';
import { trustDomainOfPattern } from './peer-trust.js';
import type { Address, GatewayConfig, Listener, PassthroughRoute, TerminateRoute } from './types.js';
import type { ReadContext } from './yaml-reader.js';

export function checkRules(config: GatewayConfig, cx: ReadContext): void {
  checkUniqueNames(config.listeners, 'listener', cx);
  checkUniqueNames(config.upstreams, 'upstream', cx);
  checkUniqueNames(config.backends, 'backend', cx);
  checkAddresses(config, cx);
  const upstreams = namesOf(config.upstreams, 'upstreams', cx);
  const backends = namesOf(config.backends, 'backends', cx);
  const used = new Set<string>();
  for (const listener of config.listeners) {
    checkUniqueNames(listener.routes, 'route', cx, ` on listener '${listener.name}'`);
    for (const route of listener.routes) {
      const at = cx.pathOf(route);
      if (route.kind === 'terminate') {
        checkReference('upstream', route.upstream, childPath(at, 'upstream'), upstreams, cx);
        if (route.grpc) checkGrpcUpstream(route.upstream, childPath(at, 'grpc'), config, cx);
      }
      else checkReference('backend', route.backend, childPath(at, 'backend'), backends, cx);
      used.add(`${route.kind}:${route.kind === 'terminate' ? route.upstream : route.backend}`);
    }
    checkListenerTls(listener, cx);
    checkAllowedTrustDomains(listener, cx);
    checkClaims(listener, cx);
    checkPlaintextCallers(listener, cx);
  }
  for (const upstream of config.upstreams) {
    const at = cx.pathOf(upstream);
    if (upstream.name !== '' && !used.has(`terminate:${upstream.name}`)) cx.problems.warn(childPath(at, 'name'), `upstream '${upstream.name}' is not used by any route`);
    if (!upstream.tls) cx.problems.warn(at, `upstream '${upstream.name}' has no tls: requests to it travel in plaintext`);
  }
  for (const backend of config.backends) {
    if (backend.name !== '' && !used.has(`passthrough:${backend.name}`)) cx.problems.warn(childPath(cx.pathOf(backend), 'name'), `backend '${backend.name}' is not used by any route`);
  }
}

/**
 * The names defined in a section, or undefined when one of them could not be read: a reference
 * to it would then be reported as unknown, which is not the problem to fix.
 */
function namesOf(items: readonly { name: string }[], section: string, cx: ReadContext): string[] | undefined {
  const unreadName = new RegExp(`^${section}(\\[\\d+\\](\\.name)?)?$`);
  if (cx.problems.hasProblemWhere((p) => unreadName.test(p))) return undefined;
  return [...new Set(items.map((i) => i.name))];
}

function where(at: string, cx: ReadContext): string {
  return `${at}, line ${cx.problems.lineOf(at)}`;
}

function checkUniqueNames(items: readonly { name: string }[], kind: string, cx: ReadContext, scope = ''): void {
  const first = new Map<string, string>();
  for (const item of items) {
    const at = cx.pathOf(item);
    if (item.name === '') continue;
    const seen = first.get(item.name);
    if (seen === undefined) first.set(item.name, at);
    else cx.problems.atValue(childPath(at, 'name'), `duplicate ${kind} name '${item.name}'${scope} (first at ${where(seen, cx)})`);
  }
}

/** gRPC needs HTTP/2 to its upstream (trailers, streams both ways): an HTTP/1.1 upstream could never carry it. */
function checkGrpcUpstream(name: string, at: string, config: GatewayConfig, cx: ReadContext): void {
  const upstream = config.upstreams.find((u) => u.name === name);
  if (upstream === undefined || (upstream.protocol ?? 'http1') !== 'http1') return;
  cx.problems.atValue(at, `a gRPC route needs an upstream that speaks HTTP/2, and upstream '${name}' speaks HTTP/1.1 (protocol: http1, the default): set its protocol to h2 or auto`);
}

function checkReference(kind: 'upstream' | 'backend', name: string, at: string, known: readonly string[] | undefined, cx: ReadContext): void {
  if (known === undefined || name === '' || known.includes(name) || cx.problems.hasProblemAt(at)) return;
  const suggestion = closest(name, known);
  const guess = suggestion === undefined ? '' : ` (did you mean '${suggestion}'?)`;
  const list = known.length > 0 ? `the ${kind}s are: ${known.join(', ')}` : `no ${kind}s are defined (add a '${kind}s' section)`;
  cx.problems.atValue(at, `unknown ${kind} '${name}'${guess}; ${list}`);
}

// ---- addresses ----

interface Bound {
  readonly at: string;
  readonly what: string;
  readonly address: Address;
}

/** Whether binding both would fail with EADDRINUSE: same port, and the same host or a wildcard covering the other. */
function overlaps(a: Address, b: Address): boolean {
  if (a.port !== b.port) return false;
  if (a.host === b.host || a.host === '::' || b.host === '::') return true;
  return (a.host === '0.0.0.0' && !isIPv6(b.host)) || (b.host === '0.0.0.0' && !isIPv6(a.host));
}

function checkAddresses(config: GatewayConfig, cx: ReadContext): void {
  const bound: Bound[] = [{ at: 'admin.address', what: 'the admin server', address: config.admin.address }];
  for (const listener of config.listeners) bound.push({ at: childPath(cx.pathOf(listener), 'address'), what: `listener '${listener.name}'`, address: listener.address });
  const seen: Bound[] = [];
  for (const b of bound) {
    if (b.address.port === 0 || cx.problems.hasProblemAt(b.at)) continue;
    const clash = seen.find((s) => overlaps(s.address, b.address));
    if (clash) cx.problems.atValue(b.at, `${show(b.address)} overlaps ${show(clash.address)} of ${clash.what} (${where(clash.at, cx)})`);
    seen.push(b);
  }
}

function show(a: Address): string {
  return isIPv6(a.host) ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

// ---- listeners ----

function checkListenerTls(listener: Listener, cx: ReadContext): void {
  const at = cx.pathOf(listener);
  const terminate = listener.routes.filter((r): r is TerminateRoute => r.kind === 'terminate');
  if (!listener.tls) {
    const tlsAt = childPath(at, 'tls');
    if (terminate.length > 0 && !cx.problems.hasProblemAt(tlsAt)) {
      cx.problems.atValue(tlsAt, `required key 'tls' is missing: terminate routes (${terminate.map((r) => r.name).join(', ')}) need the listener's certificates and client_auth`);
    }
    return;
  }
  const certificates = listener.tls.certificates;
  const defaults = certificates.filter((c) => c.sni.length === 0);
  for (const extra of defaults.slice(1)) {
    cx.problems.atValue(cx.pathOf(extra), `a second certificate without sni (the default is ${where(cx.pathOf(defaults[0]!), cx)}): give one of them sni names`);
  }
  const served = new Map<string, string>();
  for (const certificate of certificates) {
    const sniAt = childPath(cx.pathOf(certificate), 'sni');
    if (cx.problems.hasProblemAt(sniAt)) continue; // indices would not line up with the file
    certificate.sni.forEach((name, i) => {
      const nameAt = itemPath(sniAt, i);
      const first = served.get(name);
      if (first === undefined) served.set(name, nameAt);
      else cx.problems.atValue(nameAt, `'${name}' is already served by ${where(first, cx)}`);
    });
  }
}

/** With trust_domains, an allow-list entry of a trust domain without a bundle can never match: no client of it gets through the handshake. */
function checkAllowedTrustDomains(listener: Listener, cx: ReadContext): void {
  const domains = listener.tls?.clientAuth.trustDomains;
  if (!domains) return;
  const bundled = new Set(domains.map((d) => d.trustDomain));
  for (const route of listener.routes) {
    if (route.kind !== 'terminate') continue;
    const allowAt = childPath(cx.pathOf(route), 'authorize.allow');
    if (cx.problems.hasProblemAt(allowAt)) continue; // indices would not line up with the file
    route.authorization.allow.forEach((pattern, i) => {
      const domain = trustDomainOfPattern(pattern);
      if (domain === undefined || bundled.has(domain)) return;
      cx.problems.warn(itemPath(allowAt, i), `trust domain '${domain}' has no bundle in client_auth.trust_domains (${[...bundled].join(', ')}): no client of it can connect, so this entry never matches`);
    });
  }
}

/**
 * The front door picks a route by SNI (and ALPN): a name, or the default, may belong to one
 * passthrough route or to the terminate routes, never to both; two terminate routes may share a
 * host but not also its path prefix (the second would never be used).
 */
function checkClaims(listener: Listener, cx: ReadContext): void {
  const terminate = listener.routes.filter((r): r is TerminateRoute => r.kind === 'terminate');
  const passthrough = listener.routes.filter((r): r is PassthroughRoute => r.kind === 'passthrough');

  const terminateHosts = new Map<string, TerminateRoute>();
  const terminateMatches = new Map<string, TerminateRoute>();
  for (const route of terminate) {
    const host = route.match.host ?? '';
    if (!terminateHosts.has(host)) terminateHosts.set(host, route);
    const key = `${host} ${route.match.pathPrefix}`;
    const first = terminateMatches.get(key);
    if (first === undefined) terminateMatches.set(key, route);
    else {
      cx.problems.atValue(
        childPath(cx.pathOf(route), 'match'),
        `route '${first.name}' (${where(cx.pathOf(first), cx)}) already takes ${host === '' ? 'any host' : `host ${host}`} with path prefix ${route.match.pathPrefix}: this route would never be used`,
      );
    }
  }

  const claimed = new Map<string, string>();
  for (const route of passthrough) {
    const at = cx.pathOf(route);
    const sniAt = childPath(at, 'passthrough.sni');
    const alpn = route.alpn ?? '';
    if (!cx.problems.hasProblemAt(sniAt)) {
      route.sni.forEach((name, i) => {
        const nameAt = itemPath(sniAt, i);
        const key = `${name} ${alpn}`;
        const first = claimed.get(key);
        const terminating = alpn === '' ? terminateHosts.get(name) : undefined;
        if (first !== undefined) cx.problems.atValue(nameAt, `'${name}' is already claimed by ${where(first, cx)}`);
        else if (terminating) cx.problems.atValue(nameAt, `'${name}' is also the host of terminate route '${terminating.name}' (${where(cx.pathOf(terminating), cx)}): a connection cannot be both relayed and terminated`);
        else claimed.set(key, nameAt);
      });
    }
    if (!route.default) continue;
    const defaultAt = childPath(at, 'passthrough.default');
    const key = `* ${alpn}`;
    const first = claimed.get(key);
    const catchAll = alpn === '' ? terminateHosts.get('') : undefined;
    if (first !== undefined) cx.problems.atValue(defaultAt, `another passthrough route is already the default (${where(first, cx)})`);
    else if (catchAll) {
      cx.problems.atValue(defaultAt, `terminate route '${catchAll.name}' (${where(cx.pathOf(catchAll), cx)}) has no match.host, so it already takes the connections no other route claims: only one of them can be the default`);
    } else claimed.set(key, defaultAt);
  }
}

function checkPlaintextCallers(listener: Listener, cx: ReadContext): void {
  if (listener.mode !== 'STRICT') return;
  for (const route of listener.routes) {
    if (route.kind !== 'terminate' || !route.authorization.allowPlaintext) continue;
    cx.problems.atValue(
      childPath(cx.pathOf(route), 'authorize.allow_plaintext'),
      `only PERMISSIVE listeners take plaintext callers; listener '${listener.name}' is STRICT (every caller presents a certificate)`,
    );
  }
}
