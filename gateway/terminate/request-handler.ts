// The request path of a terminate listener, as a short sequence of named steps over the
// connection's context: check Host against SNI, pick the route, authorize the caller, build the
// upstream head, dispatch (failing over to the next endpoint when a connection cannot be made).
import type { ClientRequest } from '../http1/client-request.js';
import type { ClientResponse } from '../http1/client-response.js';
import { log } from '../log.js';
import { listenerRefusals } from '../metrics/proxy-metrics.js';
import type { RequestFailure } from '../upstream/upstream-errors.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import type { CompiledRoute } from './compiled-route.js';
import type { ConnectionContext } from './connection-context.js';
import { sendError } from '../http1/error-response.js';
import { failoverPool } from './failover.js';
import { normalizeHost } from './host-pattern.js';
import { ProxyExchange } from './proxy-exchange.js';
import type { TerminateRouter } from './terminate-router.js';
import { upstreamRequestHead, type UpstreamRequestHead } from './upstream-request-headers.js';

/** A dot-segment ("/../", "/./") or an encoded '.', '/' or '\' could make the upstream see a different path than we routed. */
const AMBIGUOUS_PATH = /\/\.\.?(?:\/|$)|%2e|%2f|%5c|\\/i;

export function createRequestHandler(listener: string, router: () => TerminateRouter<CompiledRoute>) {
  const countRefusal = listenerRefusals(listener);
  const refuse = (res: ClientResponse, status: number, reason: string, message: string, extra?: Record<string, unknown>) => {
    countRefusal(status, reason);
    sendError(res, status, reason, message, extra);
  };

  return function handleRequest(req: ClientRequest, res: ClientResponse): void {
    const conn = req.connection;
    const url = req.url;
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    if (path[0] !== '/' || AMBIGUOUS_PATH.test(path)) {
      return refuse(res, 400, 'bad_path', 'request path must be origin-form without dot-segments or encoded separators');
    }

    // 1. Host must agree with SNI: a client certificate policy is chosen by SNI, so no fronting past it.
    const host = normalizeHost(hostHeader(req.rawHeaders));
    if (conn.sni !== undefined && host !== conn.sni) {
      return refuse(res, 421, 'sni_host_mismatch', `Host '${host}' does not match the TLS server name '${conn.sni}'`);
    }

    // 2. Route.
    const route = router().match(host, path);
    if (!route) return refuse(res, 404, 'no_route', `no route for ${host}${path}`);

    // 3. Authorize (default deny).
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

    // 4. Upstream head, then dispatch.
    const head = upstreamRequestHead(req, conn, route.config);
    dispatch(req, res, route, conn, url, head, route.cluster.pick(), 1);
  };
}

/** The first Host header, as req.headers.host would give it, without building the headers object. */
function hostHeader(raw: readonly string[]): string {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') return raw[i + 1]!;
  }
  return '';
}

function dispatch(
  req: ClientRequest,
  res: ClientResponse,
  route: CompiledRoute,
  conn: ConnectionContext,
  url: string,
  head: UpstreamRequestHead,
  pool: UpstreamPool,
  attempt: number,
): void {
  const hasBody = req.body !== null;
  const cluster = route.cluster;
  const exchange = new ProxyExchange(
    res,
    {
      onResponse: (status, seconds) => {
        route.countStatus(status);
        route.latency.observe(seconds);
      },
      onFailure: (failure: RequestFailure, err: Error) => {
        const next = failoverPool(failure, cluster, pool, attempt, hasBody, res.closed);
        const retry = next !== undefined;
        log.warn(failure.status < 500 ? 'request_body_failed' : 'upstream_failed', {
          route: route.config.name,
          upstream: cluster.name,
          reason: failure.reason,
          error: err.message,
          attempt,
          retry,
          identity: conn.identity?.spiffeId ?? null,
        });
        if (retry) dispatch(req, res, route, conn, url, head, next, attempt + 1);
        return retry;
      },
    },
    (failure, err) => {
      route.countRefusal(failure.reason);
      route.countStatus(failure.status);
      const message = failure.status < 500 ? err.message : `upstream '${cluster.name}' failed: ${failure.reason}`;
      sendError(res, failure.status, failure.reason, message, { route: route.config.name });
    },
  );
  pool.dispatch(
    {
      path: url,
      method: req.method,
      headerLines: head.lines,
      hasHost: head.hasHost,
      hasLength: head.hasLength,
      body: req.body,
    },
    exchange,
  );
  exchange.watchClient(req.body);
}
