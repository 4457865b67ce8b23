// The body of an HTTP/2 request stream (DownstreamBody), fed by the session with the DATA the
// engine received and held to HTTP/2 flow control: the engine reopens the stream's window only for
// bytes consumed (BodySource.consume), and bytes are consumed when they are handed on (taken by the
// Readable's buffer below its high-water mark, or read from it). So while the upstream side does
// not read (slow, or not yet started) the client is held to its stream window: the gateway holds at
// most about one window (plus the Readable's buffer) per stream. A body nobody will read any more
// (failed, destroyed, its response over) consumes and drops what still comes, so the client can
// finish its stream. Like an HTTP/1.1 body it keeps to a limit (413) and, while its reader waits
// for the client, to timeouts.request_body (408): its owner fails it with the RequestBodyError. A
// client that asked `expect: 100-continue` gets its 100 when the body is first read, as over HTTP/1.1.
import type { Buffer } from 'node:buffer';
import { Readable } from 'node:stream';
import { unwatchDeadline, watchDeadline, type HasDeadline } from '../session/connection-deadlines.js';
import { RequestBodyError, type DownstreamBody } from '../session/downstream-request.js';
import type { DownstreamResponse } from '../session/downstream-response.js';

/** What a body needs from its session. */
export interface BodySource {
  /** `bytes` of the stream's body have been handed on: the client may send as many more. */
  consume(streamId: number, bytes: number): void;
  /** Sends `100 (Continue)` on the stream. */
  sendContinue(streamId: number): void;
}

/** What a body needs from the stream's owner. */
export interface BodyOwner {
  /** The body cannot be completed: answer `err` (or let the body's reader answer it). */
  bodyFailed(body: StreamBody, err: RequestBodyError): void;
}

/** The Readable's own buffer: bytes it takes below this are consumed at once (handed on). */
const BUFFER_BYTES = 16 * 1024;

export class StreamBody extends Readable implements DownstreamBody, HasDeadline {
  started = false;
  /** All of it has arrived. */
  complete = false;
  received = 0;
  maxBytes = Infinity;
  /** While the reader waits for the client: when its silence becomes a 408 (0: not waiting). */
  deadline = 0;
  #watched = false;
  /** Bytes pushed beyond the Readable's buffer, not yet consumed: the client's window holds them. */
  #held = 0;
  /** Nobody will read what comes: it is consumed and dropped. */
  #discarding = false;

  constructor(
    private readonly source: BodySource,
    readonly streamId: number,
    /** The content-length the client announced; -1 when none. */
    readonly declaredLength: number,
    /** timeouts.request_body (0: none). */
    private readonly bodyMs: number,
    /** The stream's response: where a failure nobody reads the body for is answered. */
    readonly response: DownstreamResponse,
    private readonly owner: BodyOwner,
    /** The client waits for a 100 (Continue) before it sends the body. */
    private readonly expectContinue = false,
  ) {
    super({ highWaterMark: BUFFER_BYTES });
  }

  limit(maxBytes: number): boolean {
    this.maxBytes = maxBytes;
    return this.declaredLength <= maxBytes && this.received <= maxBytes;
  }

  override _read(): void {
    if (!this.started) {
      this.started = true;
      if (this.expectContinue && !this.response.headersSent) this.source.sendContinue(this.streamId);
    }
    this.#release();
    // The reader waits for the client from now: its silence is timed.
    if (this.bodyMs > 0 && !this.complete) {
      this.deadline = Date.now() + this.bodyMs;
      if (!this.#watched) {
        this.#watched = true;
        watchDeadline(this);
      }
    }
  }

  /** Body bytes the engine received (a copy this body may keep). */
  receive(chunk: Buffer): void {
    if (this.#discarding || this.destroyed) {
      this.source.consume(this.streamId, chunk.length);
      return;
    }
    if ((this.received += chunk.length) > this.maxBytes) {
      this.source.consume(this.streamId, chunk.length);
      this.#fail(new RequestBodyError(413, 'request_body_too_large', `request body is larger than ${this.maxBytes} bytes`));
      return;
    }
    if (this.deadline !== 0) this.deadline = Date.now() + this.bodyMs;
    if (this.push(chunk)) {
      this.source.consume(this.streamId, chunk.length);
    } else {
      this.#held += chunk.length;
      this.deadline = 0; // we stopped reading: not the client's delay
    }
  }

  /** The client ended the stream. */
  receiveEnd(): void {
    this.complete = true;
    this.#unwatch();
    if (!this.destroyed && !this.#discarding) this.push(null);
  }

  /** Nobody will read this body any more (its response is over): what it holds and what still comes is dropped. */
  discard(): void {
    if (this.#discarding) return;
    this.#discarding = true;
    this.#unwatch();
    this.#release();
  }

  expire(): void {
    this.deadline = 0;
    if (!this.complete) this.#fail(new RequestBodyError(408, 'request_body_timeout', 'request body not received in time'));
  }

  /** Stops reading the client's stream (its answer says why); what still comes is dropped. */
  #fail(err: RequestBodyError): void {
    this.discard();
    this.owner.bodyFailed(this, err);
  }

  /** Reopens the client's window for what was held. */
  #release(): void {
    const held = this.#held;
    if (held === 0) return;
    this.#held = 0;
    this.source.consume(this.streamId, held);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.discard();
    callback(err);
  }

  #unwatch(): void {
    this.deadline = 0;
    if (!this.#watched) return;
    this.#watched = false;
    unwatchDeadline(this);
  }
}
