// The one interface between the request path and the upstream pools: what a request is, and the
// callbacks that carry its response back. A pool calls them in order — onConnect once, then
// onHeaders, onData*, onComplete — or onError at most once instead of what has not happened yet.
import type { Readable } from 'node:stream';

export interface UpstreamRequest {
  readonly method: string;
  /** Origin-form path with query. */
  readonly path: string;
  /** Header lines, each ending in CRLF, already filtered of hop-by-hop headers and safe to write. */
  readonly headerLines: string;
  /** Whether headerLines hold Host / Content-Length: the pool adds Host, or chunked framing for a body. */
  readonly hasHost: boolean;
  readonly hasLength: boolean;
  /** Streamed request body, or null when there is none. */
  readonly body: Readable | null;
}

export interface UpstreamExchangeHandler {
  /** The request is in a pool's hands: `abort` cancels it (queued or on the wire). */
  onConnect(abort: (err?: Error) => void): void;
  /** Final response head (never 1xx). Return value ignored; flow control is through onData. */
  onHeaders(statusCode: number, headers: string[], resume: () => void, statusText: string): void;
  /** A body chunk; false pauses reading from the upstream until `resume` is called. */
  onData(chunk: Buffer): boolean;
  onComplete(): void;
  onError(err: Error): void;
  /** Everything one socket read carried has been delivered: a good moment to flush what was held. */
  onReadDone(): void;
}

/** Failures of the upstream HTTP exchange itself, with stable codes (see upstream-errors.ts). */
export class UpstreamProtocolError extends Error {
  constructor(
    readonly code:
      | 'GATEHOUSE_UPSTREAM_HEADERS_TIMEOUT'
      | 'GATEHOUSE_UPSTREAM_BODY_TIMEOUT'
      | 'GATEHOUSE_UPSTREAM_CLOSED'
      | 'GATEHOUSE_UPSTREAM_BAD_RESPONSE'
      | 'GATEHOUSE_UPSTREAM_POOL_CLOSED',
    message: string,
  ) {
    super(message);
  }
}
