// A set of lowercase header names matched case-insensitively without lowercasing every header on
// the request path (a HeaderNameTable with one kind).
import { HeaderNameTable } from './header-name-table.js';

export class HeaderNameSet {
  readonly #table: HeaderNameTable;

  constructor(names: Iterable<string>) {
    this.#table = new HeaderNameTable([...names].map((name) => ({ name: name.toLowerCase(), kind: 1 })));
  }

  has(name: string): boolean {
    return this.#table.kindOf(name) !== 0;
  }
}
