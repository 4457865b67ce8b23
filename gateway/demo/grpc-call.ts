// One gRPC call on an HTTP/2 session, with node:http2 and nothing else: request messages out,
// response messages, headers and trailers back exactly as they arrived. Used by `gatehouse
// grpc-health` and by tests that must see the wire (a trailers-only answer, a grpc-timeout that
// no client-side timer enforces).
import http2, { type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { decodeGrpcMessageText, encodeGrpcMessage, GrpcMessageReader } from './grpc-wire.js';

export interface GrpcCallResult {
  /** The HTTP status: 200 for every gRPC answer, failures included. */
  readonly httpStatus: number;
  readonly headers: IncomingHttpHeaders;
  readonly trailers: IncomingHttpHeaders;
  readonly messages: Buffer[];
  /** From the trailers, or from the headers of a trailers-only answer; undefined if the call ended without one. */
  readonly grpcStatus: number | undefined;
  /** `grpc-message`, decoded. */
  readonly grpcMessage: string;
  /** The answer was one HEADERS frame carrying the status (how a call that fails before any message ends). */
  readonly trailersOnly: boolean;
  /** Set when the stream was reset (RST_STREAM) instead of ending: its HTTP/2 error code. */
  readonly rstCode: number | undefined;
}

export interface GrpcCallOptions {
  /** `:authority`; default the session's. */
  readonly authority?: string;
  /** Extra request headers (custom metadata, `grpc-timeout`). */
  readonly headers?: Record<string, string>;
  /** Give up (and reset the stream) after this long; default 10 s. */
  readonly timeoutMs?: number;
  /** A response message larger than this fails the call; default 4 MiB, gRPC's default. */
  readonly maxMessageBytes?: number;
}

/** Sends `messages` on a new stream of `session`, half-closes, and resolves when the stream is closed. */
export function callGrpc(session: ClientHttp2Session, path: string, messages: readonly Buffer[], options: GrpcCallOptions = {}): Promise<GrpcCallResult> {
  const stream = session.request({
    ':method': 'POST',
    ':path': path,
    ...(options.authority !== undefined && { ':authority': options.authority }),
    'content-type': 'application/grpc',
    te: 'trailers',
    ...options.headers,
  });
  const reader = new GrpcMessageReader(options.maxMessageBytes ?? 4 * 1024 * 1024);
  const received: Buffer[] = [];
  let headers: IncomingHttpHeaders = {};
  let trailers: IncomingHttpHeaders = {};
  let headersEndedStream = false;
  return new Promise<GrpcCallResult>((resolve, reject) => {
    const timer = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), options.timeoutMs ?? 10_000);
    stream.on('response', (h, flags) => {
      headers = h;
      headersEndedStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    });
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (chunk: Buffer) => {
      try {
        received.push(...reader.push(chunk));
      } catch (err) {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        clearTimeout(timer);
        reject(err);
      }
    });
    // A reset stream errors (for most codes) before it closes: the close below says how it ended.
    stream.on('error', () => {});
    stream.on('close', () => {
      clearTimeout(timer);
      const statusFrom = headersEndedStream ? headers : trailers;
      const status = statusFrom['grpc-status'];
      resolve({
        httpStatus: Number(headers[':status'] ?? 0),
        headers,
        trailers,
        messages: received,
        grpcStatus: status === undefined ? undefined : Number(status),
        grpcMessage: decodeGrpcMessageText(String(statusFrom['grpc-message'] ?? '')),
        trailersOnly: headersEndedStream,
        rstCode: stream.rstCode === http2.constants.NGHTTP2_NO_ERROR ? undefined : stream.rstCode,
      });
    });
    stream.end(Buffer.concat(messages.map(encodeGrpcMessage)));
  });
}
