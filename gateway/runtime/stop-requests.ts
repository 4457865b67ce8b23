// How a serving process takes requests to stop: the first SIGTERM or SIGINT (or POST /drain) starts
// a graceful drain, a second signal ends the process at once. A signal within SAME_STOP_MS of the
// first is the same request arriving twice: a Ctrl-C or a process-group kill (systemd's default)
// reaches a relaunched gateway (openssl-tuning.ts) both directly and forwarded by its parent, and
// reaches cluster workers beside their primary's own message.

/** Long enough for a forwarded copy of a signal, far shorter than any operator's second try. */
export const SAME_STOP_MS = 250;

export interface StopActions {
  /** Drains and exits (0) when done. */
  drain(why: string): void;
  /** Ends the process now. */
  now(why: string): void;
}

export class StopRequests {
  #firstAt: number | undefined;

  constructor(private readonly actions: StopActions) {}

  get draining(): boolean {
    return this.#firstAt !== undefined;
  }

  /** SIGTERM or SIGINT: drains the first time, ends at once the next. */
  signal(name: string): void {
    const now = Date.now();
    if (this.#firstAt === undefined) this.drain(name);
    else if (now - this.#firstAt >= SAME_STOP_MS) this.actions.now(name);
  }

  /** A request that never forces (POST /drain, the primary's message): false if a drain has begun already. */
  drain(why: string): boolean {
    if (this.#firstAt !== undefined) return false;
    this.#firstAt = Date.now();
    this.actions.drain(why);
    return true;
  }
}
