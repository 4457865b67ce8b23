// The graceful stop of one gateway process (SIGTERM, SIGINT, POST /drain, a handover to a new
// process): /readyz answers 503 at once; listeners keep accepting for drain.delay, so that load
// balancers deregister the gateway before it refuses anyone; then they stop accepting, and every
// HTTP session finishes what it has begun and ends (session/downstream-session.ts). What is still
// open at drain.timeout, counted from the start (passthrough relays, tunnels, slow requests), is
// closed with everything else. Open connections are counted every POLL_MS while the drain waits:
// nothing on the request path pays for it.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Drain } from '../config/types.js';
import { log } from '../log.js';
import { draining } from '../metrics/drain-metrics.js';
import type { RunningGateway } from './gateway.js';

const POLL_MS = 100;

export interface DrainRequest extends Drain {
  /** What asked for it (SIGTERM, admin, handover, primary): logged. */
  readonly why: string;
}

/** Drains `gateway` and closes it; resolves once everything is closed. */
export async function drainGateway(gateway: RunningGateway, request: DrainRequest): Promise<void> {
  const startedAt = Date.now();
  const deadline = startedAt + request.timeoutMs;
  gateway.admin?.setDraining();
  draining.set(1);
  const atStart = await openConnections(gateway);
  log.info('drain_started', { why: request.why, pid: process.pid, delay_ms: request.delayMs, timeout_ms: request.timeoutMs, ...atStart });
  if (request.delayMs > 0) await sleep(Math.max(0, Math.min(request.delayMs, deadline - Date.now())));
  for (const { frontDoor, terminate } of gateway.listeners.values()) {
    frontDoor?.stopAccepting();
    terminate?.drain();
  }
  let left = await openConnections(gateway);
  while (left.connections > 0 && Date.now() < deadline) {
    await sleep(Math.max(1, Math.min(POLL_MS, deadline - Date.now())));
    left = await openConnections(gateway);
  }
  log.info('drain_finished', { why: request.why, pid: process.pid, duration_ms: Date.now() - startedAt, closed_at_timeout: left.connections });
  await gateway.close();
}

/** Connections open on every listener (handshakes, HTTP sessions, relays), and of them the HTTP sessions. */
async function openConnections(gateway: RunningGateway): Promise<{ connections: number; http_sessions: number }> {
  let connections = 0;
  let sessions = 0;
  for (const { frontDoor, terminate } of gateway.listeners.values()) {
    connections += frontDoor ? frontDoor.openConnections() : ((await terminate?.openConnections()) ?? 0);
    sessions += terminate?.sessions ?? 0;
  }
  return { connections, http_sessions: sessions };
}
