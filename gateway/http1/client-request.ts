// One request parsed from a client connection: its head as the parser gave it (a flat raw header
// list, no objects) and, when it has one, its body as a stream the upstream side reads with
// backpressure onto the client socket.
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';

export interface ClientRequest {
  readonly method: string;
  /** Request target as sent (origin-form expected; the handler checks). */
  readonly url: string;
  /** [name, value, name, value, …] as received. */
  readonly rawHeaders: readonly string[];
  readonly remoteAddress: string;
  /** The client connection (TLS or plaintext) the request came on. */
  readonly socket: Socket;
  /** The body, or null when the head announced none (no Content-Length > 0, no Transfer-Encoding). */
  readonly body: RequestBody | null;
}

/** What a body needs from its connection. */
export interface BodySource {
  /** The consumer wants more: read from the socket again (`first`: answer an Expect: 100-continue). */
  wantMore(body: RequestBody, first: boolean): void;
}

export class RequestBody extends Readable {
  /** All of the body has been received from the client. */
  complete = false;
  /** Someone started reading it. */
  started = false;

  constructor(private readonly source: BodySource) {
    super();
  }

  override _read(): void {
    const first = !this.started;
    this.started = true;
    this.source.wantMore(this, first);
  }
}
