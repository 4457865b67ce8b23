// Reading a YAML document strictly: maps with a fixed set of keys (unknown ones are reported with
// a hint), typed scalars and lists. Readers report their own problems at the field's path and
// return undefined for a wrong value, so that one pass over the file finds every problem.
import path from 'node:path';
import { isAlias, isMap, isScalar, isSeq, type Document, type Node, type Pair, type YAMLMap } from 'yaml';
import { childPath, itemPath, type ProblemCollector } from './config-problem.js';
import type { Parsed } from './config-values.js';
import { hint } from './did-you-mean.js';

/** Reads the (alias-resolved) node at `path`; undefined when it is wrong, after reporting why. */
export type Reader<T> = (node: Node, path: string, cx: ReadContext) => T | undefined;

export class ReadContext {
  /** Where each built config object came from, for the checks that run on the built config. */
  readonly #paths = new WeakMap<object, string>();

  constructor(
    readonly doc: Document,
    readonly problems: ProblemCollector,
    /** Relative file paths in the config are resolved against this directory. */
    readonly baseDir: string,
  ) {}

  track<T extends object>(value: T, path: string): T {
    this.#paths.set(value, path);
    return value;
  }

  pathOf(value: object): string {
    const found = this.#paths.get(value);
    if (found === undefined) throw new Error('config object was not built by the reader');
    return found;
  }

  /** Follows an alias (`*anchor`) to the node it names. */
  resolve(node: unknown, path: string): Node | undefined {
    if (isAlias(node)) {
      const target = node.resolve(this.doc);
      if (target === undefined) this.problems.atValue(path, `unknown alias '*${node.source}'`);
      return target;
    }
    return node as Node;
  }

  /**
   * Opens the map at `path`, reporting keys outside `keys` (with a hint) and duplicate keys.
   * `elsewhere` maps keys that belong one level down to where they go (`crl` → `client_auth.crl`).
   */
  map<K extends string>(node: Node, path: string, keys: readonly K[], elsewhere: Readonly<Record<string, string>> = {}): MapReader<K> | undefined {
    if (!isMap(node)) {
      this.problems.atValue(path, `expected a mapping (key: value lines), got ${describe(node)}`);
      return undefined;
    }
    return new MapReader(this, node, path, keys, elsewhere);
  }
}

export class MapReader<K extends string> {
  readonly #entries = new Map<string, Pair>();

  constructor(
    private readonly cx: ReadContext,
    map: YAMLMap,
    readonly path: string,
    keys: readonly K[],
    elsewhere: Readonly<Record<string, string>>,
  ) {
    const known = new Set<string>(keys);
    for (const pair of map.items) {
      const key = isScalar(pair.key) ? pair.key.value : undefined;
      const keyOffset = offsetOf(pair.key);
      if (typeof key !== 'string') {
        cx.problems.atOffset(keyOffset ?? offsetOf(map) ?? 0, path, `keys must be plain words, got ${describe(pair.key as Node)}`);
        continue;
      }
      const at = childPath(path, key);
      const value = pair.value as Node | null;
      // An empty value (`tls:`) has no position of its own; point at its key.
      const valueOffset = value && isScalar(value) && value.value === null ? keyOffset : (offsetOf(value) ?? keyOffset);
      const first = this.#entries.get(key);
      if (first) {
        cx.problems.atOffset(keyOffset ?? 0, at, `duplicate key '${key}' (first at line ${cx.problems.lineOf(at)})`);
        continue;
      }
      if (!known.has(key)) {
        cx.problems.place(at, valueOffset ?? 0, keyOffset);
        const home = elsewhere[key];
        cx.problems.atKey(at, `unknown key '${key}'${home !== undefined ? ` (did you mean '${home}'?)` : hint(key, keys)}`);
        continue;
      }
      cx.problems.place(at, valueOffset ?? 0, keyOffset);
      this.#entries.set(key, pair);
    }
  }

  has(key: K): boolean {
    return this.#entries.has(key);
  }

  pathOf(key: K): string {
    return childPath(this.path, key);
  }

  /** The value of an optional key: undefined when absent or wrong. */
  optional<T>(key: K, read: Reader<T>): T | undefined {
    const pair = this.#entries.get(key);
    if (!pair) return undefined;
    const at = this.pathOf(key);
    const node = this.cx.resolve(pair.value, at);
    return node === undefined ? undefined : read(node, at, this.cx);
  }

  /** The value of a key with a default: the default when absent (or wrong, which is reported). */
  withDefault<T>(key: K, read: Reader<T>, fallback: T): T {
    return this.optional(key, read) ?? fallback;
  }

  /** The value of a required key; its absence is reported at this map, with `why` if given. */
  required<T>(key: K, read: Reader<T>, why?: string): T | undefined {
    if (!this.#entries.has(key)) {
      this.cx.problems.atValue(this.pathOf(key), `required key '${key}' is missing${why ? `: ${why}` : ''}`);
      return undefined;
    }
    return this.optional(key, read);
  }
}

function offsetOf(node: unknown): number | undefined {
  const range = (node as Node | null | undefined)?.range;
  return range ? range[0] : undefined;
}

/** What a node is, for "expected X, got Y". */
export function describe(node: Node | null | undefined): string {
  if (node === null || node === undefined) return 'nothing';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isAlias(node)) return `an alias`;
  const value = isScalar(node) ? node.value : undefined;
  if (value === null || value === undefined) return 'nothing';
  if (typeof value === 'string') return `"${value.length > 60 ? value.slice(0, 57) + '...' : value}"`;
  if (typeof value === 'number' || typeof value === 'bigint') return `the number ${value}`;
  return String(value);
}

function scalarOf(node: Node): unknown {
  return isScalar(node) ? node.value : undefined;
}

/** A non-empty string; `what` names the expected format in the message. */
export function text(what = 'a string'): Reader<string> {
  return (node, at, cx) => {
    const value = scalarOf(node);
    if (typeof value === 'string' && value !== '') return value;
    cx.problems.atValue(at, `expected ${what}, got ${value === '' ? 'an empty string' : describe(node)}`);
    return undefined;
  };
}

/** A string in a format checked by `parse` (config-values.ts). */
export function formatted<T>(what: string, parse: (s: string) => Parsed<T>): Reader<T> {
  const asText = text(what);
  return (node, at, cx) => {
    const s = asText(node, at, cx);
    if (s === undefined) return undefined;
    const parsed = parse(s);
    if (parsed.ok) return parsed.value;
    cx.problems.atValue(at, parsed.problem);
    return undefined;
  };
}

export const bool: Reader<boolean> = (node, at, cx) => {
  const value = scalarOf(node);
  if (typeof value === 'boolean') return value;
  cx.problems.atValue(at, `expected true or false, got ${describe(node)}`);
  return undefined;
};

export function integer(min: number, max: number): Reader<number> {
  return (node, at, cx) => {
    const value = scalarOf(node);
    if (typeof value !== 'number' || !Number.isInteger(value)) {
      cx.problems.atValue(at, `expected a whole number, got ${describe(node)}`);
      return undefined;
    }
    return inRange(value, min, max, at, cx);
  };
}

export function fraction(min: number, maxExclusive: number): Reader<number> {
  return (node, at, cx) => {
    const value = scalarOf(node);
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      cx.problems.atValue(at, `expected a number, got ${describe(node)}`);
      return undefined;
    }
    if (value < min || value >= maxExclusive) {
      cx.problems.atValue(at, `${value} is out of range (at least ${min}, below ${maxExclusive})`);
      return undefined;
    }
    return value;
  };
}

function inRange(value: number, min: number, max: number, at: string, cx: ReadContext): number | undefined {
  if (value >= min && value <= max) return value;
  cx.problems.atValue(at, `${value} is out of range (${min} to ${max})`);
  return undefined;
}

/** One of a fixed set of strings; a near miss gets a hint (`strict` → STRICT). */
export function oneOf<T extends string>(values: readonly T[]): Reader<T> {
  return (node, at, cx) => {
    const value = scalarOf(node);
    if (typeof value === 'string' && (values as readonly string[]).includes(value)) return value as T;
    const said = typeof value === 'string' ? `'${value}'` : describe(node);
    cx.problems.atValue(at, `${said} is not one of ${values.join(', ')}${typeof value === 'string' ? hint(value, values) : ''}`);
    return undefined;
  };
}

/** A file path, resolved against the config's directory. */
export const filePath: Reader<string> = (node, at, cx) => {
  const value = text('a file path')(node, at, cx);
  return value === undefined ? undefined : path.resolve(cx.baseDir, value);
};

/** A list of `item`; wrong items are reported and left out. `unique`: an entry listed twice is a problem. */
export function listOf<T>(item: Reader<T>, options: { min?: number; example?: string; unique?: boolean } = {}): Reader<T[]> {
  const min = options.min ?? 0;
  return (node, at, cx) => {
    if (!isSeq(node)) {
      cx.problems.atValue(at, `expected a list${options.example ? `, like ${options.example}` : ''}, got ${describe(node)}`);
      return undefined;
    }
    const values: T[] = [];
    const seen = new Map<string, string>();
    node.items.forEach((raw, i) => {
      const ip = itemPath(at, i);
      const offset = offsetOf(raw);
      if (offset !== undefined) cx.problems.place(ip, offset);
      const resolved = cx.resolve(raw, ip);
      const value = resolved === undefined ? undefined : item(resolved, ip, cx);
      if (value === undefined) return;
      const key = JSON.stringify(value);
      const first = seen.get(key);
      if (options.unique && first !== undefined) {
        cx.problems.atValue(ip, `listed twice (also at ${first}, line ${cx.problems.lineOf(first)})`);
        return;
      }
      seen.set(key, ip);
      values.push(value);
    });
    if (node.items.length < min) {
      cx.problems.atValue(at, min === 1 ? 'must not be empty' : `needs at least ${min} entries`);
      return undefined;
    }
    return values;
  };
}

/**
 * A mapping whose keys are data too (trust domain → bundle file): each key checked by `parseKey`,
 * each value read by `value`, at the path `<map>.<key>`. Wrong entries are reported and left out.
 */
export function mapOf<V>(parseKey: (s: string) => Parsed<string>, value: Reader<V>, options: { min?: number; example?: string } = {}): Reader<{ key: string; value: V }[]> {
  return (node, at, cx) => {
    if (!isMap(node)) {
      cx.problems.atValue(at, `expected a mapping${options.example ? `, like ${options.example}` : ''}, got ${describe(node)}`);
      return undefined;
    }
    const entries: { key: string; value: V }[] = [];
    const seen = new Set<string>();
    for (const pair of node.items) {
      const raw = isScalar(pair.key) ? pair.key.value : undefined;
      const keyOffset = offsetOf(pair.key) ?? offsetOf(node) ?? 0;
      if (typeof raw !== 'string') {
        cx.problems.atOffset(keyOffset, at, `keys must be plain words, got ${describe(pair.key as Node)}`);
        continue;
      }
      const entryAt = childPath(at, raw);
      if (seen.has(raw)) {
        cx.problems.atOffset(keyOffset, entryAt, `duplicate key '${raw}' (first at line ${cx.problems.lineOf(entryAt)})`);
        continue;
      }
      seen.add(raw);
      cx.problems.place(entryAt, offsetOf(pair.value) ?? keyOffset, keyOffset);
      const key = parseKey(raw);
      if (!key.ok) {
        cx.problems.atKey(entryAt, key.problem);
        continue;
      }
      const resolved = cx.resolve(pair.value, entryAt);
      const read = resolved === undefined ? undefined : value(resolved, entryAt, cx);
      if (read !== undefined) entries.push({ key: key.value, value: read });
    }
    if (node.items.length < (options.min ?? 0)) {
      cx.problems.atValue(at, 'must not be empty');
      return undefined;
    }
    return entries;
  };
}
