// The response to one HTTP/2 request stream (DownstreamResponse), queued in the native engine
// (native/h2-engine.c) through the session's ResponseSink: the head is held until the first body
// bytes or the end, so that a response without a body is one HEADERS frame ending the stream (the
// gateway's own gRPC answers are trailers-only this way); body bytes are copied into the engine,
// which says how much the stream holds: at SEND_HIGH_WATER_BYTES write() returns false and the
// writer waits for the engine's WRITABLE (writable() here), so a client that does not read holds
// its upstream back with bounded memory; trailers go in a HEADERS frame after the body (when the
// client takes trailers or the whole response is in hand); destroy() resets this stream
// (RST_STREAM INTERNAL_ERROR), never the connection. A gRPC request's grpc-timeout is a deadline
// here: past it the call ends with DEADLINE_EXCEEDED and the upstream exchange is cancelled, as
// when the client goes away.
import type { Buffer } from 'node:buffer';
import { isContentLength } from '../message/content-length.js';
import { HeaderNameSet } from '../message/header-name-set.js';
import { RESPONSE_HOP_BY_HOP } from '../message/hop-by-hop.js';
import type { DownstreamResponse } from '../session/downstream-response.js';
import { sendError } from '../session/error-response.js';
import { grpcStatusTrailers } from '../session/grpc-status.js';
import { GRPC_STATUS } from '../grpc/grpc-wire.js';
import { SEND_HIGH_WATER_BYTES } from './native/h2-engine.js';

/** RST_STREAM codes (RFC 9113 §7). */
export const H2_CODE = { NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, REFUSED_STREAM: 7, CANCEL: 8, ENHANCE_YOUR_CALM: 11 } as const;

/** What a response needs from its session: the engine's calls for one stream (h2-engine.c). */
export interface ResponseSink {
  /** Queues the head and `body`; the bytes the stream then holds, or an nghttp2 error (< 0). */
  respond(streamId: number, head: readonly string[], body: Buffer | undefined, endStream: boolean): number;
  /** More body; the bytes the stream then holds, or an nghttp2 error (< 0). */
  sendData(streamId: number, bytes: Buffer | undefined, endStream: boolean): number;
  /** Ends the stream with trailers after its data; 0 or an nghttp2 error. */
  sendTrailers(streamId: number, trailers: readonly string[]): number;
  reset(streamId: number, code: number): void;
}

/** Never in an HTTP/2 response (RFC 9113 §8.2.2): hop-by-hop headers, HTTP2-Settings. */
const NOT_IN_HTTP2 = new HeaderNameSet([...RESPONSE_HOP_BY_HOP, 'http2-settings']);
const COLON = 0x3a;
/** ':status' values, made once: a head's first pair. */
const STATUS_TEXT: string[] = Array.from({ length: 600 }, (_, status) => String(status));

export class StreamResponse implements DownstreamResponse {
  /** The head set by writeHead, [':status', '200', name, value, …], until it is sent. */
  #head: string[] | undefined;
  #headersSent = false;
  #responded = false;
  /** HEAD, 204, 205, 304: the stream ends with the head; body bytes are dropped. */
  #bodiless = false;
  /** The head left room for trailers (the stream ends with trailers, or an empty DATA frame). */
  #trailersStep = false;
  #ended = false;
  #closed = false;
  /** write() returned false: the writer waits for writable(). */
  #blocked = false;
  #drain: (() => void) | undefined;
  #onClose: (() => void) | undefined;
  #deadline: NodeJS.Timeout | undefined;

  constructor(
    private readonly sink: ResponseSink,
    readonly streamId: number,
    readonly grpc: boolean,
    /** The request was HEAD. */
    private readonly headRequest: boolean,
    /** The client takes trailers (te: trailers): a streamed response leaves room for them. */
    private readonly trailersTaken: boolean,
  ) {}

  get headersSent(): boolean {
    return this.#headersSent;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The response has ended (or was cut): nothing more will be queued for it. */
  get ended(): boolean {
    return this.#ended;
  }

  writeHead(status: number, _statusText: string, headers: readonly string[]): void {
    if (this.#headersSent) throw new Error('response head already written');
    this.#headersSent = true;
    this.#head = fieldsOf(headers, status);
    this.#bodiless = this.headRequest || status === 204 || status === 205 || status === 304;
  }

  flushHead(): void {
    if (this.#head !== undefined && !this.#closed) this.#respond(undefined, this.#bodiless);
  }

  write(chunk: Buffer): boolean {
    if (this.#ended || this.#closed) return false;
    if (!this.#headersSent) this.writeHead(200, 'OK', []);
    if (this.#head !== undefined && !this.#respond(undefined, this.#bodiless)) return false;
    if (this.#bodiless) return true;
    // The engine copies the bytes (a view of a shared read buffer will do).
    return this.#queued(this.sink.sendData(this.streamId, chunk, false));
  }

  end(chunk?: Buffer, trailers?: readonly string[]): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#clearDeadline();
    if (this.#closed) return;
    if (!this.#headersSent) this.writeHead(200, 'OK', []);
    const body = chunk !== undefined && chunk.length > 0 && !this.#bodiless ? chunk : undefined;
    const withTrailers = trailers !== undefined && trailers.length > 0 && !this.#bodiless;
    if (this.#head !== undefined) {
      // The whole response at once: without body or trailers it is one HEADERS frame ending the stream.
      if (withTrailers) this.#trailersStep = true;
      if (!this.#respond(body, !withTrailers)) return;
      if (withTrailers) this.#sendTrailers(trailers);
    } else if (!this.#bodiless) {
      // Trailers only where the head left room for them (otherwise they are dropped, as HTTP/1.1 drops them).
      const sendTrailers = withTrailers && this.#trailersStep;
      if (body !== undefined || !sendTrailers) this.#queued(this.sink.sendData(this.streamId, body, !sendTrailers));
      if (sendTrailers) this.#sendTrailers(trailers);
    }
    // An ending stream gets no WRITABLE the writer can use: whoever waits for a drain (the upstream
    // connection, paused by the last write) is let go now, or its connection would go back to its pool paused.
    if (this.#drain !== undefined) queueMicrotask(this.#drained);
  }

  /** Resets this stream (RST_STREAM INTERNAL_ERROR): the client's other streams go on. */
  destroy(_err?: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#reset();
  }

  onDrain(listener: () => void): void {
    this.#drain = listener;
  }

  onClose(listener: () => void): void {
    this.#onClose = listener;
  }

  /** The engine framed this stream's queue below its high-water mark: the writer may go on. */
  writable(): void {
    if (!this.#blocked) return;
    this.#blocked = false;
    this.#drained();
  }

  /** The stream closed (the client reset it, or the connection went); true when that cut this response short. */
  streamClosed(): boolean {
    if (this.#closed) return false;
    this.#closed = true;
    this.#clearDeadline();
    if (this.#ended) return false;
    this.#onClose?.();
    return true;
  }

  /**
   * A gRPC request's deadline (grpc-timeout): past `ms`, DEADLINE_EXCEEDED — trailers-only if
   * nothing has been sent yet, trailers after the body sent so far otherwise — and the upstream
   * exchange is cancelled. `onExpired` counts and logs it.
   */
  setDeadline(ms: number, onExpired: () => void): void {
    this.#deadline = setTimeout(this.#expire, ms, ms, onExpired);
  }

  readonly #expire = (ms: number, onExpired: () => void): void => {
    this.#deadline = undefined;
    if (this.#ended || this.#closed) return;
    const message = `the request's grpc-timeout (${ms} ms) passed before its response ended`;
    if (!this.#responded) {
      // Nothing has left (a head the upstream sent may be held here): that head is dropped.
      this.#head = undefined;
      this.#headersSent = false;
      sendError(this, 504, 'grpc_deadline_exceeded', message);
    } else if (this.#trailersStep) {
      this.#ended = true;
      this.#sendTrailers(grpcStatusTrailers(GRPC_STATUS.DEADLINE_EXCEEDED, `grpc_deadline_exceeded: ${message}`));
    } else {
      this.#ended = true;
      this.#reset();
    }
    this.#onClose?.();
    onExpired();
  };

  #reset(): void {
    this.#clearDeadline();
    if (!this.#closed) this.sink.reset(this.streamId, H2_CODE.INTERNAL_ERROR);
  }

  #clearDeadline(): void {
    if (this.#deadline === undefined) return;
    clearTimeout(this.#deadline);
    this.#deadline = undefined;
  }

  /** Sends the held head (with `body`); false when the engine refused it (the stream is reset instead). */
  #respond(body: Buffer | undefined, endStream: boolean): boolean {
    const head = this.#head!;
    this.#head = undefined;
    this.#responded = true;
    if (!endStream && !this.#bodiless && this.trailersTaken) this.#trailersStep = true;
    // A header nghttp2 will not send (a name that is no token, a value with a newline): the response cannot be given.
    return this.#queued(this.sink.respond(this.streamId, head, body, endStream || this.#bodiless));
  }

  #sendTrailers(trailers: readonly string[]): void {
    if (this.sink.sendTrailers(this.streamId, fieldsOf(trailers, 0)) < 0) this.#cut();
  }

  /** What the engine said after queuing: false when the writer should wait (or the stream is gone). */
  #queued(result: number): boolean {
    if (result < 0) {
      this.#cut();
      return false;
    }
    if (result < SEND_HIGH_WATER_BYTES) return true;
    this.#blocked = true;
    return false;
  }

  #cut(): void {
    this.#ended = true;
    this.#reset();
  }

  readonly #drained = (): void => {
    const listener = this.#drain;
    this.#drain = undefined;
    listener?.();
  };
}

/**
 * A flat [name, value, …] list as nghttp2 sends it (names lowercase), after ':status' when
 * `status` is given (0: trailers), without what HTTP/2 forbids, and for a 204 without
 * Content-Length (RFC 9110 §8.6: HTTP/2 clients reset one that announces one).
 */
function fieldsOf(flat: readonly string[], status: number): string[] {
  const fields: string[] = status === 0 ? [] : [':status', STATUS_TEXT[status] ?? String(status)];
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!;
    if (name.charCodeAt(0) === COLON || NOT_IN_HTTP2.has(name) || (status === 204 && isContentLength(name))) continue;
    fields.push(name.toLowerCase(), flat[i + 1]!);
  }
  return fields;
}
