// The request path of a terminate listener, as a short sequence of named steps over the
// connection's context: normalize the path, check Host (one, valid, agreeing with SNI), pick the
// route, authorize the caller, build the upstream head, forward (forwarded-request.ts: tries and
// retries under the route's policy). The upstream gets the path that was routed.
import type { DownstreamRequest } from '../session/downstream-request.js';
import type { DownstreamResponse } from '../session/downstream-response.js';
import { log } from '../log.js';
import { listenerRefusals } from '../metrics/proxy-metrics.js';
import type { CompiledRoute } from './compiled-route.js';
import { randomUUID } from 'node:crypto';
import { sendError } from '../session/error-response.js';
import type { AccessLog, RequestLog } from '../access-log/access-log.js';
import type { RequestReason } from '../reasons.js';
import { ForwardedRequest } from './forwarded-request.js';
import { requestHost, type HostRefusal } from './host-header.js';
import { ALLOW_DOUBLE_ENCODING, ALLOW_PATH_PARAMETERS, hasDoubleEncoding, normalizePath, PATH_REFUSALS, withoutPathParameters, type PathRefusal } from './request-path.js';
import type { TerminateRouter } from './terminate-router.js';
import { upstreamRequest } from './upstream-request-headers.js';

export function createRequestHandler(listener: string, router: () => TerminateRouter<CompiledRoute>, accessLog: () => AccessLog | undefined = () => undefined) {
  const countRefusal = listenerRefusals(listener);
  /** A refusal the gateway answers itself: counted, answered (with the request id), and in the access log. */
  const answer = (request: Answered, status: number, reason: string, message: string, extra?: Record<string, unknown>) => {
    const bytes = sendError(request.res, status, reason, message, extra, request.id);
    request.record?.finish(status, reason, bytes);
  };
  const refuse = (request: Answered, status: number, reason: string, message: string, extra?: Record<string, unknown>) => {
    countRefusal(status, reason);
    answer(request, status, reason, message, extra);
  };
  /** A malformed request (bad_path, bad_host): logged with the rule that refused it, which the 400 names too. */
  const refuseMalformed = (request: Answered, reason: RequestReason, refusal: PathRefusal | HostRefusal, fields: Record<string, unknown>) => {
    log.info('request_refused', { listener, reason, rule: refusal.rule, ...fields });
    refuse(request, 400, reason, refusal.message, { rule: refusal.rule });
  };

  return function handleRequest(req: DownstreamRequest, res: DownstreamResponse): void {
    const conn = req.connection;
    const routes = router();
    const url = req.url;
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    // The request's id (the client's own, on a route that trusts it: upstream-request-headers.ts).
    const id = randomUUID();
    const request: Answered = { res, id, record: accessLog()?.start(listener, req, path, id) };

    // 1. The path routes and upstreams read alike (request-path.ts); the same string when it already is.
    const normalized = normalizePath(path, routes.pathAllowances);
    if (typeof normalized !== 'string') return refuseMalformed(request, 'bad_path', normalized, { path });

    // 2. One valid Host, agreeing with SNI: a client certificate policy is chosen by SNI, so no
    // fronting past it. A client that sent no SNI (one that connects by IP address) got the default
    // certificate; its Host is not compared, and routes and their allow lists still decide.
    const host = requestHost(req.rawHeaders, conn);
    if (typeof host !== 'string') return refuseMalformed(request, 'bad_host', host, {});
    if (conn.sni !== undefined && host !== conn.sni) {
      return refuse(request, 421, 'sni_host_mismatch', `Host '${host}' does not match the TLS server name '${conn.sni}'`);
    }

    // 3. Route, on the path as upstreams that drop ';' parameters read it where a route allows them.
    const allowances = routes.pathAllowances;
    const routedPath = (allowances & ALLOW_PATH_PARAMETERS) !== 0 && normalized.includes(';') ? withoutPathParameters(normalized) : normalized;
    const route = routes.match(host, routedPath);
    if (!route) return refuse(request, 404, 'no_route', `no route for ${host}${routedPath}`);
    if (allowances !== 0) {
      const refusal = disallowedByRoute(route, normalized);
      if (refusal !== undefined) return refuseMalformed(request, 'bad_path', refusal, { path, route: route.config.name });
    }
    const record = request.record;
    if (record !== undefined) record.route = route.config.name;

    // 4. Authorize (default deny).
    const decision = route.policy.check(conn.identity);
    if (!decision.allowed) {
      route.countRefusal(decision.reason);
      route.countStatus(403);
      log.info('request_denied', { listener, route: route.config.name, reason: decision.reason, identity: conn.identity?.spiffeId ?? null, path });
      return answer(request, 403, decision.reason, 'caller is not allowed on this route', {
        route: route.config.name,
        identity: conn.identity?.spiffeId ?? null,
      });
    }
    // gRPC needs its trailers and streams both ways: an HTTP/1.1 upstream cannot carry it.
    if (res.grpc && !route.carriesGrpc) {
      route.countRefusal('grpc_needs_http2');
      route.countStatus(501);
      return answer(request, 501, 'grpc_needs_http2', `upstream '${route.cluster.name}' speaks HTTP/1.1; a gRPC route needs protocol h2 or auto`, { route: route.config.name });
    }
    // The body must fit the route's limit: known (a Content-Length) before anything goes upstream.
    if (req.body !== null && !req.body.limit(route.maxRequestBodyBytes)) {
      route.countRefusal('request_body_too_large');
      route.countStatus(413);
      log.info('request_refused', { listener, route: route.config.name, reason: 'request_body_too_large', identity: conn.identity?.spiffeId ?? null, path });
      return answer(request, 413, 'request_body_too_large', `request body is larger than ${route.maxRequestBodyBytes} bytes`, { route: route.config.name });
    }

    // 5. Upstream head, then dispatch with the path that was routed.
    const upstream = upstreamRequest(req, conn, route.requestHeaders, upstreamTarget(url, path, query, normalized, route), id);
    if (record !== undefined) record.requestId = upstream.requestId ?? id; // a trusting route's is the client's
    new ForwardedRequest(req, res, route, conn, upstream, record).start();
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

/** What a refusal needs of the request it answers. */
interface Answered {
  readonly res: DownstreamResponse;
  readonly id: string;
  readonly record: RequestLog | undefined;
}
