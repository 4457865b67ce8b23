// One access log line: a JSON object with a fixed set of fields, in a fixed order, built as one
// string (strings through JSON.stringify, which escapes them; numbers and booleans as they are;
// absent fields left out). The time is that of the line, ISO 8601 in UTC.

export interface AccessEntry {
  readonly listener: string;
  /** `request` (terminate) or `relay` (a passthrough connection). */
  readonly kind: 'request' | 'relay';
  readonly route?: string;
  readonly method?: string;
  /** The path as routed, without its query (queries may carry secrets). */
  readonly path?: string;
  /** HTTP/1.1, HTTP/2, or the relayed connection's ALPN. */
  readonly protocol?: string;
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
  /** The caller's SPIFFE ID, or its certificate's subject when it has none. */
  readonly identity?: string;
  readonly tlsVersion?: string;
  readonly resumed?: boolean;
  readonly requestId?: string;
  readonly sni?: string;
  readonly remote?: string;
}

let lastSecond = -1;
let secondPrefix = '';

/** ISO 8601 time of `ms`, with the part up to the second cached: many lines share a second. */
function isoTime(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== lastSecond) {
    lastSecond = second;
    secondPrefix = new Date(second * 1000).toISOString().slice(0, 19);
  }
  return `${secondPrefix}.${String(ms % 1000).padStart(3, '0')}Z`;
}

const str = (value: string) => JSON.stringify(value);

export function accessLine(e: AccessEntry, nowMs = Date.now()): string {
  let line = `{"time":"${isoTime(nowMs)}","kind":"${e.kind}","listener":${str(e.listener)}`;
  if (e.route !== undefined) line += `,"route":${str(e.route)}`;
  if (e.method !== undefined) line += `,"method":${str(e.method)}`;
  if (e.path !== undefined) line += `,"path":${str(e.path)}`;
  if (e.protocol !== undefined) line += `,"protocol":${str(e.protocol)}`;
  if (e.status !== undefined) line += `,"status":${e.status}`;
  if (e.reason !== undefined) line += `,"reason":${str(e.reason)}`;
  line += `,"duration_ms":${e.durationMs.toFixed(3)}`;
  if (e.upstream !== undefined) line += `,"upstream":${str(e.upstream)}`;
  if (e.endpoint !== undefined) line += `,"endpoint":${str(e.endpoint)}`;
  if (e.upstreamMs !== undefined) line += `,"upstream_ms":${e.upstreamMs.toFixed(3)}`;
  if (e.attempts !== undefined) line += `,"attempts":${e.attempts}`;
  line += `,"bytes_in":${e.bytesIn},"bytes_out":${e.bytesOut}`;
  if (e.identity !== undefined) line += `,"identity":${str(e.identity)}`;
  if (e.tlsVersion !== undefined) line += `,"tls_version":${str(e.tlsVersion)}`;
  if (e.resumed !== undefined) line += `,"resumed":${e.resumed}`;
  if (e.requestId !== undefined) line += `,"request_id":${str(e.requestId)}`;
  if (e.sni !== undefined) line += `,"sni":${str(e.sni)}`;
  if (e.remote !== undefined) line += `,"remote":${str(e.remote)}`;
  return line + '}';
}
