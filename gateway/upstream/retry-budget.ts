// An upstream's retry budget: retries (other than after connect failures, which sent nothing) may
// be at most a share of its requests, counted over a window that decays by half every 10 s, and
// always at least a few, so that a quiet upstream can still retry. When every endpoint fails, a
// retry policy of N attempts would multiply the load on a struggling upstream by N+1; the budget
// keeps it near 1 + budget_percent.
const WINDOW_MS = 10_000;
/** Retries allowed whatever the share: a handful, for a quiet upstream. */
const MIN_RETRIES = 3;

export class RetryBudget {
  #requests = 0;
  #retries = 0;
  #windowStart = Date.now();

  /** A request started (its first try): one increment, no clock. */
  request(): void {
    this.#requests++;
  }

  /** Takes a retry from the budget of `percent` percent; false when it is spent. */
  tryRetry(percent: number): boolean {
    const now = Date.now();
    if (now - this.#windowStart >= WINDOW_MS) {
      this.#requests >>>= 1;
      this.#retries >>>= 1;
      this.#windowStart = now;
    }
    if (this.#retries >= Math.max(MIN_RETRIES, (this.#requests * percent) / 100)) return false;
    this.#retries++;
    return true;
  }
}
