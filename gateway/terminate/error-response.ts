// Responses the gateway writes itself: JSON with a stable `reason` (reasons.ts) that operators and
// clients can act on, never a stack trace.
import type { ServerResponse } from 'node:http';

export function sendError(res: ServerResponse, status: number, reason: string, message: string, extra?: Record<string, unknown>): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: message, reason, ...extra }) + '\n';
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}
