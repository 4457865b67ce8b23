// What every HTTP/2 connection of one terminate listener shares, made once per listener: the
// request handler, timeouts and counters, and the SETTINGS the engine sends (the limits nghttp2
// and the session enforce).
import type { ListenerLimits } from '../config/types.js';
import type { Http2CloseReason } from '../reasons.js';
import type { RequestHandler } from '../session/downstream-request.js';
import { h2Engine, SETTING } from './native/h2-engine.js';

export interface Http2SessionOptions {
  readonly listener: string;
  readonly handler: RequestHandler;
  /** From the connection to its first stream (timeouts.request_headers). */
  readonly headersMs: number;
  /** With no stream open for this long, the connection is closed with GOAWAY (timeouts.idle). */
  readonly idleMs: number;
  /** Between body bytes while the body's reader waits for them (timeouts.request_body; 0: none). */
  readonly bodyMs: number;
  /** The engine's SETTINGS, [id, value, …] (engineSettings). */
  readonly settings: readonly number[];
  /** limits.max_header_bytes, also for the streams a client sends before it acknowledged our SETTINGS. */
  readonly maxHeaderBytes: number;
  /** A request answered without the request handler (malformed, past its deadline), for metrics. */
  readonly onRefused: (status: number, reason: string) => void;
  /** The gateway closed a connection for what the client sent: counted and logged by the listener. */
  readonly onClosed: (reason: Http2CloseReason, fields: Record<string, unknown>) => void;
}

/** The SETTINGS for a listener's limits (limits.max_concurrent_streams, limits.max_header_bytes). */
export function engineSettings(limits: ListenerLimits): readonly number[] {
  return Object.freeze([
    // nghttp2 refuses streams beyond it (RST_STREAM REFUSED_STREAM) before they cost anything here.
    SETTING.MAX_CONCURRENT_STREAMS, limits.maxConcurrentStreams,
    // A larger header list is answered 431 before the client acknowledged it, reset (ENHANCE_YOUR_CALM) after.
    SETTING.MAX_HEADER_LIST_SIZE, limits.maxHeaderBytes,
    SETTING.ENABLE_PUSH, 0,
  ]);
}

let warned = false;

/** The ALPN ids a listener offers: without the engine (not built: no C compiler or nghttp2 headers) h2 is not offered. */
export function servedAlpn(alpn: readonly string[]): string[] {
  if (h2Engine !== undefined || !alpn.includes('h2')) return [...alpn];
  if (!warned) {
    warned = true;
    console.warn('gatehouse: the native HTTP/2 engine was not built (npm run build needs a C compiler and libnghttp2-dev): h2 is not offered');
  }
  return alpn.filter((id) => id !== 'h2');
}
