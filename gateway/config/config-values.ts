// The textual value formats of the configuration, as pure functions from a string to a value or
// the reason it is wrong: durations, addresses, host patterns, names, ALPN ids, SPIFFE IDs and
// allow-list entries. The messages say what was expected, with an example.
import { isIPv4, isIPv6 } from 'node:net';
import { checkSpiffeId } from '../identity/spiffe-id.js';
import type { Address, IdentityPattern } from './types.js';

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problem: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = <T>(problem: string): Parsed<T> => ({ ok: false, problem });

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
const DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/;
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;

/** "500ms", "5s", "2m", "1h", also "1m30s" and "1.5s" → milliseconds. */
export function parseDuration(text: string): Parsed<number> {
  if (!DURATION.test(text)) return fail(`'${text}' is not a duration: write a number and a unit (ms, s, m, h), like 500ms, 5s, 2m or 1h`);
  let ms = 0;
  for (const [, amount, unit] of text.matchAll(DURATION_PART)) ms += Number(amount) * UNIT_MS[unit as keyof typeof UNIT_MS];
  if (!Number.isInteger(ms)) return fail(`'${text}' is not a whole number of milliseconds`);
  return ok(ms);
}

const UNIT_BYTES: Readonly<Record<string, number>> = { B: 1, kB: 1e3, KB: 1e3, MB: 1e6, GB: 1e9, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4 };
const SIZE = /^(\d+(?:\.\d+)?) ?([A-Za-z]+)$/;

/** "64MiB", "512KiB", "10MB", "1.5GiB" → bytes; "unlimited" → Infinity. */
export function parseByteSize(text: string): Parsed<number> {
  if (text === 'unlimited') return ok(Infinity);
  const match = SIZE.exec(text);
  const unit = match === null ? undefined : UNIT_BYTES[match[2]!];
  if (unit === undefined) return fail(`'${text}' is not a size: write a number and a unit (B, KB, MB, GB, KiB, MiB, GiB, TiB), like 64MiB, or unlimited`);
  const bytes = Number(match![1]) * unit;
  return Number.isSafeInteger(bytes) ? ok(bytes) : fail(`'${text}' is not a whole number of bytes`);
}

/** A DNS label; '_' is tolerated because internal service names use it. */
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

function hostNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (name.length > 253) return 'is longer than 253 characters';
  if (name.endsWith('.')) return 'must not end with a dot';
  if (/^[\d.]+$/.test(name) && !isIPv4(name)) return 'is not a valid IPv4 address';
  const bad = name.split('.').find((label) => !LABEL.test(label));
  if (bad !== undefined) return bad === '' ? 'has an empty label (two dots in a row)' : `has an invalid label '${bad}' (letters, digits, '-' and '_', at most 63, not starting or ending with '-')`;
  return undefined;
}

/** An address as written: `host:port`, `[ipv6]:port` (parseAddress's inverse). */
export function formatAddress(address: { readonly host: string; readonly port: number }): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/** `host:port`, `[ipv6]:port`; the host an IPv4 address or a DNS name, the port 1..65535. */
export function parseAddress(text: string): Parsed<Address> {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end === -1 || text[end + 1] !== ':') return fail(`'${text}' is not an address: write [ipv6]:port, like [::1]:8443`);
    host = text.slice(1, end);
    if (!isIPv6(host)) return fail(`'${host}' is not an IPv6 address`);
    portText = text.slice(end + 2);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon === -1) return fail(`'${text}' has no port: write host:port, like 127.0.0.1:8443`);
    host = text.slice(0, colon).toLowerCase();
    if (host.includes(':')) return fail(`'${text}': an IPv6 address goes in brackets, like [::1]:8443`);
    if (host === '') return fail(`'${text}' has no host: use 0.0.0.0 for every IPv4 interface, [::] for every interface`);
    const problem = hostNameProblem(host);
    if (problem !== undefined) return fail(`host '${host}' ${problem}`);
    portText = text.slice(colon + 1);
  }
  if (!/^\d{1,5}$/.test(portText)) return fail(`port '${portText}' is not a number`);
  const port = Number(portText);
  if (port < 1 || port > 65535) return fail(`port ${port} is out of range (1 to 65535)`);
  return ok({ host, port });
}

/**
 * A DNS name (lowercased); with `wildcard` also `*.suffix`, where `*` stands for one label; with
 * `ip` also an IPv4 address (a Host header may hold one; SNI and DNS SANs never do).
 */
export function parseHostPattern(text: string, options: { wildcard: boolean; ip: boolean }): Parsed<string> {
  const name = text.toLowerCase();
  if (isIPv4(name) || isIPv6(name)) {
    return options.ip && isIPv4(name) ? ok(name) : fail(`'${text}' is an IP address; a DNS name is expected here (SNI and DNS names never hold addresses)`);
  }
  const wild = options.wildcard && name.startsWith('*.');
  const rest = wild ? name.slice(2) : name;
  if (rest.includes('*')) {
    return fail(options.wildcard ? `'${text}': '*' may only stand for the whole first label, like *.example.com` : `'${text}': wildcards are not allowed here`);
  }
  const problem = hostNameProblem(rest);
  return problem === undefined ? ok(name) : fail(`'${text}' ${problem}`);
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Listener, route, upstream and backend names: they become metric labels and log fields. */
export function parseName(text: string): Parsed<string> {
  return NAME.test(text) ? ok(text) : fail(`'${text}' is not a valid name: up to 64 letters, digits, '.', '-' and '_', starting with a letter or digit`);
}

/** An ALPN protocol id (RFC 7301): 1 to 255 bytes; we allow printable ASCII. */
export function parseAlpn(text: string): Parsed<string> {
  return /^[\x21-\x7e]{1,255}$/.test(text) ? ok(text) : fail(`'${text}' is not an ALPN protocol id (1 to 255 printable ASCII characters, like http/1.1)`);
}

/**
 * A path prefix, in the form request paths are matched in (gateway/terminate/request-path.ts): a
 * prefix in any other spelling would never match.
 */
export function parsePathPrefix(text: string): Parsed<string> {
  if (!text.startsWith('/')) return fail(`'${text}' must start with '/'`);
  if (/[\s?#]/.test(text)) return fail(`'${text}' must not contain whitespace, '?' or '#'`);
  if (text.includes('//')) return fail(`'${text}': request paths are matched with '//' merged; write '${text.replace(/\/{2,}/g, '/')}'`);
  if (/\/\.\.?(?:\/|$)/.test(text)) return fail(`'${text}' has a '.' or '..' segment, which requests are refused for`);
  if (text.includes('\\')) return fail(`'${text}': requests with '\\' in their path are refused`);
  if (text.includes(';')) return fail(`'${text}': request paths are matched without their ';' parameters (where a route allows them at all)`);
  for (const [escape, hex] of text.matchAll(/%([0-9A-Fa-f]{2})?/g)) {
    if (hex === undefined) return fail(`'${text}': '%' must be followed by two hex digits`);
    const byte = parseInt(hex, 16);
    const char = String.fromCharCode(byte);
    if (/[A-Za-z0-9._~-]/.test(char)) return fail(`'${text}': requests are matched with ${escape} decoded; write '${char}'`);
    if (byte === 0x2f || byte === 0x5c || byte < 0x20 || byte === 0x7f) return fail(`'${text}': requests with ${escape} in their path are refused`);
    if (hex !== hex.toUpperCase()) return fail(`'${text}': requests are matched with uppercase escapes; write %${hex.toUpperCase()}`);
  }
  return ok(text);
}

/** A health check's request target: origin-form, printable ASCII without spaces. */
export function parseHealthPath(text: string): Parsed<string> {
  return /^\/[\x21-\x7e]*$/.test(text) && !text.includes('#') ? ok(text) : fail(`'${text}' is not a request path: it must start with '/' and hold no spaces, controls or '#'`);
}

/** An HTTP status range, inclusive: `200-399`, or one status `200`. */
export function parseStatusRange(text: string): Parsed<{ min: number; max: number }> {
  const m = /^([1-5]\d\d)(?:-([1-5]\d\d))?$/.exec(text);
  if (m === null) return fail(`'${text}' is not a status range, like 200-399 or 204`);
  const min = Number(m[1]);
  const max = m[2] === undefined ? min : Number(m[2]);
  return min <= max ? ok({ min, max }) : fail(`'${text}': the range starts above its end`);
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Headers the gateway itself reads or sets: strip_headers cannot name them. */
const HANDLED_HEADERS = ['host', 'content-length', 'transfer-encoding', 'connection', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-client-cert'];

/** A request header name, or a prefix ending in `*` (strip_headers); lowercased. */
export function parseHeaderNamePattern(text: string): Parsed<string> {
  const prefix = text.endsWith('*');
  const name = (prefix ? text.slice(0, -1) : text).toLowerCase();
  if (!TOKEN.test(name) || name.includes('*')) return fail(`'${text}' is not a header name (letters, digits and !#$%&'+-.^_\`|~), or a prefix of one followed by '*'`);
  if (!prefix && HANDLED_HEADERS.includes(name)) {
    return fail(name === 'x-forwarded-client-cert' ? `'${text}' is governed by the route's xfcc mode (xfcc: sanitize removes it)` : `'${text}' is read or set by the gateway itself and cannot be stripped`);
  }
  return ok(prefix ? `${name}*` : name);
}

const SPIFFE_SCHEME = 'spiffe://';

/**
 * A SPIFFE ID per the SPIFFE spec: `spiffe://` + lowercase trust domain + path of non-empty
 * segments other than `.`/`..`, no query, fragment, port or userinfo. `requirePath`: an ID a
 * workload can hold (an X.509-SVID always has a path).
 */
export function parseSpiffeId(text: string, options: { requirePath: boolean }): Parsed<string> {
  if (text.length > 2048) return fail('a SPIFFE ID is at most 2048 bytes');
  if (!text.startsWith(SPIFFE_SCHEME)) {
    return fail(text.toLowerCase().startsWith(SPIFFE_SCHEME) ? `'${text}': the scheme must be lowercase 'spiffe://'` : `'${text}' is not a SPIFFE ID: it must start with spiffe://`);
  }
  const rest = text.slice(SPIFFE_SCHEME.length);
  const authority = rest.split(/[/?#]/, 1)[0]!;
  if (authority.includes('@')) return fail(`'${text}': a SPIFFE ID has no userinfo ('@')`);
  if (authority.includes(':')) return fail(`'${text}': a SPIFFE ID has no port`);
  if (text.includes('?')) return fail(`'${text}': a SPIFFE ID has no query ('?')`);
  if (text.includes('#')) return fail(`'${text}': a SPIFFE ID has no fragment ('#')`);
  if (authority !== authority.toLowerCase()) return fail(`'${text}': the trust domain must be lowercase`);
  if (authority.length > 255) return fail(`'${text}': the trust domain is longer than 255 characters`);
  const check = checkSpiffeId(text);
  if (!check.ok) return fail(`'${text}': ${check.problem}`);
  if (options.requirePath && check.path === '') {
    return fail(`'${text}' names a trust domain, not a workload: add a path, or allow the whole trust domain with {trust_domain: ${check.trustDomain}}`);
  }
  return ok(text);
}

export function parseTrustDomain(text: string): Parsed<string> {
  if (text.startsWith(SPIFFE_SCHEME)) return fail(`'${text}': write the trust domain without spiffe://, like ${text.slice(SPIFFE_SCHEME.length).split('/')[0]}`);
  if (text.includes('/')) return fail(`'${text}' is not a trust domain: it has a path`);
  const id = parseSpiffeId(SPIFFE_SCHEME + text, { requirePath: false });
  return id.ok ? ok(text) : fail(id.problem.replace(`'${SPIFFE_SCHEME}${text}'`, `'${text}'`));
}

/** An allow-list string: an exact SPIFFE ID, or `spiffe://td/some/path/*` for everything below a path. */
export function parseIdentityPattern(text: string): Parsed<IdentityPattern> {
  const star = text.indexOf('*');
  if (star === -1) {
    const id = parseSpiffeId(text, { requirePath: true });
    return id.ok ? ok({ kind: 'exact', id: id.value }) : id;
  }
  if (star !== text.length - 1 || !text.endsWith('/*')) {
    return fail(`'${text}': '*' may only be the whole last path segment, like spiffe://example.com/ns/batch/*`);
  }
  const base = parseSpiffeId(text.slice(0, -2), { requirePath: false });
  // The trailing '/' keeps spiffe://td/ns/a/* from matching spiffe://td/ns/ab.
  return base.ok ? ok({ kind: 'prefix', prefix: base.value + '/' }) : base;
}
