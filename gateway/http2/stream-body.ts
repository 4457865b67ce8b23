// The body of an HTTP/2 request stream (DownstreamBody), read from the stream only once the
// upstream side reads it: until then nghttp2 holds the client to the stream's flow-control window
// (node:http2 gives window back only for what is read), and a refused request's body is never
// read at all. Like an HTTP/1.1 body it keeps to a limit (413) and, while its reader waits for the
// client, to timeouts.request_body (408): its owner fails it with the RequestBodyError. A client
// that asked `expect: 100-continue` gets its 100 when the body is first read, as over HTTP/1.1.
import { Readable } from 'node:stream';
import type { ServerHttp2Stream } from 'node:http2';
import { unwatchDeadline, watchDeadline, type HasDeadline } from '../session/connection-deadlines.js';
import { RequestBodyError, type DownstreamBody } from '../session/downstream-request.js';
import type { DownstreamResponse } from '../session/downstream-response.js';

/** What a body needs from the stream's owner. */
export interface BodyOwner {
  /** The body cannot be completed: answer `err` (or let the body's reader answer it). */
  bodyFailed(body: StreamBody, err: RequestBodyError): void;
}

export class StreamBody extends Readable implements DownstreamBody, HasDeadline {
  started = false;
  /** All of it has arrived. */
  complete = false;
  received = 0;
  maxBytes = Infinity;
  /** While the reader waits for the client: when its silence becomes a 408 (0: not waiting). */
  deadline = 0;
  #watched = false;

  constructor(
    private readonly stream: ServerHttp2Stream,
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
    super();
  }

  limit(maxBytes: number): boolean {
    this.maxBytes = maxBytes;
    return this.declaredLength <= maxBytes && this.received <= maxBytes;
  }

  override _read(): void {
    if (!this.started) {
      this.started = true;
      if (this.expectContinue && !this.response.headersSent) this.stream.additionalHeaders({ ':status': 100 });
      this.stream.on('data', this.#onData);
      this.stream.once('end', this.#onEnd);
    } else this.stream.resume();
    // The reader waits for the client from now: its silence is timed.
    if (this.bodyMs > 0 && !this.complete) {
      this.deadline = Date.now() + this.bodyMs;
      if (!this.#watched) {
        this.#watched = true;
        watchDeadline(this);
      }
    }
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.destroyed) return;
    if ((this.received += chunk.length) > this.maxBytes) {
      this.#fail(new RequestBodyError(413, 'request_body_too_large', `request body is larger than ${this.maxBytes} bytes`));
      return;
    }
    if (this.deadline !== 0) this.deadline = Date.now() + this.bodyMs;
    if (!this.push(chunk)) {
      this.stream.pause();
      this.deadline = 0; // we stopped reading: not the client's delay
    }
  };

  readonly #onEnd = (): void => {
    this.complete = true;
    this.#unwatch();
    if (!this.destroyed) this.push(null);
  };

  expire(): void {
    this.deadline = 0;
    if (!this.complete) this.#fail(new RequestBodyError(408, 'request_body_timeout', 'request body not received in time'));
  }

  /** Stops reading the client's stream (its answer says why; nghttp2 resets the rest of the body). */
  #fail(err: RequestBodyError): void {
    this.#unwatch();
    this.stream.off('data', this.#onData);
    this.stream.pause();
    this.owner.bodyFailed(this, err);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.#unwatch();
    callback(err);
  }

  #unwatch(): void {
    this.deadline = 0;
    if (!this.#watched) return;
    this.#watched = false;
    unwatchDeadline(this);
  }
}
