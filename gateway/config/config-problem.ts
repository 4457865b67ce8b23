// Configuration problems: what is wrong, in which field (YAML spelling, e.g.
// `listeners[0].tls.client_auth.trust_bundle`) and where in the file. Every stage of loading
// reports into one ProblemCollector, which knows where each field sits in the file, so checks
// that run on the built config still point at the right line and column.
import type { LineCounter } from 'yaml';

export interface ConfigProblem {
  readonly file: string;
  /** 1-based; 0 when the problem is with the file as a whole (it could not be read). */
  readonly line: number;
  readonly col: number;
  /** The field, in YAML spelling; '' for the document itself. */
  readonly path: string;
  readonly message: string;
}

/** `FILE:LINE:COL: path: message`, the line format of `gatehouse validate`. */
export function formatProblem(p: ConfigProblem): string {
  const where = p.line > 0 ? `${p.file}:${p.line}:${p.col}` : p.file;
  return p.path === '' ? `${where}: ${p.message}` : `${where}: ${p.path}: ${p.message}`;
}

export function childPath(parent: string, key: string): string {
  return parent === '' ? key : `${parent}.${key}`;
}

export function itemPath(parent: string, index: number): string {
  return `${parent}[${index}]`;
}

/** `a.b[2].c` → `a.b[2]` → `a.b` → `a` → ''. */
export function parentPath(path: string): string {
  const cut = Math.max(path.lastIndexOf('.'), path.lastIndexOf('['));
  return cut === -1 ? '' : path.slice(0, cut);
}

interface Placement {
  readonly value: number;
  readonly key: number | undefined;
}

export class ProblemCollector {
  readonly #problems: ConfigProblem[] = [];
  readonly #warnings: ConfigProblem[] = [];
  /** Source offsets of every field read from the file, by path. */
  readonly #placements = new Map<string, Placement>();

  constructor(
    readonly file: string,
    private readonly lineCounter?: LineCounter,
  ) {}

  /** Records where the field at `path` sits: its value and, for map entries, its key. */
  place(path: string, valueOffset: number, keyOffset?: number): void {
    this.#placements.set(path, { value: valueOffset, key: keyOffset });
  }

  /**
   * A problem with the value at `path`. A field the file does not hold (missing, or defaulted)
   * is reported at the nearest enclosing field that it does hold: the map it belongs in.
   */
  atValue(path: string, message: string): void {
    this.#problems.push(this.#make(path, this.#offsetOf(path, 'value'), message));
  }

  /** A problem with the key itself (unknown, duplicate). */
  atKey(path: string, message: string): void {
    this.#problems.push(this.#make(path, this.#offsetOf(path, 'key'), message));
  }

  /** A problem at a source offset (YAML syntax errors). */
  atOffset(offset: number, path: string, message: string): void {
    this.#problems.push(this.#make(path, offset, message));
  }

  /** A problem with the whole file (it could not be read). */
  atFile(message: string): void {
    this.#problems.push({ file: this.file, line: 0, col: 0, path: '', message });
  }

  /** Valid, but worth telling the operator (printed by `validate`, exit code unaffected). */
  warn(path: string, message: string): void {
    this.#warnings.push(this.#make(path, this.#offsetOf(path, 'value'), message));
  }

  /** Whether a problem was reported at `path` or inside it: later checks skip such fields. */
  hasProblemAt(path: string): boolean {
    return this.#problems.some((p) => p.path === path || p.path.startsWith(path + '.') || p.path.startsWith(path + '['));
  }

  /** Whether a problem was reported at a path that passes `test`. */
  hasProblemWhere(test: (path: string) => boolean): boolean {
    return this.#problems.some((p) => test(p.path));
  }

  /** The line of a field, for messages like "(first at line 12)". */
  lineOf(path: string): number {
    const offset = this.#offsetOf(path, 'value');
    return offset === undefined || !this.lineCounter ? 0 : this.lineCounter.linePos(offset).line;
  }

  get count(): number {
    return this.#problems.length;
  }

  /** In file order, so the output reads top to bottom. */
  get problems(): ConfigProblem[] {
    return sortByPosition(this.#problems);
  }

  get warnings(): ConfigProblem[] {
    return sortByPosition(this.#warnings);
  }

  #offsetOf(path: string, part: 'value' | 'key'): number | undefined {
    for (let p = path; ; p = parentPath(p)) {
      const placement = this.#placements.get(p);
      if (placement) return part === 'key' && p === path ? (placement.key ?? placement.value) : placement.value;
      if (p === '') return undefined;
    }
  }

  #make(path: string, offset: number | undefined, message: string): ConfigProblem {
    if (offset === undefined || !this.lineCounter) return { file: this.file, line: 1, col: 1, path, message };
    const { line, col } = this.lineCounter.linePos(offset);
    return { file: this.file, line, col, path, message };
  }
}

function sortByPosition(problems: readonly ConfigProblem[]): ConfigProblem[] {
  // Array.prototype.sort is stable: problems at one position keep the order they were found in.
  return [...problems].sort((a, b) => a.line - b.line || a.col - b.col);
}
