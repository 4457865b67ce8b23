// The demo upstream's gRPC server: the standard health service (grpc.health.v1.Health), so any
// gRPC client can try gRPC through the gateway, and UNIMPLEMENTED for every other method, as any
// gRPC server answers. The demo serves one service, named '' (the server as a whole).
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { encodeGrpcMessage, encodeGrpcMessageText, GRPC_STATUS, GrpcFramingError, GrpcMessageReader } from './grpc-wire.js';
import { decodeHealthCheckRequest, encodeHealthCheckResponse, HEALTH_CHECK_PATH, HEALTH_WATCH_PATH, SERVING_STATUS } from './health-messages.js';

/** gRPC's default limit for a received message; a health request is a few bytes. */
const MAX_REQUEST_MESSAGE_BYTES = 4 * 1024 * 1024;

const SERVING_SERVICES = new Set(['']);

/** Answers one gRPC call (an HTTP/2 request whose content-type is application/grpc). */
export function serveGrpcHealth(req: Http2ServerRequest, res: Http2ServerResponse): void {
  const path = req.url;
  if (path !== HEALTH_CHECK_PATH && path !== HEALTH_WATCH_PATH) {
    req.resume();
    return respondTrailersOnly(res, GRPC_STATUS.UNIMPLEMENTED, `unknown method ${path}: this server implements ${HEALTH_CHECK_PATH} and ${HEALTH_WATCH_PATH}`);
  }
  const reader = new GrpcMessageReader(MAX_REQUEST_MESSAGE_BYTES);
  const messages: Buffer[] = [];
  let failed = false;
  req.on('data', (chunk: Buffer) => {
    if (failed) return;
    try {
      messages.push(...reader.push(chunk));
    } catch (err) {
      failed = true;
      respondTrailersOnly(res, err instanceof GrpcFramingError ? err.status : GRPC_STATUS.INTERNAL, (err as Error).message);
    }
  });
  req.on('end', () => {
    if (failed) return;
    if (reader.truncated || messages.length !== 1) return respondTrailersOnly(res, GRPC_STATUS.INTERNAL, `${path} takes one request message, got ${reader.truncated ? 'a truncated one' : messages.length}`);
    const request = decodeHealthCheckRequest(messages[0]!);
    if (request === undefined) return respondTrailersOnly(res, GRPC_STATUS.INTERNAL, 'the request is not a HealthCheckRequest');
    const known = SERVING_SERVICES.has(request.service);
    if (path === HEALTH_CHECK_PATH) {
      if (!known) return respondTrailersOnly(res, GRPC_STATUS.NOT_FOUND, `unknown service '${request.service}'`);
      return respondOne(res, encodeHealthCheckResponse(SERVING_STATUS.SERVING));
    }
    // Watch: the current status now and at every change (never, here); the call stays open until
    // the client cancels it. An unknown service is not an error: it may be registered later.
    if (res.stream.destroyed) return;
    res.writeHead(200, { 'content-type': 'application/grpc' });
    res.write(encodeGrpcMessage(encodeHealthCheckResponse(known ? SERVING_STATUS.SERVING : SERVING_STATUS.SERVICE_UNKNOWN)));
  });
}

/** One response message, then the trailers with status OK. */
function respondOne(res: Http2ServerResponse, message: Buffer): void {
  if (res.stream.destroyed || res.headersSent) return;
  res.writeHead(200, { 'content-type': 'application/grpc' });
  res.addTrailers({ 'grpc-status': String(GRPC_STATUS.OK) });
  res.end(encodeGrpcMessage(message));
}

/**
 * A call that fails before any message: one HEADERS frame, ending the stream, that carries the
 * status. The compatibility API always sends trailers after its headers, so this goes on the stream.
 */
function respondTrailersOnly(res: Http2ServerResponse, status: number, message: string): void {
  const stream = res.stream;
  if (stream.destroyed || stream.headersSent) return;
  stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(status), 'grpc-message': encodeGrpcMessageText(message) }, { endStream: true });
}
