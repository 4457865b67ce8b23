// One request on its way upstream, over as many tries as its route's retry policy allows
// (retry-policy.ts): each try is a ProxyExchange on an endpoint's pool; a failed try goes to the
// endpoint after the one that failed, never back to whatever round robin hands out next. It keeps
// the body when a retry may need to send it again, runs the per-try and request timeouts (timers
// only when a route sets them), counts retries, and answers the failure no try could get past.
import { performance } from 'node:perf_hooks'; // the global is a getter on globalThis: read on every use
import { Readable } from 'node:stream';
import { log } from '../log.js';
import { upstreamRetries, upstreamRetryBudgetExhausted } from '../metrics/proxy-metrics.js';
import type { ConnectionContext } from '../session/connection-context.js';
import type { DownstreamRequest } from '../session/downstream-request.js';
import type { DownstreamResponse } from '../session/downstream-response.js';
import { sendError } from '../session/error-response.js';
import type { RequestFailure } from '../upstream/upstream-errors.js';
import { UpstreamProtocolError, type UpstreamRequest } from '../upstream/upstream-exchange.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import type { CompiledRoute } from './compiled-route.js';
import { ProxyExchange } from './proxy-exchange.js';
import type { RequestLog } from '../access-log/access-log.js';

/** Why a try is repeated: the label of gatehouse_upstream_retries_total. */
type RetryCause = 'connect_failure' | 'reset' | 'per_try_timeout' | number;

export class ForwardedRequest {
  #tries = 0;
  #pool!: UpstreamPool;
  #exchange: ProxyExchange | undefined;
  /** The body read before the first try, sent again by each; undefined when the body streams once. */
  #kept: Buffer | undefined;
  #tryTimer: NodeJS.Timeout | undefined;
  #requestTimer: NodeJS.Timeout | undefined;
  #answered = false;
  /** The status of the answer forwarded (for the access log). */
  #status: number | undefined;
  readonly #started = performance.now();

  constructor(
    private readonly req: DownstreamRequest,
    private readonly res: DownstreamResponse,
    private readonly route: CompiledRoute,
    private readonly conn: ConnectionContext,
    private readonly upstream: UpstreamRequest,
    /** The access log's record, when this request is logged. */
    private readonly record: RequestLog | undefined,
  ) {}

  /** Sends the first try (after reading the body, when the policy keeps it). */
  start(): void {
    const { route, req } = this;
    route.cluster.retryBudget.request();
    const requestMs = route.requestTimeoutMs;
    if (requestMs > 0) this.#requestTimer = setTimeout(this.#onRequestTimeout, requestMs);
    const body = req.body;
    if (body !== null && route.retries.keepsBody(req.method, body.declaredLength)) {
      this.#keepBody(body);
      return;
    }
    this.#try(route.cluster.pick());
  }

  /** Reads the whole (small, announced) body first, so that every try can send it. */
  #keepBody(body: NonNullable<DownstreamRequest['body']>): void {
    const chunks: Buffer[] = [];
    body.on('data', (chunk: Buffer) => chunks.push(chunk));
    body.once('end', () => {
      this.#kept = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      if (!this.res.closed) this.#try(this.route.cluster.pick());
    });
    body.once('error', (err: Error & { status?: number; reason?: string }) => {
      if (err.status !== undefined && err.reason !== undefined) this.#answer({ status: err.status as RequestFailure['status'], reason: err.reason as RequestFailure['reason'], retrySafe: false }, err);
    });
  }

  #try(pool: UpstreamPool): void {
    this.#tries++;
    this.#pool = pool;
    const kept = this.#kept;
    const request = kept === undefined ? this.upstream : { ...this.upstream, body: replay(kept) };
    const exchange = new ProxyExchange(this.res, this, (failure, err) => this.#answer(failure, err), this.upstream.requestId);
    this.#exchange = exchange;
    const perTryMs = this.route.retries.perTryTimeoutMs;
    if (perTryMs > 0) {
      clearTimeout(this.#tryTimer);
      this.#tryTimer = setTimeout(() => exchange.cancel(new UpstreamProtocolError('GATEHOUSE_UPSTREAM_PER_TRY_TIMEOUT', `no response head within ${perTryMs} ms`)), perTryMs);
    }
    pool.dispatch(request, exchange);
    exchange.watchClient(kept === undefined ? this.req.body : null);
  }

  /** ExchangeEvents: a response head; a listed status is tried again where the policy allows. */
  onResponse(status: number, seconds: number): boolean {
    const { route } = this;
    const cluster = route.cluster;
    cluster.responded(this.#pool, status);
    if (route.retries.retriesStatus(status)) {
      const next = this.#nextPool(status, true);
      if (next !== undefined) {
        log.info('upstream_retry', { route: route.config.name, upstream: cluster.name, status, attempt: this.#tries, identity: this.conn.identity?.spiffeId ?? null });
        this.#try(next);
        return true;
      }
    }
    this.#settled();
    route.countStatus(status);
    route.latency.observe(seconds);
    const record = this.record;
    if (record !== undefined) {
      this.#status = status;
      record.upstream = cluster.name;
      record.endpoint = this.#pool.endpointName;
      record.upstreamMs = seconds * 1000;
      record.attempts = this.#tries;
    }
    return false;
  }

  /** ExchangeEvents: the forwarded answer is over (or cut): its access log line. */
  onEnd(bodyBytes: number, cut: string | undefined, status?: number): void {
    if (cut === undefined) this.route.duration.observe((performance.now() - this.#started) / 1000);
    // A client gone before any answer: 499, as NGINX logs it.
    this.record?.finish(status ?? this.#status ?? 499, cut, bodyBytes);
  }

  /** ExchangeEvents: the try failed before a response head; true when another try takes over. */
  onFailure(failure: RequestFailure, err: Error): boolean {
    const { route } = this;
    const cause: RetryCause | undefined = failure.retrySafe ? 'connect_failure' : failure.reason === 'upstream_reset' ? 'reset' : failure.reason === 'upstream_per_try_timeout' ? 'per_try_timeout' : undefined;
    // The endpoint took the request and gave no answer: outlier detection counts it (connect failures the connector counted).
    if (cause === 'reset' || cause === 'per_try_timeout') route.cluster.failed(this.#pool);
    const next = cause === undefined ? undefined : this.#nextPool(cause, cause !== 'connect_failure');
    log.warn(failure.status < 500 ? 'request_body_failed' : 'upstream_failed', {
      route: route.config.name,
      upstream: route.cluster.name,
      reason: failure.reason,
      error: err.message,
      attempt: this.#tries,
      retry: next !== undefined,
      identity: this.conn.identity?.spiffeId ?? null,
    });
    if (next === undefined) return false;
    this.#try(next);
    return true;
  }

  /** The endpoint for another try after a failure of `cause`, or undefined when the failure stands. */
  #nextPool(cause: RetryCause, sent: boolean): UpstreamPool | undefined {
    const { route, req } = this;
    const policy = route.retries;
    const cluster = route.cluster;
    if (this.res.closed || this.#answered || !policy.hasTriesLeft(this.#tries, cluster.poolCount)) return undefined;
    if (cause === 'connect_failure') {
      // Nothing was sent: any method, as long as the body can still go whole.
      if (!policy.onConnectFailure || (this.#kept === undefined && req.body !== null && req.body.started)) return undefined;
    } else {
      if (cause === 'reset' ? !policy.onReset : cause === 'per_try_timeout' ? !policy.onPerTryTimeout : false) return undefined;
      if (sent && !policy.repeatable(req.method, req.body === null || this.#kept !== undefined)) return undefined;
      if (!cluster.retryBudget.tryRetry(policy.budgetPercent)) {
        upstreamRetryBudgetExhausted.labels(cluster.name).inc();
        return undefined;
      }
    }
    upstreamRetries.labels(cluster.name, String(cause)).inc();
    return cluster.after(this.#pool);
  }

  #answer(failure: RequestFailure, err: Error): void {
    if (this.#answered) return;
    this.#answered = true;
    this.#settled();
    const { route } = this;
    route.countRefusal(failure.reason);
    route.countStatus(failure.status);
    const message = failure.status < 500 ? err.message : `upstream '${route.cluster.name}' failed: ${failure.reason}`;
    const bytes = sendError(this.res, failure.status, failure.reason, message, { route: route.config.name }, this.upstream.requestId);
    const record = this.record;
    if (record !== undefined) {
      record.upstream = route.cluster.name;
      record.attempts = this.#tries;
      record.finish(failure.status, failure.reason, bytes);
    }
  }

  readonly #onRequestTimeout = (): void => {
    this.#requestTimer = undefined;
    const err = new UpstreamProtocolError('GATEHOUSE_REQUEST_TIMEOUT', `no response head within ${this.route.requestTimeoutMs} ms`);
    // The try in flight fails with it (a reason no retry is made for): the request's time is up.
    const exchange = this.#exchange;
    if (exchange === undefined) {
      this.#answer({ status: 504, reason: 'request_timeout', retrySafe: false }, err); // still reading the body
      return;
    }
    exchange.cancel(err);
  };

  /** A response head arrived or the request was answered: no timer may fire any more. */
  #settled(): void {
    clearTimeout(this.#tryTimer);
    clearTimeout(this.#requestTimer);
  }
}

/** A kept body as a fresh stream for one try. */
function replay(body: Buffer): Readable {
  const stream = new Readable({ read() {} });
  if (body.length > 0) stream.push(body);
  stream.push(null);
  return stream;
}
