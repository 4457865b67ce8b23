// One access log line: a JSON object with a fixed set of fields, in a fixed order, built as one
// string; absent fields are left out. The time is that of the line, ISO 8601 in UTC. Lines are
// written for every request, so the fields a connection's requests share (protocol, identity, TLS,
// remote address) are rendered once per connection (`connectionFields`), names from the
// configuration are quoted once, and other strings are escaped only when they need it.

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

/** '000' … '999': milliseconds and fractions without padStart or toFixed. */
const THREE_DIGITS = Array.from({ length: 1000 }, (_, n) => String(n).padStart(3, '0'));

let lastSecond = -1;
let secondPrefix = '';

/** ISO 8601 time of `ms`, with the part up to the second cached: many lines share a second. */
function isoTime(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== lastSecond) {
    lastSecond = second;
    secondPrefix = new Date(second * 1000).toISOString().slice(0, 19);
  }
  return `${secondPrefix}.${THREE_DIGITS[ms - second * 1000]}Z`;
}

/** Milliseconds with three decimals, as a JSON number. */
function millis(ms: number): string {
  const micros = Math.round(ms * 1000);
  const whole = Math.floor(micros / 1000);
  return `${whole}.${THREE_DIGITS[micros - whole * 1000]}`;
}

/** A JSON string: printable ASCII without '"' or '\' needs no escaping; anything else goes through JSON.stringify. */
export function jsonString(value: string): string {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return JSON.stringify(value);
  }
  return `"${value}"`;
}

/** Names from the configuration (listeners, routes, upstreams, endpoints) and methods: few, quoted once. */
const quotedNames = new Map<string, string>();
const MAX_QUOTED_NAMES = 4096;

function quotedName(name: string): string {
  let quoted = quotedNames.get(name);
  if (quoted === undefined) {
    quoted = jsonString(name);
    if (quotedNames.size < MAX_QUOTED_NAMES) quotedNames.set(name, quoted);
  }
  return quoted;
}

/** The connection's part of its lines, beginning with a comma (or empty). */
export function connectionFields(c: ConnectionFacts): string {
  let fields = '';
  if (c.protocol !== undefined) fields += `,"protocol":${jsonString(c.protocol)}`;
  if (c.identity !== undefined) fields += `,"identity":${jsonString(c.identity)}`;
  if (c.tlsVersion !== undefined) fields += `,"tls_version":${jsonString(c.tlsVersion)}`;
  if (c.resumed !== undefined) fields += `,"resumed":${c.resumed}`;
  if (c.sni !== undefined) fields += `,"sni":${jsonString(c.sni)}`;
  if (c.remote !== undefined) fields += `,"remote":${jsonString(c.remote)}`;
  return fields;
}

export function accessLine(e: AccessEntry, nowMs = Date.now()): string {
  let line = `{"time":"${isoTime(nowMs)}","kind":"${e.kind}","listener":${quotedName(e.listener)}`;
  if (e.route !== undefined) line += `,"route":${quotedName(e.route)}`;
  if (e.method !== undefined) line += `,"method":${quotedName(e.method)}`;
  if (e.path !== undefined) line += `,"path":${jsonString(e.path)}`;
  if (e.status !== undefined) line += `,"status":${e.status}`;
  if (e.reason !== undefined) line += `,"reason":${quotedName(e.reason)}`;
  line += `,"duration_ms":${millis(e.durationMs)}`;
  if (e.upstream !== undefined) line += `,"upstream":${quotedName(e.upstream)}`;
  if (e.endpoint !== undefined) line += `,"endpoint":${quotedName(e.endpoint)}`;
  if (e.upstreamMs !== undefined) line += `,"upstream_ms":${millis(e.upstreamMs)}`;
  if (e.attempts !== undefined) line += `,"attempts":${e.attempts}`;
  line += `,"bytes_in":${e.bytesIn},"bytes_out":${e.bytesOut}`;
  if (e.requestId !== undefined) line += `,"request_id":${jsonString(e.requestId)}`;
  return line + e.connection + '}';
}
