// One exchange on an HTTP/2 upstream session, as one stream of the native engine: the request body
// streamed with backpressure (while the engine holds SEND_HIGH_WATER_BYTES or more of it unsent,
// the client's body is paused until the engine says the stream is writable), the response head
// handed over as a flat header list, its body with flow control (bytes the client has not taken
// are not consumed, so the upstream gets no stream window for more: the gateway holds at most a
// window per stream), its trailers with the end. Deadlines as on an
// HTTP/1.1 connection: the response-head clock runs only while the upstream is what we wait for,
// the body clock between chunks; the session's pool checks them on its coarse tick. Cancelling
// sends RST_STREAM(CANCEL), and never END_STREAM first.
import type { Readable } from 'node:stream';
import { HEADERS_FLAG, SEND_HIGH_WATER_BYTES, type EngineSession, type H2EngineAddon } from '../http2/native/h2-engine.js';
import { UpstreamProtocolError, type UpstreamExchangeHandler, type UpstreamRequest } from './upstream-exchange.js';
import type { SessionOwner } from './upstream-session.js';

/** RST_STREAM / GOAWAY error codes used here (RFC 9113 7). */
export const H2_ERROR = { NO_ERROR: 0, INTERNAL_ERROR: 2, REFUSED_STREAM: 7, CANCEL: 8 } as const;
const COLON = 58;
const STATUS = ':status';
const EMPTY = Buffer.alloc(0);

type DeadlineCode = 'GATEHOUSE_UPSTREAM_HEADERS_TIMEOUT' | 'GATEHOUSE_UPSTREAM_BODY_TIMEOUT';

/** What a stream needs from its session. */
export interface StreamSession {
  readonly owner: SessionOwner;
  readonly engine: H2EngineAddon;
  readonly session: EngineSession;
  /** The stream queued frames (data, a reset, a window update): the session writes them soon. */
  submitted(): void;
  /** Whether the upstream can have acted on stream `id`, closed with `code` without a response. */
  unprocessed(id: number, code: number): boolean;
  /**
   * The stream is closed. `failure` is set when its handler is still owed an outcome: `refused`
   * when the upstream did not process it.
   */
  streamClosed(exchange: UpstreamH2Stream, handler: UpstreamExchangeHandler | undefined, failure: Error | undefined, refused: boolean): void;
}

export class UpstreamH2Stream {
  /** The stream id, once the request is submitted. */
  id = 0;
  /** Until the response has ended, the request failed, or the client cancelled. */
  #handler: UpstreamExchangeHandler | undefined;
  #body: Readable | null = null;
  #responded = false;
  #trailers: string[] | undefined;
  /** Our side is over: END_STREAM queued, or a reset. */
  #sent = false;
  /** The stream is closed (or the session gone): nothing more is submitted for it. */
  #closed = false;
  /** Response body bytes handed to the handler and not yet consumed (the upstream's window for more). */
  #unconsumed = 0;
  /** The handler took a chunk it could not pass on at once: consume nothing until it calls resume. */
  #heldBack = false;
  /** Got a head or data in the read being dispatched: the session calls readDone() once. */
  touched = false;
  /** Absolute coarse time after which the current phase has timed out; 0 when none applies. */
  #deadline = 0;
  #deadlineCode: DeadlineCode = 'GATEHOUSE_UPSTREAM_HEADERS_TIMEOUT';

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

  /** Runs the exchange on stream `id`, just submitted with the request head. */
  start(id: number): void {
    this.id = id;
    const body = this.request.body;
    this.#sent = body === null;
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
    this.#reset(H2_ERROR.CANCEL);
  };

  // ---- events from the session ---------------------------------------------------------------

  /** A final response head, or trailers. */
  onHeaders(flags: number, fields: string[]): void {
    const handler = this.#handler;
    if (handler === undefined) return;
    if ((flags & HEADERS_FLAG.TOO_LARGE) !== 0) {
      this.#fail(new UpstreamProtocolError('GATEHOUSE_UPSTREAM_BAD_RESPONSE', 'upstream response header list too large'));
      return;
    }
    if ((flags & HEADERS_FLAG.TRAILERS) !== 0) {
      this.#trailers = withoutPseudoHeaders(fields);
    } else {
      this.#responded = true;
      this.#setDeadline(this.session.owner.bodyMs, 'GATEHOUSE_UPSTREAM_BODY_TIMEOUT');
      handler.onHeaders(statusOf(fields), withoutPseudoHeaders(fields), this.#resume, '');
    }
    if ((flags & HEADERS_FLAG.END_STREAM) !== 0) this.onEnd();
  }

  /** A response body chunk: a view of the read, valid during this call. */
  onData(chunk: Buffer): void {
    const handler = this.#handler;
    if (handler === undefined) return;
    const bodyMs = this.session.owner.bodyMs;
    if (bodyMs > 0) this.#deadline = this.session.owner.now + bodyMs;
    this.#unconsumed += chunk.length;
    if (!handler.onData(chunk)) this.#heldBack = true;
  }

  /** The upstream ended the response. */
  onEnd(): void {
    const handler = this.#handler;
    if (handler === undefined || !this.#responded) return;
    this.#handler = undefined;
    this.#deadline = 0;
    handler.onComplete(this.#trailers);
    // A request body still on its way goes on until the upstream closes the stream.
  }

  /** Everything the read carried for this stream was delivered: the client took it, unless it held back. */
  readDone(): void {
    this.touched = false;
    this.#handler?.onReadDone();
    if (!this.#heldBack) this.#consume();
  }

  /** The engine framed our queued body below SEND_HIGH_WATER_BYTES: the client's body flows again. */
  onWritable(): void {
    if (this.#body === null) return;
    this.#awaitHead(false); // the body waits for the client again
    this.#body.resume();
  }

  /** The stream closed: by END_STREAM both ways (code 0) or a reset (its code). */
  onClose(code: number): void {
    const handler = this.#closeOut();
    let failure: Error | undefined;
    let refused = false;
    if (handler !== undefined) {
      if (!this.#responded && this.session.unprocessed(this.id, code)) {
        refused = true;
        failure = new UpstreamProtocolError('GATEHOUSE_UPSTREAM_REFUSED', `upstream refused the stream unprocessed (${code === H2_ERROR.REFUSED_STREAM ? 'REFUSED_STREAM' : 'GOAWAY'})`);
      } else if (code !== H2_ERROR.NO_ERROR) {
        failure = new UpstreamProtocolError('GATEHOUSE_UPSTREAM_STREAM_RESET', `upstream stream failed: reset with code ${code}`);
      } else {
        failure = new UpstreamProtocolError('GATEHOUSE_UPSTREAM_CLOSED', 'upstream closed the stream before the response ended');
      }
    }
    this.session.streamClosed(this, handler, failure, refused);
  }

  /** The connection is gone: the handler, if still owed an outcome, gets `failure`. */
  onSessionClosed(failure: Error): void {
    this.#closeOut()?.onError(failure);
  }

  /** The stream is gone: nothing more is sent or timed; the handler, if still owed an outcome. */
  #closeOut(): UpstreamExchangeHandler | undefined {
    this.#closed = true;
    this.#detachBody();
    const handler = this.#handler;
    this.#handler = undefined;
    this.#deadline = 0;
    return handler;
  }

  // ---- internals ------------------------------------------------------------------------------

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

  #reset(code: number): void {
    if (this.#closed || this.id === 0) return;
    this.#sent = true;
    this.session.engine.reset(this.session.session, this.id, code);
    this.session.submitted();
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
  }

  readonly #onBodyData = (chunk: Buffer): void => {
    if (this.#closed || chunk.length === 0) return;
    // The engine copies the bytes; it says how many wait for the upstream's window and the socket.
    const queued = this.session.engine.sendData(this.session.session, this.id, chunk, false);
    this.session.submitted();
    if (queued < SEND_HIGH_WATER_BYTES) return; // (negative: the stream is closing, its close follows)
    this.#body!.pause();
    this.#awaitHead(true); // the upstream is not taking the body
  };

  readonly #onBodyEnd = (): void => {
    this.#detachBody();
    if (!this.#closed && !this.#sent) {
      this.#sent = true;
      this.session.engine.sendData(this.session.session, this.id, EMPTY, true);
      this.session.submitted();
    }
    this.#awaitHead(true);
  };

  readonly #onBodyError = (err?: unknown): void => {
    this.#detachBody();
    // Its error (a RequestBodyError: malformed, too slow, too large) tells how to answer the client.
    this.#fail(err instanceof Error ? err : new UpstreamProtocolError('GATEHOUSE_UPSTREAM_CLOSED', 'client request body ended early'));
  };

  /** Given to the handler: the client took what it held back. */
  readonly #resume = (): void => {
    if (!this.#heldBack) return;
    this.#heldBack = false;
    this.#consume();
  };

  /** Reopens the upstream's window by what the client took. */
  #consume(): void {
    const bytes = this.#unconsumed;
    if (bytes === 0 || this.#closed) return;
    this.#unconsumed = 0;
    this.session.engine.consume(this.session.session, this.id, bytes);
    this.session.submitted();
  }

  #fail(err: Error): void {
    const handler = this.#handler;
    this.#handler = undefined;
    this.#deadline = 0;
    this.#detachBody();
    this.#reset(H2_ERROR.CANCEL);
    handler?.onError(err);
  }
}

/** The :status of a response head (0 when missing: nghttp2's HTTP checks make that impossible). */
function statusOf(fields: readonly string[]): number {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === STATUS) return Number(fields[i + 1]);
  return 0;
}

/** A received header list without its pseudo-headers (:status). */
function withoutPseudoHeaders(raw: readonly string[]): string[] {
  const headers: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.charCodeAt(0) !== COLON) headers.push(raw[i]!, raw[i + 1]!);
  return headers;
}
