// The response to one HTTP/2 request stream (DownstreamResponse), written through node:http2: the
// head is held until the first body bytes or the end, so that a response without a body is one
// HEADERS frame ending the stream (the gateway's own gRPC answers are trailers-only this way);
// body bytes go with the stream's backpressure; trailers go in a HEADERS frame after the body
// (waitForTrailers, asked for when the client takes trailers or the whole response is in hand);
// destroy() resets this stream (RST_STREAM), never the connection. A gRPC request's grpc-timeout
// is a deadline here: past it the call ends with DEADLINE_EXCEEDED and the upstream exchange is
// cancelled, as when the client goes away.
import { Buffer } from 'node:buffer'; // the global Buffer is a getter on globalThis: read on every use
import type { OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { isContentLength } from '../message/content-length.js';
import { HeaderNameSet } from '../message/header-name-set.js';
import { RESPONSE_HOP_BY_HOP } from '../message/hop-by-hop.js';
import { isReadBufferView } from '../net/socket-io.js';
import type { DownstreamResponse, EndedByGateway } from '../session/downstream-response.js';
import { sendError } from '../session/error-response.js';
import { grpcStatusTrailers } from '../session/grpc-status.js';
import { GRPC_STATUS } from '../grpc/grpc-wire.js';

/**
 * What a stream is destroyed with: node:http2 resets it (RST_STREAM INTERNAL_ERROR). Not
 * stream.close(code): that ends the stream first (END_STREAM), so the client would take a response
 * cut short for a complete one. One object for all: it is never thrown, and a stack costs.
 */
const CUT_SHORT = new Error('response cut short');

/** Never in an HTTP/2 response (RFC 9113 §8.2.2; node:http2 throws on them): hop-by-hop headers, HTTP2-Settings. */
const NOT_IN_HTTP2 = new HeaderNameSet([...RESPONSE_HOP_BY_HOP, 'http2-settings']);
const COLON = 0x3a;
const EMPTY_TRAILERS: OutgoingHttpHeaders = Object.freeze({});

export class StreamResponse implements DownstreamResponse {
  /** The head set by writeHead, as node:http2 takes it, until it is sent. */
  #head: OutgoingHttpHeaders | undefined;
  #headersSent = false;
  #responded = false;
  /** HEAD, 204, 205, 304: node:http2 ends the stream with the head; body bytes are dropped. */
  #bodiless = false;
  /** The head asked for the trailers step (the stream ends with trailers, or an empty DATA frame). */
  #trailersStep = false;
  #trailers: readonly string[] | undefined;
  #ended = false;
  #closed = false;
  #drain: (() => void) | undefined;
  #drainWatched = false;
  #onClose: ((endedBy?: EndedByGateway) => void) | undefined;
  #deadline: NodeJS.Timeout | undefined;

  constructor(
    private readonly stream: ServerHttp2Stream,
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

  writeHead(status: number, _statusText: string, headers: readonly string[]): void {
    if (this.#headersSent) throw new Error('response head already written');
    this.#headersSent = true;
    const head = fieldsOf(headers, status === 204);
    head[':status'] = status;
    this.#head = head;
    this.#bodiless = this.headRequest || status === 204 || status === 205 || status === 304;
  }

  flushHead(): void {
    if (this.#head !== undefined && !this.#closed) this.#respond(this.#bodiless, this.trailersTaken);
  }

  write(chunk: Buffer): boolean {
    if (this.#ended || this.#closed) return false;
    if (!this.#headersSent) this.writeHead(200, 'OK', []);
    if (this.#head !== undefined && !this.#respond(this.#bodiless, this.trailersTaken)) return false;
    if (this.#bodiless) return true;
    // A chunk read from an HTTP/1.1 upstream is a view of the shared read buffer: nghttp2 sends later.
    return this.stream.write(isReadBufferView(chunk) ? Buffer.from(chunk) : chunk);
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
      const headOnly = body === undefined && !withTrailers;
      if (!this.#respond(headOnly, withTrailers) || headOnly) return;
    } else if (this.#bodiless) return; // node:http2 ended the stream with the head
    // Trailers only where the head left room for them (otherwise they are dropped, as HTTP/1.1 drops them).
    if (withTrailers && this.#trailersStep) this.#trailers = trailers;
    if (body === undefined) this.stream.end();
    else this.stream.end(isReadBufferView(body) ? Buffer.from(body) : body);
    // An ending stream emits no 'drain': whoever waits for one (the upstream connection, paused by
    // the last write) is let go now, or its connection would go back to its pool paused.
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
    if (this.#drainWatched) return;
    this.#drainWatched = true;
    this.stream.on('drain', this.#drained);
  }

  onClose(listener: (endedBy?: EndedByGateway) => void): void {
    this.#onClose = listener;
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
    const responded = this.#responded;
    if (!responded) {
      // Nothing has left (a head the upstream sent may be held here): that head is dropped.
      this.#head = undefined;
      this.#headersSent = false;
      sendError(this, 504, 'grpc_deadline_exceeded', message);
    } else if (this.#trailersStep) {
      this.#ended = true;
      this.#trailers = grpcStatusTrailers(GRPC_STATUS.DEADLINE_EXCEEDED, `grpc_deadline_exceeded: ${message}`);
      this.stream.end();
    } else {
      this.#ended = true;
      this.#reset();
    }
    this.#onClose?.(responded ? { reason: 'grpc_deadline_exceeded' } : { reason: 'grpc_deadline_exceeded', status: 504 });
    onExpired();
  };

  #reset(): void {
    this.#clearDeadline();
    if (!this.stream.destroyed) this.stream.destroy(CUT_SHORT);
  }

  #clearDeadline(): void {
    if (this.#deadline === undefined) return;
    clearTimeout(this.#deadline);
    this.#deadline = undefined;
  }

  /** Sends the held head; false when node:http2 refused it (the stream is reset instead). */
  #respond(endStream: boolean, trailersStep: boolean): boolean {
    const head = this.#head!;
    this.#head = undefined;
    this.#responded = true;
    const withTrailers = trailersStep && !endStream && !this.#bodiless;
    try {
      this.stream.respond(head, { endStream, waitForTrailers: withTrailers });
    } catch {
      // A header node:http2 will not send (a name that is no token): the response cannot be given.
      this.#ended = true;
      this.#reset();
      return false;
    }
    if (withTrailers) {
      this.#trailersStep = true;
      this.stream.once('wantTrailers', this.#sendTrailers);
    }
    return true;
  }

  readonly #sendTrailers = (): void => {
    const trailers = this.#trailers;
    this.#trailers = undefined;
    if (this.stream.destroyed || this.stream.closed) return;
    try {
      // Without trailers: node:http2 ends the stream with an empty DATA frame.
      this.stream.sendTrailers(trailers === undefined ? EMPTY_TRAILERS : fieldsOf(trailers, false));
    } catch {
      this.#reset();
    }
  };

  readonly #drained = (): void => {
    const listener = this.#drain;
    this.#drain = undefined;
    listener?.();
  };
}

/**
 * A flat [name, value, …] list as node:http2 takes it on every Node this runs on (an object; a
 * repeated name gets a list of values; a raw list is Node 24's only), without what HTTP/2 forbids,
 * and for a 204 without Content-Length (RFC 9110 §8.6: HTTP/2 clients reset one that announces one).
 */
function fieldsOf(flat: readonly string[], noContent: boolean): Record<string, string | string[] | number> {
  const fields: Record<string, string | string[] | number> = Object.create(null);
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!;
    if (name.charCodeAt(0) === COLON || NOT_IN_HTTP2.has(name) || (noContent && isContentLength(name))) continue;
    const key = name.toLowerCase();
    const value = flat[i + 1]!;
    const previous = fields[key];
    fields[key] = previous === undefined ? value : Array.isArray(previous) ? [...previous, value] : [String(previous), value];
  }
  return fields;
}
