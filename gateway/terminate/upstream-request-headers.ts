// The request head sent upstream, built in one pass over the client's raw headers: hop-by-hop
// headers dropped (and any the client's Connection header names), identity headers the client
// tried to set removed or kept per the route's XFCC mode, x-forwarded-for/-proto set.
import type { IncomingMessage } from 'node:http';
import type { XfccDetails, XfccMode } from '../config/types.js';
import type { ConnectionContext } from './connection-context.js';
import { forwardedClientCert, xfccElement } from './xfcc.js';

/** Dropped: connection-specific (RFC 9110 §7.6.1), or set by the gateway / undici itself. */
const DROPPED = new Set([
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
  readonly headers: string[];
  /** Whether the request has a body to stream (content-length > 0 or chunked). */
  readonly hasBody: boolean;
}

export function upstreamRequestHead(req: IncomingMessage, conn: ConnectionContext, policy: HeaderPolicy): UpstreamRequestHead {
  const raw = req.rawHeaders;
  const headers: string[] = [];
  let incomingXfcc: string | undefined;
  let incomingXff: string | undefined;
  let connectionTokens: string | undefined;
  let hasBody = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const lower = name.toLowerCase();
    if (!DROPPED.has(lower)) {
      if (lower === 'content-length') hasBody = value !== '0';
      headers.push(name, value);
      continue;
    }
    if (lower === 'x-forwarded-client-cert') incomingXfcc = incomingXfcc === undefined ? value : `${incomingXfcc},${value}`;
    else if (lower === 'x-forwarded-for') incomingXff = incomingXff === undefined ? value : `${incomingXff}, ${value}`;
    else if (lower === 'transfer-encoding') hasBody = true;
    else if (lower === 'connection') connectionTokens = connectionTokens === undefined ? value : `${connectionTokens},${value}`;
  }
  const out = connectionTokens === undefined ? headers : withoutNamed(headers, connectionTokens);
  const remote = req.socket.remoteAddress ?? '';
  out.push('x-forwarded-for', incomingXff === undefined ? remote : `${incomingXff}, ${remote}`);
  out.push('x-forwarded-proto', conn.mtls ? 'https' : 'http');
  const identity = conn.identity;
  const xfcc = forwardedClientCert(policy.xfcc, incomingXfcc, conn.mtls && identity !== undefined, () =>
    xfccElement(identity!, conn.by, policy.xfccDetails),
  );
  if (xfcc !== undefined) out.push('x-forwarded-client-cert', xfcc);
  return { headers: out, hasBody };
}

/** Never hop-by-hop, whatever a client's Connection header says (hop-by-hop header abuse). */
const PROTECTED = new Set(['host', 'content-length']);

/** Removes headers named by the client's Connection header ("Connection: close, X-Secret"). */
function withoutNamed(headers: string[], tokens: string): string[] {
  const named = new Set(tokens.split(',').map((t) => t.trim().toLowerCase()).filter((t) => !PROTECTED.has(t)));
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (!named.has(headers[i]!.toLowerCase())) out.push(headers[i]!, headers[i + 1]!);
  }
  return out;
}
