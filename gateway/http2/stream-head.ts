// An HTTP/2 request's head as the request path reads it (DownstreamRequest), from the header list
// the engine hands over (h2-engine.c: the block's fields in order, as nghttp2 decoded them): pseudo-headers taken out, :authority given as `host` (RFC 9113 §8.3.1: it
// stands for Host; a Host field that agrees with it is dropped, one that does not stays and the
// request path's Host check refuses the pair), cookie fields joined into one (§8.2.3, as an
// HTTP/1.1 upstream needs), and what the session needs itself: gRPC or not, grpc-timeout, the
// announced body length. nghttp2 has already reset (RST_STREAM PROTOCOL_ERROR) the streams §8.1.1
// calls malformed: a missing or repeated pseudo-header, an uppercase name, a connection-specific
// header, `te` other than trailers, a content-length the body contradicts. What it lets through
// and the gateway does not serve is refused here.
import type { RequestReason } from '../reasons.js';
import { parseGrpcTimeout } from './grpc-timeout.js';

export interface StreamHead {
  readonly method: string;
  readonly url: string;
  /** [name, value, …] without pseudo-headers; `host` first when the request named its authority. */
  readonly rawHeaders: string[];
  /** content-type application/grpc…: the gateway's own answers are gRPC statuses. */
  readonly grpc: boolean;
  /** The content-length the client announced (nghttp2 holds it to it); -1 when none. */
  readonly contentLength: number;
  /** A gRPC request's grpc-timeout, in milliseconds. */
  readonly timeoutMs: number | undefined;
  /** The client takes trailers (`te: trailers`, as gRPC clients send). */
  readonly trailers: boolean;
  /** `expect: 100-continue`: the client waits for a 100 before it sends the body. */
  readonly expectContinue: boolean;
  /** Set when the gateway answers the request itself, without the request path. */
  readonly refusal: StreamRefusal | undefined;
}

/** A request answered without the request path, and why (the log line and JSON body name the rule). */
export interface StreamRefusal {
  readonly status: number;
  readonly reason: RequestReason;
  readonly rule: 'connect' | 'scheme' | 'grpc_timeout' | 'header_list_size';
  readonly message: string;
}

const CONNECT: StreamRefusal = Object.freeze({ status: 405, reason: 'method_not_allowed', rule: 'connect', message: 'CONNECT is not supported' });
const SCHEME: StreamRefusal = Object.freeze({ status: 400, reason: 'bad_request', rule: 'scheme', message: "':scheme' must be https on a TLS connection" });
const HEADER_LIST_SIZE: StreamRefusal = Object.freeze({
  status: 431,
  reason: 'request_header_too_large',
  rule: 'header_list_size',
  message: 'the header list is larger than limits.max_header_bytes',
});
const tooLarge = (grpc: boolean): StreamHead =>
  Object.freeze({ method: '', url: '', rawHeaders: [], grpc, contentLength: -1, timeoutMs: undefined, trailers: false, expectContinue: false, refusal: HEADER_LIST_SIZE });
const TOO_LARGE = tooLarge(false);
const TOO_LARGE_GRPC = tooLarge(true);

/** The head of a stream whose header list the engine dropped for its size (sent before the client acknowledged the limit); a gRPC one is refused with a gRPC status. */
export function headerListTooLarge(grpc: boolean): StreamHead {
  return grpc ? TOO_LARGE_GRPC : TOO_LARGE;
}
const GRPC_TIMEOUT: StreamRefusal = Object.freeze({ status: 400, reason: 'bad_request', rule: 'grpc_timeout', message: 'grpc-timeout must be 1 to 8 digits and a unit (H, M, S, m, u, n)' });

const COLON = 0x3a;
/** What RFC 9113 §6.5.2 counts per field besides its name and value. */
const FIELD_OVERHEAD = 32;

/**
 * The head of a request stream from its flat header list (names lowercase, as nghttp2 requires).
 * The engine holds header lists to SETTINGS_MAX_HEADER_LIST_SIZE only once the client has
 * acknowledged our SETTINGS; `maxHeaderBytes` holds the streams it sent before that too.
 */
export function readStreamHead(raw: readonly string[], maxHeaderBytes: number): StreamHead {
  let method = '';
  let path = '';
  let scheme = '';
  let authority: string | undefined;
  let host: string | undefined;
  let cookie: string | undefined;
  let grpc = false;
  let contentLength = -1;
  let timeout: string | undefined;
  let trailers = false;
  let expectContinue = false;
  let size = 0;
  // Two slots kept first for `host`.
  const headers: string[] = ['host', ''];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    size += name.length + value.length + FIELD_OVERHEAD;
    if (name.charCodeAt(0) === COLON) {
      if (name === ':method') method = value;
      else if (name === ':path') path = value;
      else if (name === ':authority') authority = value;
      else if (name === ':scheme') scheme = value;
      continue;
    }
    switch (name) {
      case 'host':
        if (host === undefined) {
          host = value;
          continue;
        }
        break; // a second Host stays: the request path refuses two
      case 'cookie':
        cookie = cookie === undefined ? value : `${cookie}; ${value}`;
        continue;
      case 'content-type':
        grpc = value.startsWith('application/grpc');
        break;
      case 'content-length':
        contentLength = Number(value);
        break;
      case 'grpc-timeout':
        timeout = value;
        break;
      case 'te':
        trailers = true; // nghttp2 lets no other value through
        break;
      case 'expect':
        expectContinue = value.toLowerCase() === '100-continue';
        break;
    }
    headers.push(name, value);
  }
  let refusal = size > maxHeaderBytes ? HEADER_LIST_SIZE : method === 'CONNECT' ? CONNECT : scheme !== 'https' ? SCHEME : undefined;
  const timeoutMs = grpc && timeout !== undefined ? parseGrpcTimeout(timeout) : undefined;
  if (timeout !== undefined && grpc && timeoutMs === undefined) refusal ??= GRPC_TIMEOUT;
  if (authority !== undefined) {
    headers[1] = authority;
    if (host !== undefined && host !== authority) headers.push('host', host);
  } else if (host !== undefined) headers[1] = host;
  else headers.splice(0, 2); // no authority at all: the request path answers 400 (bad_host, missing)
  if (cookie !== undefined) headers.push('cookie', cookie);
  return { method, url: path, rawHeaders: headers, grpc, contentLength, timeoutMs, trailers, expectContinue, refusal };
}
