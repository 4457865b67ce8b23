// A request as the request path sees it, whatever protocol carried it: the HTTP/1.1 connection
// (http1/) and the HTTP/2 session each make one per request. Its head is a flat raw header list as
// received (an HTTP/2 session puts its :authority there as `host`), its body a stream read with
// backpressure onto the upstream.
import type { Readable } from 'node:stream';
import type { ConnectionContext } from './connection-context.js';
import type { DownstreamResponse } from './downstream-response.js';

export interface DownstreamRequest {
  readonly method: string;
  /** Request target as sent (origin-form expected; the handler checks). */
  readonly url: string;
  /** [name, value, name, value, …] as received; no pseudo-headers. */
  readonly rawHeaders: readonly string[];
  readonly remoteAddress: string;
  /** What is known about the connection (TLS or plaintext) the request came on. */
  readonly connection: ConnectionContext;
  /** The body, or null when the head announced none. */
  readonly body: DownstreamBody | null;
}

/** A request body: read by the upstream side; fails with a RequestBodyError when the client gets it wrong. */
export interface DownstreamBody extends Readable {
  /** Someone started reading it: it can no longer be sent elsewhere whole. */
  readonly started: boolean;
  /** The length the head announced, or -1 when it announced none (chunked; HTTP/2 without content-length). */
  readonly declaredLength: number;
  /** Bytes received so far. */
  readonly received: number;
  /**
   * Sets the most bytes this body may have, before it is forwarded; false when the announced
   * length (or what already arrived) is over it: answer 413 without reading on.
   */
  limit(maxBytes: number): boolean;
}

/** Why a request body could not be completed, with the answer the client gets if none has begun. */
export class RequestBodyError extends Error {
  constructor(
    readonly status: 400 | 408 | 413,
    readonly reason: 'bad_request' | 'request_body_timeout' | 'request_body_too_large',
    message: string,
  ) {
    super(message);
  }
}

export type RequestHandler = (req: DownstreamRequest, res: DownstreamResponse) => void;
