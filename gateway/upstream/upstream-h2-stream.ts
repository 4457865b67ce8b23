// One exchange on an HTTP/2 upstream session, as one stream: the request body streamed with
// backpressure (a write the stream does not take pauses the client's body until it drains), the
// response head handed over as a flat header list, its body with flow control (a chunk the client
// cannot take now pauses the stream, so nghttp2 stops granting the upstream window), its trailers
// with the end. Deadlines as on an HTTP/1.1 connection: the response-head clock runs only while
// the upstream is what we wait for, the body clock between chunks; the session's pool checks them
// on its coarse tick. Cancelling sends RST_STREAM(CANCEL), and never END_STREAM first.
import http2, { type ClientHttp2Stream } from 'node:http2';
import { addAbortSignal, Readable } from 'node:stream';
import { UpstreamProtocolError, type UpstreamExchangeHandler, type UpstreamRequest } from './upstream-exchange.js';
import type { SessionOwner } from './upstream-session.js';

const { NGHTTP2_NO_ERROR } = http2.constants;
const COLON = 58;

/**
 * What a stream is destroyed with to cancel it. stream.close(CANCEL) would first end our side
 * (END_STREAM), so an upstream would read a request body cut short as complete; destroyed, the
 * stream sends RST_STREAM alone, with CANCEL for an AbortError (Node's own, made here through
 * public API: an aborted signal's error) and INTERNAL_ERROR for anything else.
 */
const CANCELLED: Error = (() => {
  const probe = new Readable({ read() {} });
  probe.on('error', () => {});
  addAbortSignal(AbortSignal.abort(), probe);
  return probe.errored ?? new Error('cancelled');
})();

type DeadlineCode = 'GATEHOUSE_UPSTREAM_HEADERS_TIMEOUT' | 'GATEHOUSE_UPSTREAM_BODY_TIMEOUT';

/** What a stream tells its session. */
export interface StreamSession {
  readonly owner: SessionOwner;
  /** Whether the upstream can have acted on `stream` (it closed without a response). */
  unprocessed(stream: ClientHttp2Stream): boolean;
  /**
   * The stream is closed. `failure` is set when its handler is still owed an outcome: `refused`
   * when the upstream did not process it.
   */
  streamClosed(exchange: UpstreamH2Stream, handler: UpstreamExchangeHandler | undefined, failure: Error | undefined, refused: boolean): void;
}

export class UpstreamH2Stream {
  /** Until the response has ended, the request failed, or the client cancelled. */
  #handler: UpstreamExchangeHandler | undefined;
  #stream: ClientHttp2Stream | undefined;
  #body: Readable | null = null;
  #responded = false;
  #trailers: string[] | undefined;
  /** Absolute coarse time after which the current phase has timed out; 0 when none applies. */
  #deadline = 0;
  #deadlineCode: DeadlineCode = 'GATEHOUSE_UPSTREAM_HEADERS_TIMEOUT';
  #error: Error | undefined;

  constructor(
    private readonly session: StreamSession,
    readonly request: UpstreamRequest,
    handler: UpstreamExchangeHandler,
  ) {
    this.#handler = handler;
  }

  /** The client cancelled before the stream was opened. */
  get cancelled(): boolean {
    return this.#handler === undefined;
  }

  /** Runs the exchange on `stream`, just opened with the request head. */
  start(stream: ClientHttp2Stream): void {
    this.#stream = stream;
    stream.on('response', this.#onResponse);
    stream.on('data', this.#onData);
    stream.on('trailers', this.#onTrailers);
    stream.on('end', this.#onEnd);
    stream.on('error', this.#onError);
    stream.on('close', this.#onClose);
    const body = this.request.body;
    this.#setDeadline(body === null ? this.session.owner.headersMs : 0, 'GATEHOUSE_UPSTREAM_HEADERS_TIMEOUT');
    if (body !== null) this.#streamBody(body);
  }

  checkDeadline(now: number): void {
    if (this.#deadline !== 0 && now >= this.#deadline && this.#handler !== undefined) {
      const phase = this.#deadlineCode === 'GATEHOUSE_UPSTREAM_HEADERS_TIMEOUT' ? 'response headers' : 'response body';
      this.#fail(new UpstreamProtocolError(this.#deadlineCode, `upstream ${phase} timed out`));
    }
  }

  /** Given to the handler: the client went away, or gave up. */
  readonly abort = (): void => {
    if (this.#handler === undefined) return;
    this.#handler = undefined;
    this.#deadline = 0;
    this.#detachBody();
    this.#stream?.destroy(CANCELLED);
  };

  #setDeadline(ms: number, code: DeadlineCode): void {
    // A disabled (0) timeout never fires; the pool's tick may run up to one tick late.
    this.#deadline = ms > 0 ? this.session.owner.now + ms : 0;
    this.#deadlineCode = code;
  }

  /** While no response head has come: whether its clock runs (the upstream is what we wait for). */
  #awaitHead(upstreamsTurn: boolean): void {
    if (this.#responded || this.#handler === undefined) return;
    this.#setDeadline(upstreamsTurn ? this.session.owner.headersMs : 0, 'GATEHOUSE_UPSTREAM_HEADERS_TIMEOUT');
  }

  #streamBody(body: Readable): void {
    if (body.destroyed) {
      this.#fail(body.errored ?? new UpstreamProtocolError('GATEHOUSE_UPSTREAM_CLOSED', 'client request body ended early'));
      return;
    }
    this.#body = body;
    body.on('data', this.#onBodyData);
    body.once('end', this.#onBodyEnd);
    body.once('error', this.#onBodyError);
    // Destroyed without an error (nobody listened then), a body ends with 'close' alone.
    body.once('close', this.#onBodyError);
  }

  #detachBody(): void {
    const body = this.#body;
    if (body === null) return;
    this.#body = null;
    body.removeListener('data', this.#onBodyData);
    body.removeListener('end', this.#onBodyEnd);
    body.removeListener('error', this.#onBodyError);
    body.removeListener('close', this.#onBodyError);
    this.#stream?.removeListener('drain', this.#onDrain);
  }

  readonly #onBodyData = (chunk: Buffer): void => {
    if (this.#stream!.write(chunk)) return;
    this.#body!.pause();
    this.#stream!.once('drain', this.#onDrain);
    this.#awaitHead(true); // the upstream is not taking the body
  };

  readonly #onDrain = (): void => {
    if (this.#body === null) return;
    this.#awaitHead(false); // the body waits for the client again
    this.#body.resume();
  };

  readonly #onBodyEnd = (): void => {
    this.#detachBody();
    this.#stream!.end();
    this.#awaitHead(true);
  };

  readonly #onBodyError = (err?: unknown): void => {
    this.#detachBody();
    // Its error (a RequestBodyError: malformed, too slow, too large) tells how to answer the client.
    this.#fail(err instanceof Error ? err : new UpstreamProtocolError('GATEHOUSE_UPSTREAM_CLOSED', 'client request body ended early'));
  };

  readonly #resume = (): void => {
    this.#stream?.resume();
  };

  readonly #readDone = (): void => {
    this.#handler?.onReadDone();
  };

  readonly #onResponse = (headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, _flags: number, raw: string[]): void => {
    const handler = this.#handler;
    if (handler === undefined) return;
    this.#responded = true;
    this.#setDeadline(this.session.owner.bodyMs, 'GATEHOUSE_UPSTREAM_BODY_TIMEOUT');
    handler.onHeaders(headers[':status'] ?? 0, withoutPseudoHeaders(raw), this.#resume, '');
    // Body bytes that came in the same read join the head in one write to the client.
    if (this.#handler === handler) queueMicrotask(this.#readDone);
  };

  readonly #onData = (chunk: Buffer): void => {
    const handler = this.#handler;
    if (handler === undefined) return;
    const bodyMs = this.session.owner.bodyMs;
    if (bodyMs > 0) this.#deadline = this.session.owner.now + bodyMs;
    if (!handler.onData(chunk)) this.#stream!.pause();
  };

  readonly #onTrailers = (_trailers: http2.IncomingHttpHeaders, _flags: number, raw: string[]): void => {
    this.#trailers = withoutPseudoHeaders(raw);
  };

  readonly #onEnd = (): void => {
    const handler = this.#handler;
    if (handler === undefined || !this.#responded) return;
    this.#handler = undefined;
    this.#deadline = 0;
    handler.onComplete(this.#trailers);
    // A request body still on its way goes on until the upstream closes the stream.
  };

  readonly #onError = (err: Error): void => {
    this.#error = err; // reported when the stream closes
  };

  readonly #onClose = (): void => {
    const stream = this.#stream!;
    this.#detachBody();
    const handler = this.#handler;
    this.#handler = undefined;
    this.#deadline = 0;
    let failure: Error | undefined;
    let refused = false;
    if (handler !== undefined) {
      if (!this.#responded && this.session.unprocessed(stream)) {
        refused = true;
        failure = new UpstreamProtocolError('GATEHOUSE_UPSTREAM_REFUSED', `upstream refused the stream unprocessed (${this.#error?.message ?? 'GOAWAY'})`);
      } else if (stream.rstCode !== NGHTTP2_NO_ERROR || this.#error !== undefined) {
        failure = new UpstreamProtocolError('GATEHOUSE_UPSTREAM_STREAM_RESET', `upstream stream failed: ${this.#error?.message ?? `reset with code ${stream.rstCode}`}`);
      } else {
        failure = new UpstreamProtocolError('GATEHOUSE_UPSTREAM_CLOSED', 'upstream closed the stream before the response ended');
      }
    }
    this.session.streamClosed(this, handler, failure, refused);
  };

  #fail(err: Error): void {
    const handler = this.#handler;
    this.#handler = undefined;
    this.#deadline = 0;
    this.#detachBody();
    this.#stream?.destroy(CANCELLED);
    handler?.onError(err);
  }
}

/** A received header list without its pseudo-headers (:status). */
function withoutPseudoHeaders(raw: readonly string[]): string[] {
  const headers: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.charCodeAt(0) !== COLON) headers.push(raw[i]!, raw[i + 1]!);
  return headers;
}
