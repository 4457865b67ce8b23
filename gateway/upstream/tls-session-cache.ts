// TLS sessions toward upstreams, for resumption on new pooled connections. undici's own cache is
// keyed by server name only; ours is keyed by endpoint, server name AND the fingerprint of the
// client certificate we present, so two client identities never share a session (a resumed
// session carries the identity it was established with).

export class TlsSessionCache {
  readonly #sessions = new Map<string, Buffer>();

  constructor(private readonly capacity = 1024) {}

  static key(host: string, port: number, servername: string, clientCertFingerprint: string): string {
    return `${host}:${port}|${servername}|${clientCertFingerprint}`;
  }

  get(key: string): Buffer | undefined {
    return this.#sessions.get(key);
  }

  set(key: string, session: Buffer): void {
    this.#sessions.delete(key); // re-insert: most recent last
    if (this.#sessions.size >= this.capacity) {
      const oldest = this.#sessions.keys().next().value;
      if (oldest !== undefined) this.#sessions.delete(oldest);
    }
    this.#sessions.set(key, session);
  }

  /** A session that failed to resume (e.g. the upstream rotated its ticket keys) is dropped. */
  delete(key: string): void {
    this.#sessions.delete(key);
  }

  get size(): number {
    return this.#sessions.size;
  }
}
