// The request head sent upstream, built in one pass over the client's raw headers into the header
// lines the upstream connection writes as they are (one string, no intermediate array): hop-by-hop
// headers dropped (and any the client's Connection header names), identity headers the client
// tried to set removed (client-identity-headers.ts, the route's strip_headers) or XFCC kept per
// the route's mode, x-forwarded-for/-proto set. Which name is which is compiled once per route
// into one HeaderNameTable, so each header costs one lookup and is never lowercased.
import type { ClientRequest } from '../http1/client-request.js';
import type { TerminateRoute, XfccDetails, XfccMode } from '../config/types.js';
import { CLIENT_IDENTITY_HEADERS } from './client-identity-headers.js';
import { namedByRequestConnection, REQUEST_HOP_BY_HOP } from '../message/hop-by-hop.js';
import type { ConnectionContext } from './connection-context.js';
import { HeaderNameTable, type HeaderNameEntry } from './header-name-table.js';
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
}

/** Read by the head builder; the names that match exactly as written (no '_' for '-'), first. */
const HANDLED: readonly HeaderNameEntry[] = [
  { name: 'host', kind: Kind.Host },
  { name: 'content-length', kind: Kind.ContentLength },
  { name: 'connection', kind: Kind.Connection },
  { name: 'x-forwarded-for', kind: Kind.ForwardedFor },
  { name: 'x-forwarded-client-cert', kind: Kind.ForwardedClientCert },
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

  constructor(
    readonly xfcc: XfccMode,
    readonly xfccDetails: XfccDetails,
    options: { readonly stripHeaders?: readonly string[]; readonly trustClientIdentityHeaders?: boolean } = {},
  ) {
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

export interface UpstreamRequestHead {
  /** Header lines, each ending in CRLF, without the request line and the final empty line. */
  readonly lines: string;
  /** Whether `lines` hold Host / Content-Length (the pool adds what is missing). */
  readonly hasHost: boolean;
  readonly hasLength: boolean;
}

export function upstreamRequestHead(req: ClientRequest, conn: ConnectionContext, policy: RequestHeaderPolicy): UpstreamRequestHead {
  const raw = req.rawHeaders;
  const names = policy.names;
  let lines = '';
  let incomingXfcc: string | undefined;
  let incomingXff: string | undefined;
  let connectionTokens: string | undefined;
  let hasHost = false;
  let hasLength = false;
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
      case Kind.Host:
        hasHost = true;
        break;
      case Kind.ContentLength:
        hasLength = true;
        break;
    }
    // llhttp (strict) already refused CR/LF in names and values, so they are written as they are.
    lines += `${name}: ${value}\r\n`;
  }
  if (connectionTokens !== undefined) lines = withoutNamed(lines, connectionTokens);
  const remote = req.remoteAddress;
  lines += `x-forwarded-for: ${incomingXff === undefined ? remote : `${incomingXff}, ${remote}`}\r\n`;
  lines += conn.mtls ? 'x-forwarded-proto: https\r\n' : 'x-forwarded-proto: http\r\n';
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
  if (xfcc !== undefined) lines += `x-forwarded-client-cert: ${xfcc}\r\n`;
  return { lines, hasHost, hasLength };
}

/** Removes header lines named by the client's Connection header ("Connection: close, X-Secret"). */
function withoutNamed(lines: string, tokens: string): string {
  const named = namedByRequestConnection(tokens);
  if (named === undefined) return lines;
  let out = '';
  for (const line of lines.split('\r\n')) {
    if (line === '') continue;
    if (!named.has(line.slice(0, line.indexOf(':')).toLowerCase())) out += `${line}\r\n`;
  }
  return out;
}
