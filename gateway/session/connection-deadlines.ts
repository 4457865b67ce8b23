// Deadlines of client connections and their streams (HTTP/1.1 request-head and keep-alive idle
// timeouts, HTTP/2 session and stream-body timeouts), checked by one
// coarse interval for all of them instead of a timer armed and cleared around every request.

export interface HasDeadline {
  /** Absolute time (ms) after which `expire` runs; 0 when none applies. */
  readonly deadline: number;
  expire(now: number): void;
}

const SWEEP_MS = 500;
const watched = new Set<HasDeadline>();
let timer: NodeJS.Timeout | undefined;

export function watchDeadline(item: HasDeadline): void {
  watched.add(item);
  if (timer === undefined) {
    timer = setInterval(sweep, SWEEP_MS);
    timer.unref();
  }
}

export function unwatchDeadline(item: HasDeadline): void {
  watched.delete(item);
  if (watched.size === 0 && timer !== undefined) {
    clearInterval(timer);
    timer = undefined;
  }
}

function sweep(): void {
  const now = Date.now();
  for (const item of watched) {
    const deadline = item.deadline;
    if (deadline !== 0 && now >= deadline) item.expire(now);
  }
}
