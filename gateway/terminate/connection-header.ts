// The Connection header's list of names (RFC 9110 §7.6.1): whoever forwards a message removes the
// headers it names. Its usual values, "keep-alive" and "close", name no header worth a pass over
// the others, and are recognised without splitting.
import { equalsFolded } from './header-name-table.js';

/** The header names `value` lists (lowercase) other than `keep`, "close" and "keep-alive"; undefined when that leaves none. */
export function namedInConnection(value: string, keep: ReadonlySet<string>): Set<string> | undefined {
  if (equalsFolded(value, 'keep-alive') || equalsFolded(value, 'close')) return undefined;
  const named = new Set<string>();
  for (const token of value.split(',')) {
    const name = token.trim().toLowerCase();
    if (name !== '' && name !== 'close' && name !== 'keep-alive' && !keep.has(name)) named.add(name);
  }
  return named.size === 0 ? undefined : named;
}
