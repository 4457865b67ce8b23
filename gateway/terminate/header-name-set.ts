// A set of lowercase header names matched case-insensitively without lowercasing every header on
// the request path: a name whose length no member has is rejected by one table lookup.

export class HeaderNameSet {
  readonly #names: ReadonlySet<string>;
  readonly #lengths: Uint8Array;

  constructor(names: Iterable<string>) {
    this.#names = new Set([...names].map((n) => n.toLowerCase()));
    const longest = Math.max(0, ...[...this.#names].map((n) => n.length));
    this.#lengths = new Uint8Array(longest + 1);
    for (const n of this.#names) this.#lengths[n.length] = 1;
  }

  has(name: string): boolean {
    return this.#lengths[name.length] === 1 && this.#names.has(name.toLowerCase());
  }
}
