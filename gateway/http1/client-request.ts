// One request parsed from a client connection: its head as the parser gave it (a flat raw header
// list, no objects) and, when it has one, its body as a stream the upstream side reads with
// backpressure onto the client socket. A body that cannot be completed (malformed, too slow, too
// large) is destroyed with a RequestBodyError that says how to answer the client.
import { Readable } from 'node:stream';
import type { DownstreamBody } from '../session/downstream-request.js';

/** What a body needs from its connection. */
export interface BodySource {
  /** The consumer wants more: read from the socket again (`first`: answer an Expect: 100-continue). */
  wantMore(body: RequestBody, first: boolean): void;
}

export class RequestBody extends Readable implements DownstreamBody {
  /** All of the body has been received from the client. */
  complete = false;
  /** Someone started reading it. */
  started = false;
  /** Bytes received so far. */
  received = 0;
  /** Beyond this many bytes the connection fails the body with 413 (see limit). */
  maxBytes = Infinity;

  constructor(
    private readonly source: BodySource,
    /** The Content-Length announced, or -1 for a chunked body. */
    readonly declaredLength: number,
  ) {
    super();
  }

  /**
   * Sets the most bytes this body may have, before it is forwarded; false when the announced
   * length (or what already arrived) is over it: answer 413 without reading on.
   */
  limit(maxBytes: number): boolean {
    this.maxBytes = maxBytes;
    return this.declaredLength <= maxBytes && this.received <= maxBytes;
  }

  override _read(): void {
    const first = !this.started;
    this.started = true;
    this.source.wantMore(this, first);
  }
}
