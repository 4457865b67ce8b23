// Command-line parsing for `gatehouse certs`: a declared set of flags per subcommand, values that
// are checked where they are read, and one error type whose message fits on one line, so every
// mistake prints `gatehouse certs <sub>: <problem>` and exits 2.

/** A mistake in what the user typed: printed on one line, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The command understood the request but refuses or fails to do it: one line, exit code 1. */
export class CommandFailure extends Error {
  override readonly name = 'CommandFailure';
}

export type FlagKind = 'string' | 'list' | 'boolean';

export type FlagSpec = Readonly<Record<string, FlagKind>>;

export interface ParsedArgs {
  readonly strings: ReadonlyMap<string, string>;
  readonly lists: ReadonlyMap<string, readonly string[]>;
  readonly booleans: ReadonlySet<string>;
  readonly positionals: readonly string[];
}

/**
 * Parses `--flag value`, `--flag=value` and `--switch`; `--` ends the flags. A string flag given
 * twice is an error (the second would silently win otherwise); `list` flags accumulate.
 */
export function parseArgs(argv: readonly string[], spec: FlagSpec, maxPositionals: number): ParsedArgs {
  const strings = new Map<string, string>();
  const lists = new Map<string, string[]>();
  const booleans = new Set<string>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--') || arg === '-') {
      if (arg.startsWith('-') && arg !== '-') throw new UsageError(`unknown option '${arg}' (options are spelled --name)`);
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const kind = spec[name];
    if (kind === undefined) throw new UsageError(`unknown option '--${name}'`);
    if (kind === 'boolean') {
      if (eq !== -1) throw new UsageError(`--${name} takes no value`);
      booleans.add(name);
      continue;
    }
    let value: string | undefined;
    if (eq !== -1) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      // A flag right after a flag means the value was forgotten, not that it starts with '--'.
      if (value === undefined || value.startsWith('--')) throw new UsageError(`--${name} needs a value`);
      i++;
    }
    if (value === '') throw new UsageError(`--${name} needs a non-empty value`);
    if (kind === 'list') {
      const list = lists.get(name) ?? [];
      list.push(value);
      lists.set(name, list);
    } else {
      if (strings.has(name)) throw new UsageError(`--${name} given twice`);
      strings.set(name, value);
    }
  }
  if (positionals.length > maxPositionals) {
    const extra = positionals[maxPositionals]!;
    throw new UsageError(maxPositionals === 0 ? `unexpected argument '${extra}'` : `unexpected extra argument '${extra}'`);
  }
  return { strings, lists, booleans, positionals };
}

export function requireString(args: ParsedArgs, name: string, what: string): string {
  const value = args.strings.get(name);
  if (value === undefined) throw new UsageError(`missing --${name} ${what}`);
  return value;
}
