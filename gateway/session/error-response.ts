// Responses the gateway writes itself: JSON with a stable `reason` (reasons.ts) that operators and
// clients can act on, never a stack trace; to a gRPC request, the gRPC status a gRPC client reads
// (grpc-status.ts), with the reason at the start of its message.
import { STATUS_CODES } from 'node:http';
import type { DownstreamResponse } from './downstream-response.js';
import { grpcStatusHeaders, grpcStatusOf } from './grpc-status.js';

/** Answers `status` with a JSON body naming `reason` (and `x-request-id` when the request has one); the body's length (0 for gRPC). */
export function sendError(res: DownstreamResponse, status: number, reason: string, message: string, extra?: Record<string, unknown>, requestId?: string): number {
  if (res.headersSent) {
    res.destroy();
    return 0;
  }
  if (res.grpc) {
    // HTTP 200 and nothing but the status: a trailers-only response (one HEADERS frame ending the stream).
    const headers = grpcStatusHeaders(grpcStatusOf(status, reason), `${reason}: ${message}`);
    if (requestId !== undefined) headers.push('x-request-id', requestId);
    res.writeHead(200, 'OK', headers);
    res.end();
    return 0;
  }
  const body = Buffer.from(JSON.stringify({ error: message, reason, ...extra }) + '\n');
  const headers = ['content-type', 'application/json', 'content-length', String(body.length), 'cache-control', 'no-store'];
  if (requestId !== undefined) headers.push('x-request-id', requestId);
  res.writeHead(status, STATUS_CODES[status] ?? '', headers);
  res.end(body);
  return body.length;
}
