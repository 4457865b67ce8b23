// One request's trip to the upstream and back, as an upstream exchange handler: response head
// written once from the parser's flat header list (no objects), at the end of the socket read that
// carried it, together with the body bytes that read carried (one write to the client instead of
// two), body streamed with backpressure both ways, and a failure before the response head becomes
// a JSON 502/504 (or the 400/408/413 of a request body the client got wrong).
import { performance } from 'node:perf_hooks'; // the global is a getter on globalThis: read on every use
import type { DownstreamBody } from '../session/downstream-request.js';
import type { DownstreamResponse } from '../session/downstream-response.js';
import { classifyUpstreamError, type RequestFailure } from '../upstream/upstream-errors.js';
import type { UpstreamExchangeHandler } from '../upstream/upstream-exchange.js';
import { isConnectionHeader, namedByResponseConnection, RESPONSE_HOP_BY_HOP, withoutNamed } from '../message/hop-by-hop.js';
import { HeaderNameSet } from '../message/header-name-set.js';

/** The reason an answer that is retried is abandoned with. */
const RETRIED = new Error('answer retried');

/** Response headers that describe the upstream connection, not the message. */
const HOP_BY_HOP = new HeaderNameSet(RESPONSE_HOP_BY_HOP);

export interface ExchangeEvents {
  /** Response head received, with the upstream latency: true when the request is tried again instead (nothing of this answer is sent). */
  onResponse(status: number, upstreamSeconds: number): boolean;
  /** Failed before the response head: retry elsewhere (return true) or let the exchange answer. */
  onFailure(failure: RequestFailure, err: Error): boolean;
  /**
   * The forwarded answer is over: complete (`cut` undefined), cut by the upstream, left by the
   * client or ended by the gateway (with `status` when the gateway answered in its place); its body bytes.
   */
  onEnd(bodyBytes: number, cut: string | undefined, status?: number): void;
}

export class ProxyExchange implements UpstreamExchangeHandler {
  #abort: ((err?: Error) => void) | undefined;
  #resume: (() => void) | undefined;
  /** The upstream's response head arrived (it may still be held in #head). */
  #headersSent = false;
  /** Response head and first body chunk held until the end of the socket read that carried them. */
  #head: { status: number; text: string; headers: string[] } | undefined;
  #first: Buffer | undefined;
  #done = false;
  /** Response body bytes from the upstream so far. */
  #bytes = 0;
  readonly #started = performance.now();

  constructor(
    private readonly res: DownstreamResponse,
    private readonly events: ExchangeEvents,
    private readonly answerFailure: (failure: RequestFailure, err: Error) => void,
    /** Sent to the client as x-request-id in place of any the upstream set. */
    private readonly requestId: string | undefined,
  ) {}

  /**
   * Called once, after dispatch: a client that goes away aborts the upstream request, and so does
   * a request body that fails (RequestBodyError), which is then answered (the connection it was
   * streaming on, if any, reports it first through onError).
   */
  watchClient(body: DownstreamBody | null): void {
    this.res.onClose((endedBy) => {
      if (!this.#done) {
        this.#done = true;
        this.#abort?.(new Error(endedBy === undefined ? 'client closed the connection' : `the gateway ended the response: ${endedBy.reason}`));
        this.events.onEnd(this.#bytes, endedBy?.reason ?? 'client_closed', endedBy?.status);
      }
    });
    body?.once('error', (err: Error) => {
      if (this.#done) return;
      this.#abort?.(err);
      this.onError(err);
    });
  }

  /**
   * Gives up this try before its response head (a per-try or request timeout): the upstream
   * request is cancelled and `err` fails it as if the upstream had (onFailure decides what next).
   * False when the head has arrived: the answer is the client's already.
   */
  cancel(err: Error): boolean {
    if (this.#headersSent || this.#done) return false;
    this.#abort?.(err);
    this.onError(err);
    return true;
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    if (this.#done) abort(new Error('client closed the connection'));
  }

  onHeaders(statusCode: number, raw: string[], resume: () => void, statusText: string): void {
    if (this.events.onResponse(statusCode, (performance.now() - this.#started) / 1000)) {
      this.#done = true;
      this.#abort?.(RETRIED);
      return;
    }
    let headers: string[] = [];
    let connection: string | undefined;
    const requestId = this.requestId;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      if (HOP_BY_HOP.has(name)) {
        if (isConnectionHeader(name)) connection = connection === undefined ? raw[i + 1]! : `${connection},${raw[i + 1]!}`;
        continue;
      }
      if (requestId !== undefined && name.length === 12 && name.toLowerCase() === 'x-request-id') continue; // the gateway's goes instead
      headers.push(name, raw[i + 1]!);
    }
    if (requestId !== undefined) headers.push('x-request-id', requestId);
    // Headers the upstream's Connection header names are hop-by-hop too ("Connection: set-cookie").
    const named = connection === undefined ? undefined : namedByResponseConnection(connection);
    if (named !== undefined) headers = withoutNamed(headers, named);
    this.#headersSent = true;
    this.#resume = resume;
    this.#head = { status: statusCode, text: statusText, headers };
  }

  onData(chunk: Buffer): boolean {
    this.#bytes += chunk.length;
    if (this.#head !== undefined && this.#first === undefined) {
      this.#first = chunk;
      return true;
    }
    this.#flushHead();
    const flowing = this.res.write(chunk);
    if (!flowing) this.res.onDrain(this.#onDrain);
    return flowing;
  }

  onReadDone(): void {
    if (this.#head === undefined) return;
    this.#flushHead();
  }

  #flushHead(): void {
    const head = this.#head;
    if (head === undefined) return;
    this.#head = undefined;
    this.res.writeHead(head.status, head.text, head.headers);
    const first = this.#first;
    if (first === undefined) {
      // The body comes in a later read, maybe much later: the client gets the head now.
      this.res.flushHead();
      return;
    }
    this.#first = undefined;
    if (!this.res.write(first)) this.res.onDrain(this.#onDrain);
  }

  readonly #onDrain = (): void => {
    // Once complete, the upstream connection may be another exchange's: its pause is not ours to lift.
    if (!this.#done) this.#resume?.();
  };

  onComplete(trailers?: readonly string[]): void {
    this.#done = true;
    const head = this.#head;
    if (head === undefined) this.res.end(undefined, trailers);
    else {
      // The whole response came in one read: head and body leave in one write.
      this.#head = undefined;
      this.res.writeHead(head.status, head.text, head.headers);
      const first = this.#first;
      this.#first = undefined;
      this.res.end(first, trailers);
    }
    this.events.onEnd(this.#bytes, undefined);
  }

  onError(err: Error): void {
    if (this.#done && !this.#headersSent) return; // the client left first; nothing to answer
    this.#done = true;
    if (this.#headersSent) {
      // Mid-body failure: the only honest signal left is to cut the client connection.
      this.res.destroy(err);
      this.events.onEnd(this.#bytes, classifyUpstreamError(err).reason);
      return;
    }
    const failure = classifyUpstreamError(err);
    if (this.events.onFailure(failure, err)) return;
    this.answerFailure(failure, err);
  }
}
