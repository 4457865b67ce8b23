// When the request path tries a failed request again, compiled once per route from its retries
// (else its upstream's). A try whose connection never came up sent nothing: it is tried again
// whatever the method, as long as its body can still be sent whole (unread, or kept). After bytes
// went out, only an idempotent request is tried again, and only when its body was kept (none, or
// at most max_buffered_body, read before the first try) and the failure is one the policy names:
// a reset, a try past per_try_timeout, or a listed status (the upstream's answer, which stands when
// no try is left). Retries other than connect failures stay within the upstream's budget. Without
// a retries block: connect failures alone, on each other endpoint once, as before the block existed.
import type { Retries } from '../config/types.js';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

export class RetryPolicy {
  /** Tries in all, the first included; undefined: one per endpoint (the implicit policy). */
  readonly maxTries: number | undefined;
  readonly onConnectFailure: boolean;
  readonly onReset: boolean;
  readonly onPerTryTimeout: boolean;
  readonly perTryTimeoutMs: number;
  readonly budgetPercent: number;
  readonly maxBufferedBody: number;
  /** 500-599: retried statuses (index status - 500); empty when none are. */
  readonly #statuses: Uint8Array;
  readonly #anyStatus: boolean;

  constructor(config: Retries | undefined) {
    const on = config?.on ?? ['connect_failure'];
    this.maxTries = config === undefined ? undefined : config.attempts + 1;
    this.onConnectFailure = on.includes('connect_failure');
    this.onReset = on.includes('reset');
    this.onPerTryTimeout = on.includes('per_try_timeout');
    this.perTryTimeoutMs = config?.perTryTimeoutMs ?? 0;
    this.budgetPercent = config?.budgetPercent ?? 100;
    this.maxBufferedBody = config?.maxBufferedBody ?? 0;
    this.#statuses = new Uint8Array(100);
    for (const item of on) if (typeof item === 'number') this.#statuses[item - 500] = 1;
    this.#anyStatus = this.#statuses.includes(1);
  }

  /** Whether an answer with this status is tried again (when the request may be). */
  retriesStatus(status: number): boolean {
    return this.#anyStatus && status >= 500 && status < 600 && this.#statuses[status - 500] === 1;
  }

  /** Whether a try that sent bytes may be repeated: an idempotent method whose body (if any) is kept. */
  repeatable(method: string, bodyKept: boolean): boolean {
    return bodyKept && IDEMPOTENT.has(method);
  }

  /** Whether this request's body is read and kept before the first try (so a retry can send it again). */
  keepsBody(method: string, declaredLength: number): boolean {
    return this.maxBufferedBody > 0 && declaredLength > 0 && declaredLength <= this.maxBufferedBody && IDEMPOTENT.has(method) && (this.onReset || this.onPerTryTimeout || this.#anyStatus);
  }

  /** Whether try number `tries` (1 for the first) may be followed by another, on an upstream of `endpoints` endpoints. */
  hasTriesLeft(tries: number, endpoints: number): boolean {
    return tries < (this.maxTries ?? endpoints);
  }
}
