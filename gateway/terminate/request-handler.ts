// The request path of a terminate listener, as a short sequence of named steps over the
// connection's context: normalize the path, check Host (one, valid, agreeing with SNI), pick the
// route, authorize the caller, build the upstream head, forward (forwarded-request.ts: tries and
// retries under the route's policy). The upstream gets the path that was routed.
import type { DownstreamRequest } from '../session/downstream-request.js';
import type { DownstreamResponse } from '../session/downstream-response.js';
import { log } from '../log.js';
import { listenerRefusals } from '../metrics/proxy-metrics.js';
import type { CompiledRoute } from './compiled-route.js';
import { sendError } from '../session/error-response.js';
import type { RequestReason } from '../reasons.js';
import { ForwardedRequest } from './forwarded-request.js';
import { requestHost, type HostRefusal } from './host-header.js';
import { ALLOW_DOUBLE_ENCODING, ALLOW_PATH_PARAMETERS, hasDoubleEncoding, normalizePath, PATH_REFUSALS, withoutPathParameters, type PathRefusal } from './request-path.js';
import type { TerminateRouter } from './terminate-router.js';
import { upstreamRequest } from './upstream-request-headers.js';

export function createRequestHandler(listener: string, router: () => TerminateRouter<CompiledRoute>) {
  const countRefusal = listenerRefusals(listener);
  const refuse = (res: DownstreamResponse, status: number, reason: string, message: string, extra?: Record<string, unknown>) => {
    countRefusal(status, reason);
    sendError(res, status, reason, message, extra);
  };
  /** A malformed request (bad_path, bad_host): logged with the rule that refused it, which the 400 names too. */
  const refuseMalformed = (res: DownstreamResponse, reason: RequestReason, refusal: PathRefusal | HostRefusal, fields: Record<string, unknown>) => {
    log.info('request_refused', { listener, reason, rule: refusal.rule, ...fields });
    refuse(res, 400, reason, refusal.message, { rule: refusal.rule });
  };

  return function handleRequest(req: DownstreamRequest, res: DownstreamResponse): void {
    const conn = req.connection;
    const routes = router();
    const url = req.url;
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);

    // 1. The path routes and upstreams read alike (request-path.ts); the same string when it already is.
    const normalized = normalizePath(path, routes.pathAllowances);
    if (typeof normalized !== 'string') return refuseMalformed(res, 'bad_path', normalized, { path });

    // 2. One valid Host, agreeing with SNI: a client certificate policy is chosen by SNI, so no
    // fronting past it. A client that sent no SNI (one that connects by IP address) got the default
    // certificate; its Host is not compared, and routes and their allow lists still decide.
    const host = requestHost(req.rawHeaders, conn);
    if (typeof host !== 'string') return refuseMalformed(res, 'bad_host', host, {});
    if (conn.sni !== undefined && host !== conn.sni) {
      return refuse(res, 421, 'sni_host_mismatch', `Host '${host}' does not match the TLS server name '${conn.sni}'`);
    }

    // 3. Route, on the path as upstreams that drop ';' parameters read it where a route allows them.
    const allowances = routes.pathAllowances;
    const routedPath = (allowances & ALLOW_PATH_PARAMETERS) !== 0 && normalized.includes(';') ? withoutPathParameters(normalized) : normalized;
    const route = routes.match(host, routedPath);
    if (!route) return refuse(res, 404, 'no_route', `no route for ${host}${routedPath}`);
    if (allowances !== 0) {
      const refusal = disallowedByRoute(route, normalized);
      if (refusal !== undefined) return refuseMalformed(res, 'bad_path', refusal, { path, route: route.config.name });
    }

    // 4. Authorize (default deny).
    const decision = route.policy.check(conn.identity);
    if (!decision.allowed) {
      route.countRefusal(decision.reason);
      route.countStatus(403);
      log.info('request_denied', { listener, route: route.config.name, reason: decision.reason, identity: conn.identity?.spiffeId ?? null, path });
      return sendError(res, 403, decision.reason, 'caller is not allowed on this route', {
        route: route.config.name,
        identity: conn.identity?.spiffeId ?? null,
      });
    }
    // The body must fit the route's limit: known (a Content-Length) before anything goes upstream.
    if (req.body !== null && !req.body.limit(route.maxRequestBodyBytes)) {
      route.countRefusal('request_body_too_large');
      route.countStatus(413);
      log.info('request_refused', { listener, route: route.config.name, reason: 'request_body_too_large', identity: conn.identity?.spiffeId ?? null, path });
      return sendError(res, 413, 'request_body_too_large', `request body is larger than ${route.maxRequestBodyBytes} bytes`, { route: route.config.name });
    }

    // 5. Upstream head, then dispatch with the path that was routed.
    const upstream = upstreamRequest(req, conn, route.requestHeaders, upstreamTarget(url, path, query, normalized, route));
    new ForwardedRequest(req, res, route, conn, upstream).start();
  };
}

/** A refusal the listener deferred because some route allows it, when this route does not. */
function disallowedByRoute(route: CompiledRoute, path: string): PathRefusal | undefined {
  const allowed = route.pathAllowances;
  if ((allowed & ALLOW_PATH_PARAMETERS) === 0 && path.includes(';')) return PATH_REFUSALS.path_parameters;
  if ((allowed & ALLOW_DOUBLE_ENCODING) === 0 && hasDoubleEncoding(path)) return PATH_REFUSALS.double_encoding;
  return undefined;
}

/** The request target sent upstream: the client's own when normalizing changed nothing. */
function upstreamTarget(url: string, path: string, query: number, normalized: string, route: CompiledRoute): string {
  let forwarded = normalized;
  // A route that keeps '//' gets them as sent, otherwise normalized the same way (so this cannot fail).
  if (!route.mergeSlashes && path.includes('//')) forwarded = normalizePath(path, route.pathAllowances, false) as string;
  if (forwarded === path) return url;
  return query === -1 ? forwarded : forwarded + url.slice(query);
}
