// Active health checks for one upstream: every interval, a GET of the configured path to each
// endpoint, sent through the endpoint's own pool — so over the same mTLS, client certificate and
// upstream identity check as requests (an endpoint presenting the wrong identity fails its check),
// in whatever protocol the pool speaks, on a kept-alive connection when one is free. A check
// passes when a response head with an expected status arrives within the timeout. Thresholds turn
// results into a verdict: unhealthy_threshold failures in a row take a healthy endpoint out of
// the balancer (outlier-detector.ts), healthy_threshold passes in a row bring it back. Endpoints
// start healthy (a restart must not refuse traffic until the first round ends); the first round
// runs at once.
//
// With workers, checks are shared rather than multiplied (health-share.ts): each of N workers
// checks every N intervals, offset by its slot, and every result reaches every worker, whose
// thresholds therefore see the same sequence and agree.
import type { HealthCheck } from '../config/types.js';
import { log } from '../log.js';
import { upstreamHealthChecks } from '../metrics/proxy-metrics.js';
import type { HealthResult, HealthShare } from './health-share.js';
import type { UpstreamExchangeHandler, UpstreamRequest } from './upstream-exchange.js';
import type { UpstreamPool } from './upstream-pool.js';

/** Where verdicts go: the balancer's view of which endpoints are in. */
export interface HealthVerdicts {
  setUnhealthy(endpoint: number, unhealthy: boolean): void;
  /** A check passed: an endpoint passive detection ejected is back at once (as Envoy does), being demonstrably up. */
  checkPassed(endpoint: number): void;
}

export type CheckState = 'healthy' | 'unhealthy';

export class HealthChecker {
  readonly #request: UpstreamRequest;
  readonly #passes: number[];
  readonly #failures: number[];
  readonly #state: CheckState[];
  readonly #last: Array<string | undefined>;
  readonly #results: Array<{ inc(): void }[]>;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(
    private readonly upstream: string,
    private readonly endpoints: readonly string[],
    private readonly config: HealthCheck,
    /** The pools now (a TLS rotation replaces them). */
    private readonly pools: () => readonly UpstreamPool[],
    private readonly verdicts: HealthVerdicts,
    private readonly share: HealthShare,
    scheme: 'https' | 'http',
  ) {
    const n = endpoints.length;
    this.#passes = new Array<number>(n).fill(0);
    this.#failures = new Array<number>(n).fill(0);
    this.#state = new Array<CheckState>(n).fill('healthy');
    this.#last = new Array<string | undefined>(n).fill(undefined);
    this.#results = endpoints.map((endpoint) => [upstreamHealthChecks.labels(upstream, endpoint, 'pass'), upstreamHealthChecks.labels(upstream, endpoint, 'fail')]);
    this.#request = {
      method: 'GET',
      scheme,
      authority: undefined, // the pool names its endpoint
      path: config.path,
      headers: ['user-agent', 'gatehouse-health-check'],
      hasLength: false,
      body: null,
    };
  }

  /** Starts the rounds: this worker's first at once plus its slot's offset, then every `slots` intervals. */
  start(): void {
    const { slot, slots } = this.share;
    const every = this.config.intervalMs * slots;
    const round = () => {
      if (this.#stopped) return;
      this.#round();
      this.#timer = setTimeout(round, every);
      this.#timer.unref();
    };
    this.#timer = setTimeout(round, this.config.intervalMs * slot);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  /** Each endpoint's verdict and the last check's outcome, for /upstreams. */
  state(endpoint: number): { check: CheckState; last: string | undefined } {
    return { check: this.#state[endpoint]!, last: this.#last[endpoint] };
  }

  #round(): void {
    const pools = this.pools();
    for (let i = 0; i < pools.length; i++) this.#check(i, pools[i]!);
  }

  #check(endpoint: number, pool: UpstreamPool): void {
    const { timeoutMs, expectStatus } = this.config;
    let settled = false;
    let abort: ((err?: Error) => void) | undefined;
    const settle = (pass: boolean, outcome: string) => {
      if (settled) return;
      settled = true;
      this.#results[endpoint]![pass ? 0 : 1]!.inc();
      this.share.publish({ upstream: this.upstream, endpoint, pass, outcome });
    };
    // One timer per check and interval: a few per endpoint and second at most, never per request.
    const timer = setTimeout(() => {
      settle(false, `no response within ${timeoutMs} ms`);
      abort?.(new Error('health check timed out'));
    }, timeoutMs);
    timer.unref();
    const handler: UpstreamExchangeHandler = {
      onConnect: (a) => {
        abort = a;
        if (settled) a();
      },
      onHeaders: (status) => {
        const pass = status >= expectStatus.min && status <= expectStatus.max;
        settle(pass, `status ${status}`);
      },
      onData: () => true,
      onReadDone: () => {},
      onComplete: () => clearTimeout(timer),
      onError: (err) => {
        clearTimeout(timer);
        settle(false, err.message);
      },
    };
    pool.dispatch(this.#request, handler);
  }

  /** A check's result, from this worker or another (health-share.ts): thresholds decide the verdict. */
  record(result: HealthResult): void {
    const i = result.endpoint;
    if (this.#stopped || i >= this.#state.length) return;
    this.#last[i] = result.outcome;
    if (result.pass) {
      this.verdicts.checkPassed(i);
      this.#failures[i] = 0;
      if (this.#state[i] === 'unhealthy' && ++this.#passes[i]! >= this.config.healthyThreshold) this.#verdict(i, 'healthy', result.outcome);
    } else {
      this.#passes[i] = 0;
      if (this.#state[i] === 'healthy' && ++this.#failures[i]! >= this.config.unhealthyThreshold) this.#verdict(i, 'unhealthy', result.outcome);
    }
  }

  #verdict(i: number, state: CheckState, outcome: string): void {
    this.#state[i] = state;
    this.#passes[i] = 0;
    this.#failures[i] = 0;
    this.verdicts.setUnhealthy(i, state === 'unhealthy');
    const fields = { upstream: this.upstream, endpoint: this.endpoints[i], last_check: outcome };
    if (state === 'unhealthy') log.warn('upstream_endpoint_unhealthy', { ...fields, failed_checks: this.config.unhealthyThreshold });
    else log.info('upstream_endpoint_healthy', { ...fields, passed_checks: this.config.healthyThreshold });
  }
}
