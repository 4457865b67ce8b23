// Header names classified case-insensitively without lowercasing the header: exact names are found
// through a table by length (a name whose length no entry has costs one array read), prefixes
// through a table by first letter, and a candidate is compared character by character with ASCII
// case folding. The first entry that matches decides the kind, so specific entries go first.

export interface HeaderNameEntry {
  /** Lowercase. */
  readonly name: string;
  /** Returned by kindOf; 0 is reserved for "no entry". */
  readonly kind: number;
  /** `name` is a prefix: any header name that starts with it matches. */
  readonly prefix?: boolean;
  /** '_' in a header name counts as '-': CGI-style upstreams read `SSL_CLIENT_CERT` and `ssl-client-cert` as one variable. */
  readonly underscoreAsHyphen?: boolean;
}

const UPPER_A = 65;
const UPPER_Z = 90;
const UNDERSCORE = 95;
const HYPHEN = 45;

export class HeaderNameTable {
  /** Exact entries by name length. */
  readonly #byLength: (HeaderNameEntry[] | undefined)[] = [];
  /** Prefix entries by the char code of their (lowercase) first letter. */
  readonly #prefixes: (HeaderNameEntry[] | undefined)[] = new Array(128).fill(undefined);
  readonly #shortestPrefix: number;

  constructor(entries: readonly HeaderNameEntry[]) {
    let shortest = Infinity;
    for (const entry of entries) {
      const name = entry.name;
      if (name === '' || name !== name.toLowerCase() || name.charCodeAt(0) >= 128 || entry.kind === 0) {
        throw new Error(`header name table: '${name}' must be a non-empty lowercase ASCII name with a kind`);
      }
      if (entry.prefix) {
        (this.#prefixes[name.charCodeAt(0)] ??= []).push(entry);
        shortest = Math.min(shortest, name.length);
      } else {
        while (this.#byLength.length <= name.length) this.#byLength.push(undefined);
        (this.#byLength[name.length] ??= []).push(entry);
      }
    }
    this.#shortestPrefix = shortest;
  }

  /** The kind of the first entry `name` matches, or 0. */
  kindOf(name: string): number {
    const n = name.length;
    if (n < this.#byLength.length) {
      const exact = this.#byLength[n];
      if (exact !== undefined) {
        for (let i = 0; i < exact.length; i++) {
          const entry = exact[i]!;
          if (startsWithFolded(name, entry.name, entry.underscoreAsHyphen === true)) return entry.kind;
        }
      }
    }
    if (n < this.#shortestPrefix) return 0;
    // A name's first character is a token character (llhttp checked): |0x20 lowercases a letter and keeps it below 128.
    const prefixes = this.#prefixes[name.charCodeAt(0) | 0x20];
    if (prefixes !== undefined) {
      for (let i = 0; i < prefixes.length; i++) {
        const entry = prefixes[i]!;
        if (n >= entry.name.length && startsWithFolded(name, entry.name, entry.underscoreAsHyphen === true)) return entry.kind;
      }
    }
    return 0;
  }
}

/** Whether `name` begins with `lower` (lowercase), ignoring ASCII case, with '_' as '-' when asked. */
export function startsWithFolded(name: string, lower: string, underscoreAsHyphen = false): boolean {
  if (name.length < lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    let c = name.charCodeAt(i);
    const want = lower.charCodeAt(i);
    if (c === want) continue;
    if (c >= UPPER_A && c <= UPPER_Z) c += 32;
    else if (c === UNDERSCORE && underscoreAsHyphen) c = HYPHEN;
    if (c !== want) return false;
  }
  return true;
}

/** `name` equals `lower` (lowercase), ignoring ASCII case. */
export function equalsFolded(name: string, lower: string): boolean {
  return name.length === lower.length && startsWithFolded(name, lower);
}
