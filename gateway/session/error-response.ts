// Responses the gateway writes itself: JSON with a stable `reason` (reasons.ts) that operators and
// clients can act on, never a stack trace.
import { STATUS_CODES } from 'node:http';
import type { DownstreamResponse } from './downstream-response.js';

export function sendError(res: DownstreamResponse, status: number, reason: string, message: string, extra?: Record<string, unknown>): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = Buffer.from(JSON.stringify({ error: message, reason, ...extra }) + '\n');
  res.writeHead(status, STATUS_CODES[status] ?? '', ['content-type', 'application/json', 'content-length', String(body.length), 'cache-control', 'no-store']);
  res.end(body);
}
