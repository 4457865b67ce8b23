// Passive outlier detection for one upstream: real traffic ejects an endpoint whose connections
// keep failing (refused, reset before TLS completed, timed out, wrong identity) or that keeps
// answering 502/503/504 (any other answer ends the count), so the balancer
// stops sending it requests that would only fail over. An ejection lasts base_ejection, doubling
// each time the endpoint is ejected again without a good connection in between (capped at ten
// times the base); at most max_ejection_percent of the endpoints are out at once. State is a few
// numbers per endpoint, changed on connection events only; the balancer looks at it only while an
// endpoint is out (outCount > 0), and an ejection ends lazily, at the first pick after it
// expired: no timer, nothing per request on a healthy upstream. When every endpoint is out (a
// max_ejection_percent of 100), traffic is tried on them anyway (panic), and that is logged.
// Active health checks' verdicts (health-checker.ts) take an endpoint out here too, until its
// checks pass again; max_ejection_percent bounds passive ejections only.
import { OUTLIER_DETECTION_DEFAULT, type OutlierDetection } from '../config/types.js';
import { log } from '../log.js';
import { upstreamEjections, upstreamEndpointHealthy } from '../metrics/proxy-metrics.js';
import type { HealthVerdicts } from './health-checker.js';

/** An ejection never lasts longer than this many base ejections. */
const MAX_EJECTION_FACTOR = 10;

export class OutlierDetector implements HealthVerdicts {
  /** Endpoints out now, ejected or unhealthy (some ejections may have expired, unnoticed until the next pick). */
  outCount = 0;
  /** Endpoints ejected now: what max_ejection_percent bounds. */
  #ejectedCount = 0;
  /** Failing their active health checks. */
  readonly #unhealthy: boolean[];
  readonly #failures: number[];
  /** When each endpoint's ejection ends (ms since the epoch), 0 when it is in. */
  readonly #ejectedUntil: number[];
  /** Ejections in a row without a good connection between them: the doubling's exponent. */
  readonly #ejections: number[];
  readonly #maxEjected: number;
  readonly #healthy: Array<{ set(value: number): void }>;
  readonly #ejectionCount: Array<{ inc(by?: number): void }>;
  #panicking = false;

  constructor(
    private readonly upstream: string,
    private readonly endpoints: readonly string[],
    private readonly config: OutlierDetection = OUTLIER_DETECTION_DEFAULT,
  ) {
    const n = endpoints.length;
    this.#failures = new Array<number>(n).fill(0);
    this.#ejectedUntil = new Array<number>(n).fill(0);
    this.#ejections = new Array<number>(n).fill(0);
    this.#unhealthy = new Array<boolean>(n).fill(false);
    this.#maxEjected = Math.floor((n * config.maxEjectionPercent) / 100);
    this.#healthy = endpoints.map((endpoint) => upstreamEndpointHealthy.labels(upstream, endpoint));
    this.#ejectionCount = endpoints.map((endpoint) => upstreamEjections.labels(upstream, endpoint));
    for (const gauge of this.#healthy) gauge.set(1);
    for (const counter of this.#ejectionCount) counter.inc(0); // shown from the start, so rate() has a base
  }

  /** A connection to endpoint `i` came up: its ejection streak ends. */
  connected(i: number): void {
    // Failures in a row go on: an endpoint that accepts connections and resets every request is
    // failing all the same (an answer other than 502/503/504 ends the count, in responded()).
    this.#ejections[i] = 0;
  }

  /** A response head from endpoint `i` (per request: a compare, and a store only after a failure). */
  responded(i: number, status: number): void {
    if (status >= 502 && status <= 504) this.connectFailed(i);
    else if (this.#failures[i] !== 0) this.#failures[i] = 0;
  }

  /** A connection to endpoint `i` could not be made (or it answered 502/503/504). */
  connectFailed(i: number): void {
    if (this.#ejectedUntil[i] !== 0) return; // already out: attempts still in flight say nothing new
    if (++this.#failures[i]! < this.config.consecutiveFailures) return;
    if (this.#ejectedCount >= this.#maxEjected) return; // the rest would drown
    this.#failures[i] = 0;
    const streak = this.#ejections[i]!;
    this.#ejections[i] = streak + 1;
    const ms = this.config.baseEjectionMs * Math.min(2 ** streak, MAX_EJECTION_FACTOR);
    this.#ejectedUntil[i] = Date.now() + ms;
    this.#ejectedCount++;
    if (!this.#unhealthy[i]) this.#out(i);
    this.#ejectionCount[i]!.inc();
    log.warn('upstream_endpoint_ejected', { upstream: this.upstream, endpoint: this.endpoints[i], consecutive_failures: this.config.consecutiveFailures, ejection_ms: ms });
  }

  /** The active health checks' verdict on endpoint `i`. */
  setUnhealthy(i: number, unhealthy: boolean): void {
    if (this.#unhealthy[i] === unhealthy) return;
    this.#unhealthy[i] = unhealthy;
    if (this.#ejectedUntil[i] !== 0) return; // out (and counted) as ejected already
    if (unhealthy) this.#out(i);
    else this.#in(i);
  }

  /** An active check of endpoint `i` passed: its ejection, if any, ends now. */
  checkPassed(i: number): void {
    if (this.#ejectedUntil[i] !== 0) this.#restore(i);
  }

  /** Whether endpoint `i` fails its active checks, and until when it is ejected (0: not), for /upstreams. */
  status(i: number): { unhealthy: boolean; ejectedUntil: number } {
    return { unhealthy: this.#unhealthy[i]!, ejectedUntil: this.#ejectedUntil[i]! };
  }

  #out(i: number): void {
    this.outCount++;
    this.#healthy[i]!.set(0);
  }

  #in(i: number): void {
    this.outCount--;
    this.#panicking = false;
    this.#healthy[i]!.set(1);
  }

  /** The first endpoint from `i` on (wrapping) that is in; `i` itself when all are out (panic). Only while outCount > 0. */
  usable(i: number): number {
    const until = this.#ejectedUntil;
    const n = until.length;
    const now = Date.now();
    const unhealthy = this.#unhealthy;
    for (let k = 0, j = i; k < n; k++, j = j + 1 === n ? 0 : j + 1) {
      const end = until[j]!;
      if (end !== 0 && end <= now) this.#restore(j);
      if (until[j] === 0 && !unhealthy[j]) return j;
    }
    if (!this.#panicking) {
      this.#panicking = true;
      log.warn('upstream_panic', { upstream: this.upstream, note: 'every endpoint is ejected: trying them anyway' });
    }
    return i;
  }

  /** Ends the ejections that have expired (at scrape time, so the gauge does not wait for a pick). */
  expire(): void {
    if (this.#ejectedCount === 0) return;
    const now = Date.now();
    for (let j = 0; j < this.#ejectedUntil.length; j++) if (this.#ejectedUntil[j] !== 0 && this.#ejectedUntil[j]! <= now) this.#restore(j);
  }

  #restore(j: number): void {
    this.#ejectedUntil[j] = 0;
    this.#ejectedCount--;
    if (!this.#unhealthy[j]) this.#in(j);
    log.info('upstream_endpoint_restored', { upstream: this.upstream, endpoint: this.endpoints[j] });
  }
}
