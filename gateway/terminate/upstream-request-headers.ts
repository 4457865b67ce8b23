// The request sent upstream, its head built in one pass over the client's raw headers into a flat
// header list that the upstream connection's codec writes as it is: hop-by-hop
// headers dropped (and any the client's Connection header names), identity headers the client
// tried to set removed (client-identity-headers.ts, the route's strip_headers) or XFCC kept per
// the route's mode, x-forwarded-for/-proto set. Which name is which is compiled once per route
// into one HeaderNameTable, so each header costs one lookup and is never lowercased.
import type { DownstreamRequest } from '../session/downstream-request.js';
import type { TerminateRoute, XfccDetails, XfccMode } from '../config/types.js';
import { CLIENT_IDENTITY_HEADERS } from './client-identity-headers.js';
import { namedByRequestConnection, REQUEST_HOP_BY_HOP, withoutNamed } from '../message/hop-by-hop.js';
import type { UpstreamRequest } from '../upstream/upstream-exchange.js';
import type { ConnectionContext } from '../session/connection-context.js';
import { HeaderNameTable, type HeaderNameEntry } from '../message/header-name-table.js';
import { peerChainPem } from './peer-chain.js';
import { forwardedClientCert, xfccElement } from './xfcc.js';

const enum Kind {
  Kept = 0,
  Dropped,
  Host,
  ContentLength,
  Connection,
  ForwardedFor,
  ForwardedClientCert,
  RequestId,
}

/** Read by the head builder; the names that match exactly as written (no '_' for '-'), first. */
const HANDLED: readonly HeaderNameEntry[] = [
  { name: 'host', kind: Kind.Host },
  { name: 'content-length', kind: Kind.ContentLength },
  { name: 'connection', kind: Kind.Connection },
  { name: 'x-forwarded-for', kind: Kind.ForwardedFor },
  { name: 'x-forwarded-client-cert', kind: Kind.ForwardedClientCert },
  { name: 'x-request-id', kind: Kind.RequestId },
];

/** Dropped: hop-by-hop (Connection itself is HANDLED first), or set by the gateway / the upstream pool itself. */
const DROPPED: readonly HeaderNameEntry[] = [
  ...REQUEST_HOP_BY_HOP.map((name) => ({ name, kind: Kind.Dropped })),
  // What the gateway sets, also spelt with '_' (which CGI-style upstreams read as the same variable).
  ...['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-client-cert'].map((name) => ({ name, kind: Kind.Dropped, underscoreAsHyphen: true })),
];

const IDENTITY: readonly HeaderNameEntry[] = CLIENT_IDENTITY_HEADERS.map(({ name, prefix }) => ({ name, prefix, kind: Kind.Dropped, underscoreAsHyphen: true }));

/** What a route does with the client's headers, compiled once per route at config load. */
export class RequestHeaderPolicy {
  readonly names: HeaderNameTable;
  /** Keep a client's x-request-id (its callers are trusted to set one) rather than the gateway's. */
  readonly trustRequestId: boolean;

  constructor(
    readonly xfcc: XfccMode,
    readonly xfccDetails: XfccDetails,
    options: { readonly stripHeaders?: readonly string[]; readonly trustClientIdentityHeaders?: boolean; readonly trustRequestId?: boolean } = {},
  ) {
    this.trustRequestId = options.trustRequestId === true;
    // strip_headers: lowercase names, a trailing '*' for a prefix (config-values.ts checked them).
    const strip = (options.stripHeaders ?? []).map((name): HeaderNameEntry => {
      const prefix = name.endsWith('*');
      return { name: prefix ? name.slice(0, -1) : name, prefix, kind: Kind.Dropped, underscoreAsHyphen: true };
    });
    this.names = new HeaderNameTable([...HANDLED, ...DROPPED, ...(options.trustClientIdentityHeaders ? [] : IDENTITY), ...strip]);
  }

  static of(route: TerminateRoute): RequestHeaderPolicy {
    return new RequestHeaderPolicy(route.xfcc, route.xfccDetails, route);
  }
}

/**
 * The request sent upstream for `req`, to `path` (the target that was routed): its head as values
 * (message/request-head.ts), which only the upstream connection's codec turns into text.
 */
export function upstreamRequest(req: DownstreamRequest, conn: ConnectionContext, policy: RequestHeaderPolicy, path: string, generatedId: string): UpstreamRequest {
  const raw = req.rawHeaders;
  const names = policy.names;
  let headers: string[] = [];
  let incomingXfcc: string | undefined;
  let incomingXff: string | undefined;
  let connectionTokens: string | undefined;
  let authority: string | undefined;
  let hasLength = false;
  let requestId = generatedId;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    switch (names.kindOf(name)) {
      case Kind.Dropped:
        continue;
      case Kind.ForwardedClientCert:
        incomingXfcc = incomingXfcc === undefined ? value : `${incomingXfcc},${value}`;
        continue;
      case Kind.ForwardedFor:
        incomingXff = incomingXff === undefined ? value : `${incomingXff}, ${value}`;
        continue;
      case Kind.Connection:
        connectionTokens = connectionTokens === undefined ? value : `${connectionTokens},${value}`;
        continue;
      case Kind.RequestId:
        if (policy.trustRequestId && value !== '') requestId = value;
        continue;
      case Kind.Host:
        authority ??= value;
        break;
      case Kind.ContentLength:
        hasLength = true;
        break;
    }
    // llhttp (strict) already refused CR/LF in names and values, so they are sent as they are.
    headers.push(name, value);
  }
  if (connectionTokens !== undefined) {
    const named = namedByRequestConnection(connectionTokens);
    if (named !== undefined) headers = withoutNamed(headers, named);
  }
  const remote = req.remoteAddress;
  headers.push('x-forwarded-for', incomingXff === undefined ? remote : `${incomingXff}, ${remote}`);
  headers.push('x-forwarded-proto', conn.mtls ? 'https' : 'http');
  const identity = conn.identity;
  const xfcc = forwardedClientCert(policy.xfcc, incomingXfcc, conn.mtls && identity !== undefined, () => {
    // Every request on a keep-alive connection carries the same element: keep it on the connection.
    const last = conn.xfcc;
    if (last !== undefined && last.details === policy.xfccDetails) return last.element;
    const element = xfccElement(identity!, conn.by, policy.xfccDetails, () => (conn.chainPem ??= peerChainPem(conn.tlsSocket)));
    conn.xfcc = { details: policy.xfccDetails, element };
    return element;
  });
  // Our element never holds CR/LF/NUL (xfccElement encodes them); a client's was checked by llhttp.
  if (xfcc !== undefined) headers.push('x-forwarded-client-cert', xfcc);
  headers.push('x-request-id', requestId);
  return { method: req.method, scheme: conn.mtls ? 'https' : 'http', authority, path, headers, hasLength, body: req.body, requestId };
}
