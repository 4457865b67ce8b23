// HTTP/2 client connections the gateway closed because of what the client sent (the known floods,
// protocol errors), by reason (reasons.ts). Rare by nature: plain counter children, bound once per
// listener and exported at zero from the start so that rate() and alerts see them.
import { Counter } from 'prom-client';
import { HTTP2_CLOSE_REASONS, type Http2CloseReason } from '../reasons.js';
import { registry } from './registry.js';
import type { Inc } from './tallies.js';

const http2ConnectionsClosed = new Counter({
  name: 'gatehouse_http2_connections_closed_total',
  help: 'HTTP/2 client connections the gateway closed with GOAWAY for what the client sent (floods, protocol errors), by listener and reason',
  labelNames: ['listener', 'reason'] as const,
  registers: [registry],
});

/** The close counters of one listener, one per reason. */
export function http2CloseCounts(listener: string): Record<Http2CloseReason, Inc> {
  const handles = {} as Record<Http2CloseReason, Inc>;
  for (const reason of HTTP2_CLOSE_REASONS) {
    const series = http2ConnectionsClosed.labels({ listener, reason });
    series.inc(0);
    handles[reason] = series;
  }
  return handles;
}
