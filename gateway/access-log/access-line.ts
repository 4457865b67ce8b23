// One access log line: a JSON object with a fixed set of fields, in a fixed order, absent fields
// left out, written as bytes into the log's batch (line-bytes.ts). The time is that of the line,
// ISO 8601 in UTC. Lines are written for every request, so the fields a connection's requests share
// (protocol, identity, TLS, remote address) are rendered once per connection (`connectionFields`).
import { LineBytes } from './line-bytes.js';

/** What every line of one connection says alike, rendered once: `connectionFields`. */
export interface ConnectionFacts {
  /** HTTP/1.1, HTTP/2, or the relayed connection's ALPN. */
  readonly protocol?: string;
  /** The caller's SPIFFE ID, or its certificate's subject when it has none. */
  readonly identity?: string;
  readonly tlsVersion?: string;
  readonly resumed?: boolean;
  readonly sni?: string;
  readonly remote?: string;
}

export interface AccessEntry {
  readonly listener: string;
  /** `request` (terminate) or `relay` (a passthrough connection). */
  readonly kind: 'request' | 'relay';
  readonly route?: string;
  readonly method?: string;
  /** The path as routed, without its query (queries may carry secrets). */
  readonly path?: string;
  readonly status?: number;
  /** Why the gateway refused or failed it (reasons.ts). */
  readonly reason?: string;
  readonly durationMs: number;
  readonly upstream?: string;
  /** The endpoint that answered (host:port). */
  readonly endpoint?: string;
  /** Until the upstream's response head, over every try. */
  readonly upstreamMs?: number;
  readonly attempts?: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly requestId?: string;
  /** The connection's fields, from `connectionFields`. */
  readonly connection: string;
}

let lastSecond = -1;
let secondPrefix = '';

/** A line's beginning up to the second of `ms` (`{"time":"2026-12-05T03:04:05`), cached: many lines share a second. */
function lineUpToSecond(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== lastSecond) {
    lastSecond = second;
    secondPrefix = `{"time":"${new Date(second * 1000).toISOString().slice(0, 19)}`;
  }
  return secondPrefix;
}

/** The connection's part of its lines, beginning with a comma (or empty); once per connection. */
export function connectionFields(c: ConnectionFacts): string {
  let fields = '';
  if (c.protocol !== undefined) fields += `,"protocol":${JSON.stringify(c.protocol)}`;
  if (c.identity !== undefined) fields += `,"identity":${JSON.stringify(c.identity)}`;
  if (c.tlsVersion !== undefined) fields += `,"tls_version":${JSON.stringify(c.tlsVersion)}`;
  if (c.resumed !== undefined) fields += `,"resumed":${c.resumed}`;
  if (c.sni !== undefined) fields += `,"sni":${JSON.stringify(c.sni)}`;
  if (c.remote !== undefined) fields += `,"remote":${JSON.stringify(c.remote)}`;
  return fields;
}

/** Most bytes the line of `e` takes (its newline not included). */
export function accessLineBound(e: AccessEntry): number {
  // Keys, punctuation, the time and numbers stay under 400 bytes; strings at most 6 bytes per unit.
  return (
    400 +
    LineBytes.bound(e.listener) +
    LineBytes.bound(e.route) +
    LineBytes.bound(e.method) +
    LineBytes.bound(e.path) +
    LineBytes.bound(e.reason) +
    LineBytes.bound(e.upstream) +
    LineBytes.bound(e.endpoint) +
    LineBytes.bound(e.requestId) +
    e.connection.length * 3
  );
}

/** The line of `e`, written into `out` (which has room for `accessLineBound(e)` bytes). */
export function writeAccessLine(out: LineBytes, e: AccessEntry, nowMs = Date.now()): void {
  out.raw(lineUpToSecond(nowMs));
  out.fraction(nowMs % 1000);
  out.raw(e.kind === 'request' ? 'Z","kind":"request","listener":' : 'Z","kind":"relay","listener":');
  out.string(e.listener);
  out.stringField(',"route":', e.route);
  out.stringField(',"method":', e.method);
  out.stringField(',"path":', e.path);
  out.intField(',"status":', e.status);
  out.stringField(',"reason":', e.reason);
  out.millisField(',"duration_ms":', e.durationMs);
  out.stringField(',"upstream":', e.upstream);
  out.stringField(',"endpoint":', e.endpoint);
  out.millisField(',"upstream_ms":', e.upstreamMs);
  out.intField(',"attempts":', e.attempts);
  out.intField(',"bytes_in":', e.bytesIn);
  out.intField(',"bytes_out":', e.bytesOut);
  out.stringField(',"request_id":', e.requestId);
  out.raw(e.connection);
  out.raw('}');
}
