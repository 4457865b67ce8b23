// The request head sent upstream, built in one pass over the client's raw headers into the header
// lines the upstream connection writes as they are (one string, no intermediate array): hop-by-hop
// headers dropped (and any the client's Connection header names), identity headers the client
// tried to set removed or kept per the route's XFCC mode, x-forwarded-for/-proto set.
import type { ClientRequest } from '../http1/client-request.js';
import type { XfccDetails, XfccMode } from '../config/types.js';
import type { ConnectionContext } from './connection-context.js';
import { HeaderNameSet } from './header-name-set.js';
import { forwardedClientCert, xfccElement } from './xfcc.js';

/** Dropped: connection-specific (RFC 9110 §7.6.1), or set by the gateway / the upstream pool itself. */
const DROPPED = new HeaderNameSet([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'proxy-authorization',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-client-cert',
]);

export interface HeaderPolicy {
  readonly xfcc: XfccMode;
  readonly xfccDetails: XfccDetails;
}

export interface UpstreamRequestHead {
  /** Header lines, each ending in CRLF, without the request line and the final empty line. */
  readonly lines: string;
  /** Whether `lines` hold Host / Content-Length (the pool adds what is missing). */
  readonly hasHost: boolean;
  readonly hasLength: boolean;
}


export function upstreamRequestHead(req: ClientRequest, conn: ConnectionContext, policy: HeaderPolicy): UpstreamRequestHead {
  const raw = req.rawHeaders;
  let lines = '';
  let incomingXfcc: string | undefined;
  let incomingXff: string | undefined;
  let connectionTokens: string | undefined;
  let hasHost = false;
  let hasLength = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (!DROPPED.has(name)) {
      // llhttp (strict) already refused CR/LF in names and values, so they are written as they are.
      if (name.length === 14 && name.toLowerCase() === 'content-length') hasLength = true;
      else if (name.length === 4 && name.toLowerCase() === 'host') hasHost = true;
      lines += `${name}: ${value}\r\n`;
      continue;
    }
    const lower = name.toLowerCase();
    if (lower === 'x-forwarded-client-cert') incomingXfcc = incomingXfcc === undefined ? value : `${incomingXfcc},${value}`;
    else if (lower === 'x-forwarded-for') incomingXff = incomingXff === undefined ? value : `${incomingXff}, ${value}`;
    else if (lower === 'connection') connectionTokens = connectionTokens === undefined ? value : `${connectionTokens},${value}`;
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
    const element = xfccElement(identity!, conn.by, policy.xfccDetails);
    conn.xfcc = { details: policy.xfccDetails, element };
    return element;
  });
  // Our element never holds CR/LF/NUL (xfccElement encodes them); a client's was checked by llhttp.
  if (xfcc !== undefined) lines += `x-forwarded-client-cert: ${xfcc}\r\n`;
  return { lines, hasHost, hasLength };
}

/** Never hop-by-hop, whatever a client's Connection header says (hop-by-hop header abuse). */
const PROTECTED = new Set(['host', 'content-length']);

/** Removes header lines named by the client's Connection header ("Connection: close, X-Secret"). */
function withoutNamed(lines: string, tokens: string): string {
  const named = new Set(tokens.split(',').map((t) => t.trim().toLowerCase()).filter((t) => !PROTECTED.has(t)));
  let out = '';
  for (const line of lines.split('\r\n')) {
    if (line === '') continue;
    if (!named.has(line.slice(0, line.indexOf(':')).toLowerCase())) out += `${line}\r\n`;
  }
  return out;
}
