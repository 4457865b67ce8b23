// The one place that knows which headers belong to a connection rather than to the message
// (RFC 9110 §7.6.1), for both directions: a proxy removes them, and the headers the Connection
// header names, before forwarding. A request's Connection header cannot name Host or Content-Length
// away (hop-by-hop header abuse: routing and framing would disagree with what is forwarded).
import { equalsFolded } from './header-name-table.js';

/** Connection-specific in every message. */
const CONNECTION_SPECIFIC = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'];

/** Never forwarded upstream (lowercase): the connection-specific ones, and the proxy's own (Expect: the client connection answers 100-continue). */
export const REQUEST_HOP_BY_HOP: readonly string[] = [...CONNECTION_SPECIFIC, 'expect', 'proxy-authorization'];

/** Never forwarded to the client (lowercase). */
export const RESPONSE_HOP_BY_HOP: readonly string[] = [...CONNECTION_SPECIFIC, 'proxy-authenticate'];

const REQUEST_PROTECTED: ReadonlySet<string> = new Set(['host', 'content-length']);
const NOTHING_PROTECTED: ReadonlySet<string> = new Set();

export function isConnectionHeader(name: string): boolean {
  return equalsFolded(name, 'connection');
}

/** The header names (lowercase) a request's Connection value(s) make hop-by-hop; undefined when none. */
export function namedByRequestConnection(value: string): Set<string> | undefined {
  return namedInConnection(value, REQUEST_PROTECTED);
}

/** The header names (lowercase) a response's Connection value(s) make hop-by-hop; undefined when none. */
export function namedByResponseConnection(value: string): Set<string> | undefined {
  return namedInConnection(value, NOTHING_PROTECTED);
}

/**
 * The header names `value` lists (lowercase) other than `keep`, "close" and "keep-alive"; undefined
 * when that leaves none. Its usual values, "keep-alive" and "close", are recognised without splitting.
 */
function namedInConnection(value: string, keep: ReadonlySet<string>): Set<string> | undefined {
  if (equalsFolded(value, 'keep-alive') || equalsFolded(value, 'close')) return undefined;
  const named = new Set<string>();
  for (const token of value.split(',')) {
    const name = token.trim().toLowerCase();
    if (name !== '' && name !== 'close' && name !== 'keep-alive' && !keep.has(name)) named.add(name);
  }
  return named.size === 0 ? undefined : named;
}

/** The flat [name, value, …] list without the names in `named` (lowercase). */
export function withoutNamed(headers: readonly string[], named: ReadonlySet<string>): string[] {
  const kept: string[] = [];
  for (let i = 0; i < headers.length; i += 2) if (!named.has(headers[i]!.toLowerCase())) kept.push(headers[i]!, headers[i + 1]!);
  return kept;
}
