// A budget of log lines per second, so that a port scan, a flood of bad clients or a backend
// that is down becomes a few lines a second and not one per connection (the metrics count every
// one). The next line that gets through says how many were left out.
import { log, type LogLevel } from '../log.js';

/** Refusal log lines per second and listener (connections refused before a route or handshake). */
export const REFUSAL_LOG_LINES_PER_SECOND = 20;

export class LogBudget {
  readonly #perSecond: number;
  #windowStart = 0;
  #written = 0;
  #skipped = 0;

  constructor(perSecond: number) {
    this.#perSecond = perSecond;
  }

  /** `undefined`: skip this line. Otherwise write it, with the number of lines skipped before it. */
  take(now = Date.now()): number | undefined {
    if (now - this.#windowStart >= 1000) {
      this.#windowStart = now;
      this.#written = 0;
    }
    if (this.#written >= this.#perSecond) {
      this.#skipped++;
      return undefined;
    }
    this.#written++;
    const skipped = this.#skipped;
    this.#skipped = 0;
    return skipped;
  }

  /** Writes the line if the budget allows it, with `skipped_lines` when lines were left out before it. */
  write(level: LogLevel, event: string, fields: Record<string, unknown>): void {
    const skipped = this.take();
    if (skipped !== undefined) log[level](event, skipped > 0 ? { ...fields, skipped_lines: skipped } : fields);
  }
}
