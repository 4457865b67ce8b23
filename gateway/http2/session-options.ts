// What every HTTP/2 connection of one terminate listener shares, made once per listener: the
// request handler, timeouts and counters, and node:http2's session options (the SETTINGS we send
// and the limits nghttp2 enforces).
import type { ServerSessionOptions } from 'node:http2';
import type { ListenerLimits } from '../config/types.js';
import type { Http2CloseReason } from '../reasons.js';
import type { RequestHandler } from '../session/downstream-request.js';

export interface Http2SessionOptions {
  readonly listener: string;
  readonly handler: RequestHandler;
  /** From the connection to its first stream (timeouts.request_headers). */
  readonly headersMs: number;
  /** With no stream open for this long, the connection is closed with GOAWAY (timeouts.idle). */
  readonly idleMs: number;
  /** Between body bytes while the body's reader waits for them (timeouts.request_body; 0: none). */
  readonly bodyMs: number;
  readonly node: ServerSessionOptions;
  /** limits.max_header_bytes, also for the streams a client sends before it acknowledged our SETTINGS. */
  readonly maxHeaderBytes: number;
  /** A request answered without the request handler (malformed, past its deadline), for metrics. */
  readonly onRefused: (status: number, reason: string) => void;
  /** The gateway closed a connection for what the client sent: counted and logged by the listener. */
  readonly onClosed: (reason: Http2CloseReason, fields: Record<string, unknown>) => void;
}

/** node:http2 options for a listener's limits (limits.max_concurrent_streams, limits.max_header_bytes). */
export function nodeSessionOptions(limits: ListenerLimits): ServerSessionOptions {
  const options: ServerSessionOptions & { strictSingleValueFields: boolean } = {
    settings: {
      // nghttp2 refuses streams beyond it (RST_STREAM REFUSED_STREAM) before they cost anything here.
      maxConcurrentStreams: limits.maxConcurrentStreams,
      // node:http2 resets a stream whose header list is larger (RST_STREAM ENHANCE_YOUR_CALM), once
      // the client has acknowledged it; stream-head.ts answers 431 to those before.
      maxHeaderListSize: limits.maxHeaderBytes,
      enablePush: false,
    },
    // An upstream's repeated single-value header (two Content-Types) is passed on, not thrown on.
    strictSingleValueFields: false,
  };
  return options;
}
