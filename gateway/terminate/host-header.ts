// The request's one Host header (RFC 9112 §3.2: a request with none, with several, or with an
// invalid one gets a 400). With several, the gateway would route by one while the upstream may
// read another. A valid value is a DNS name, an IPv4 address or a bracketed IPv6 address, with an
// optional port; the rarer reg-name characters RFC 3986 permits (sub-delims, '%') are refused too,
// as no host is named with them and upstreams split values on some of them. Keep-alive requests
// repeat their connection's Host: it is checked and normalized once per connection.
import type { ConnectionContext } from '../session/connection-context.js';
import { equalsFolded } from '../message/header-name-table.js';
import { normalizeHost } from './host-pattern.js';

export type HostRule = 'missing' | 'duplicate' | 'invalid';

export interface HostRefusal {
  readonly rule: HostRule;
  readonly message: string;
}

export const HOST_REFUSALS: Readonly<Record<HostRule, HostRefusal>> = {
  missing: Object.freeze({ rule: 'missing', message: 'the request has no Host header (or an empty one)' } as const),
  duplicate: Object.freeze({ rule: 'duplicate', message: 'the request has more than one Host header' } as const),
  invalid: Object.freeze({ rule: 'invalid', message: 'the Host header is not a host name or address with an optional port' } as const),
};

/** Characters of a host name (RFC 3986 unreserved): letters, digits, '-', '.', '_', '~'. */
const NAME_CHAR = new Uint8Array(128);
for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~') NAME_CHAR[c.charCodeAt(0)] = 1;
/** Characters inside an IPv6 literal's brackets. */
const IPV6_CHAR = new Uint8Array(128);
for (const c of '0123456789abcdefABCDEF:.') IPV6_CHAR[c.charCodeAt(0)] = 1;

const COLON = 0x3a;

/**
 * The request's host, normalized (host-pattern.ts), from the one Host header in `raw`
 * ([name, value, …]); or why there is not exactly one valid one.
 */
export function requestHost(raw: readonly string[], conn: ConnectionContext): string | HostRefusal {
  let value: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && equalsFolded(name, 'host')) {
      if (value !== undefined) return HOST_REFUSALS.duplicate;
      value = raw[i + 1]!;
    }
  }
  if (value === undefined || value === '') return HOST_REFUSALS.missing;
  if (value === conn.hostValue) return conn.host!;
  if (!isHostValue(value)) return HOST_REFUSALS.invalid;
  const host = normalizeHost(value);
  if (conn.mtls) {
    // (The shared context of plaintext connections is frozen.)
    conn.hostValue = value;
    conn.host = host;
  }
  return host;
}

function isHostValue(value: string): boolean {
  const n = value.length;
  let i = 0;
  if (value.charCodeAt(0) === 0x5b) {
    // [IPv6]
    for (i = 1; i < n && value.charCodeAt(i) !== 0x5d; i++) if (IPV6_CHAR[value.charCodeAt(i)] !== 1) return false;
    if (i === n || i === 1) return false;
    i++;
  } else {
    for (; i < n && value.charCodeAt(i) !== COLON; i++) if (NAME_CHAR[value.charCodeAt(i)] !== 1) return false;
    if (i === 0) return false;
  }
  if (i === n) return true;
  if (value.charCodeAt(i) !== COLON) return false;
  for (i++; i < n; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}
