// What ended an HTTP/2 client connection from inside the engine, as a close reason (reasons.ts):
// nghttp2's own flood and protocol checks report an error (h2-engine.c's EV_ERROR) with
// nghttp2's code, and the session ends with a GOAWAY; the frames nghttp2 refused are counted, and
// too many of them end the connection as node:http2 ended it.
import type { Http2CloseReason } from '../reasons.js';
import type { FloodGuard } from './flood-guard.js';
import { NGHTTP2_ERR } from './native/h2-engine.js';

/** Invalid frames a connection may send (node:http2's maxSessionInvalidFrames). */
export const MAX_INVALID_FRAMES = 1000;

/** The reason nghttp2 ended the session with `code` (an nghttp2 error, < 0). */
export function closeReasonOf(code: number, guard: FloodGuard): Http2CloseReason {
  if (code === NGHTTP2_ERR.TOO_MANY_CONTINUATIONS) return 'continuation_flood';
  if (code === NGHTTP2_ERR.FLOODED) return guard.floodedBy();
  return 'protocol_error';
}
