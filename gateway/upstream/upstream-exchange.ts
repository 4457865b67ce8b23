// The one interface between the request path and the upstream pools: what a request is, and the
// callbacks that carry its response back. A pool calls them in order — onConnect (again each time
// the request changes hands: queued, on a connection, queued anew after an HTTP/2 upstream refused
// it unprocessed), then onHeaders, onData*, onComplete — or onError at most once instead of what
// has not happened yet.
import type { Readable } from 'node:stream';
import type { RequestHead } from '../message/request-head.js';

/** A request head (each connection writes it in its protocol) and its body. */
export interface UpstreamRequest extends RequestHead {
  /** Streamed request body, or null when there is none. */
  readonly body: Readable | null;
  /** The request's id (x-request-id), returned to the client and logged; absent on the gateway's own requests (health checks). */
  readonly requestId?: string;
}

export interface UpstreamExchangeHandler {
  /** The request is in a pool's hands: `abort` cancels it (queued or on the wire); the latest one given counts. */
  onConnect(abort: (err?: Error) => void): void;
  /**
   * Final response head (never 1xx), as values: the status, the headers as a flat [name, value, …]
   * list as received, and HTTP/1.1's reason phrase ('' where the protocol has none). Return value
   * ignored; flow control is through onData.
   */
  onHeaders(statusCode: number, headers: string[], resume: () => void, statusText: string): void;
  /** A body chunk; false pauses reading from the upstream until `resume` is called. */
  onData(chunk: Buffer): boolean;
  /** The response ended; `trailers` as a flat [name, value, …] list when it had any. */
  onComplete(trailers?: readonly string[]): void;
  onError(err: Error): void;
  /** Everything one socket read carried has been delivered: a good moment to flush what was held. */
  onReadDone(): void;
}

/** Failures of the upstream HTTP exchange itself, with stable codes (see upstream-errors.ts). */
export class UpstreamProtocolError extends Error {
  constructor(
    readonly code:
      | 'GATEHOUSE_UPSTREAM_HEADERS_TIMEOUT'
      | 'GATEHOUSE_UPSTREAM_PER_TRY_TIMEOUT'
      | 'GATEHOUSE_REQUEST_TIMEOUT'
      | 'GATEHOUSE_UPSTREAM_BODY_TIMEOUT'
      | 'GATEHOUSE_UPSTREAM_CLOSED'
      | 'GATEHOUSE_UPSTREAM_BAD_RESPONSE'
      | 'GATEHOUSE_UPSTREAM_POOL_CLOSED'
      | 'GATEHOUSE_UPSTREAM_OVERFLOW'
      // HTTP/2: the upstream reset the stream (its error code in the message)...
      | 'GATEHOUSE_UPSTREAM_STREAM_RESET'
      // ...or refused it unprocessed (REFUSED_STREAM, or above the last stream its GOAWAY names): nothing of it was acted on.
      | 'GATEHOUSE_UPSTREAM_REFUSED'
      // The upstream does not speak the configured protocol (nothing was sent).
      | 'GATEHOUSE_UPSTREAM_PROTOCOL_MISMATCH',
    message: string,
  ) {
    super(message);
  }
}
