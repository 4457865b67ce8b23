// Responses the gateway writes itself: JSON with a stable `reason` (reasons.ts) that operators and
// clients can act on, never a stack trace; to a gRPC request, the gRPC status a gRPC client reads
// (grpc-status.ts), with the reason at the start of its message.
import { STATUS_CODES } from 'node:http';
import type { DownstreamResponse } from './downstream-response.js';
import { grpcStatusHeaders, grpcStatusOf } from './grpc-status.js';

export function sendError(res: DownstreamResponse, status: number, reason: string, message: string, extra?: Record<string, unknown>): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (res.grpc) {
    // HTTP 200 and nothing but the status: a trailers-only response (one HEADERS frame ending the stream).
    res.writeHead(200, 'OK', grpcStatusHeaders(grpcStatusOf(status, reason), `${reason}: ${message}`));
    res.end();
    return;
  }
  const body = Buffer.from(JSON.stringify({ error: message, reason, ...extra }) + '\n');
  res.writeHead(status, STATUS_CODES[status] ?? '', ['content-type', 'application/json', 'content-length', String(body.length), 'cache-control', 'no-store']);
  res.end(body);
}
