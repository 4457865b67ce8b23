// What ended an HTTP/2 client connection from inside node:http2, as a close reason (reasons.ts):
// nghttp2's own flood and protocol checks end the session with an 'error' (and a GOAWAY); the
// client's own GOAWAY with an error code, or its socket going away, are not the gateway closing it.
import type { Http2CloseReason } from '../reasons.js';
import type { FloodGuard } from './flood-guard.js';

/** nghttp2's error codes (nghttp2.h), as node:http2 reports them in `errno`. */
const NGHTTP2_ERR_FLOODED = -904;
const NGHTTP2_ERR_TOO_MANY_CONTINUATIONS = -905;

/** The reason the session ended with `err`, or undefined when the gateway did not end it for the client's frames. */
export function closeReasonOf(err: Error & { code?: string; errno?: number }, guard: FloodGuard): Http2CloseReason | undefined {
  if (err.code === 'ERR_HTTP2_TOO_MANY_INVALID_FRAMES') return 'invalid_frames';
  if (err.code !== 'ERR_HTTP2_ERROR') return undefined; // a socket error, the client's GOAWAY, …
  if (err.errno === NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) return 'continuation_flood';
  if (err.errno === NGHTTP2_ERR_FLOODED) return guard.floodedBy();
  return 'protocol_error';
}
