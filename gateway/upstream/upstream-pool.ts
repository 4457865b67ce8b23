// Keep-alive connections to one upstream endpoint: the most recently used idle connection first
// (few connections stay warm), a new one opened through the connector while under the limit,
// otherwise the request waits its turn, unless `maxPending` already wait (then it is refused with
// upstream_overflow: a queue without bound only turns overload into timeouts). One coarse tick per pool checks response deadlines and
// closes connections idle for too long. A retired pool (after a TLS rotation) serves what it
// already has and closes each connection as it frees up.
import type { Socket } from 'node:net';
import type { UpstreamTimeouts } from '../config/types.js';
import type { Balanced } from './balancer.js';
import { openUpstreamSession } from './open-upstream-session.js';
import type { SessionOwner, UpstreamSession } from './upstream-session.js';
import { UpstreamProtocolError, type UpstreamExchangeHandler, type UpstreamRequest } from './upstream-exchange.js';

export type Connect = (callback: (err: Error | null, socket: Socket | null) => void) => void;

export interface UpstreamPoolOptions {
  /** Which of its upstream's endpoints this pool serves (outlier detection's index). */
  endpointIndex: number;
  connect: Connect;
  maxConnections: number;
  /** Requests that may wait for a connection; one more is refused (GATEHOUSE_UPSTREAM_OVERFLOW). */
  maxPending: number;
  timeouts: UpstreamTimeouts;
  /** Sent as Host when the client's request had none. */
  hostHeader: string;
}

interface Waiting {
  readonly request: UpstreamRequest;
  readonly handler: UpstreamExchangeHandler;
  cancelled: boolean;
}

/** Deadline granularity: timeouts fire up to this late. */
const TICK_MS = 250;

export class UpstreamPool implements SessionOwner, Balanced {
  now = Date.now();
  readonly headersMs: number;
  readonly bodyMs: number;
  readonly endpointIndex: number;
  readonly #idleMs: number;
  readonly #all = new Set<UpstreamSession>();
  readonly #idle: UpstreamSession[] = [];
  readonly #waiting: Waiting[] = [];
  /** Entries of #waiting not cancelled: what max_pending bounds. */
  #pending = 0;
  /** One error for every refusal: overload is no time to allocate. */
  readonly #overflow: UpstreamProtocolError;
  #connecting = 0;
  #retired = false;
  #destroyed = false;
  #tick: NodeJS.Timeout | undefined;

  constructor(private readonly options: UpstreamPoolOptions) {
    this.headersMs = options.timeouts.headersMs;
    this.bodyMs = options.timeouts.bodyMs;
    this.#idleMs = options.timeouts.idleMs;
    this.endpointIndex = options.endpointIndex;
    this.#overflow = new UpstreamProtocolError('GATEHOUSE_UPSTREAM_OVERFLOW', `more than ${options.maxPending} requests waiting for a connection`);
  }

  dispatch(request: UpstreamRequest, handler: UpstreamExchangeHandler): void {
    if (this.#destroyed) {
      handler.onError(new UpstreamProtocolError('GATEHOUSE_UPSTREAM_POOL_CLOSED', 'upstream pool is closed'));
      return;
    }
    const conn = this.#idle.pop();
    if (conn !== undefined) {
      conn.run(request, handler);
      return;
    }
    if (this.#pending >= this.options.maxPending) {
      handler.onError(this.#overflow);
      return;
    }
    const waiting: Waiting = { request, handler, cancelled: false };
    this.#waiting.push(waiting);
    this.#pending++;
    handler.onConnect(() => {
      if (waiting.cancelled) return;
      waiting.cancelled = true;
      this.#pending--;
    });
    if (this.#all.size + this.#connecting < this.options.maxConnections) this.#open();
  }

  #open(): void {
    this.#connecting++;
    this.#startTick();
    this.options.connect((err, socket) => {
      this.#connecting--;
      if (err !== null || socket === null) {
        // Nothing will serve the waiting requests soon: let them fail over now.
        if (this.#all.size === 0 && this.#connecting === 0) this.#failWaiting(err ?? new Error('upstream connect failed'));
        return;
      }
      if (this.#destroyed) {
        socket.destroy();
        return;
      }
      const conn = openUpstreamSession(socket, this, this.options.hostHeader);
      this.#all.add(conn);
      this.released(conn);
    });
  }

  #failWaiting(err: Error): void {
    const waiting = this.#waiting.splice(0);
    this.#pending = 0;
    for (const w of waiting) {
      if (w.cancelled) continue;
      w.cancelled = true;
      w.handler.onError(err);
    }
  }

  released(conn: UpstreamSession): void {
    while (this.#waiting.length > 0) {
      const next = this.#waiting.shift()!;
      if (next.cancelled) continue;
      next.cancelled = true; // taken: an abort from now on is the connection's
      this.#pending--;
      conn.run(next.request, next.handler);
      return;
    }
    if (this.#retired || this.#destroyed) {
      conn.close();
      return;
    }
    conn.idleSince = this.now;
    this.#idle.push(conn);
  }

  closed(conn: UpstreamSession): void {
    this.#all.delete(conn);
    const i = this.#idle.indexOf(conn);
    if (i !== -1) this.#idle.splice(i, 1);
    if (this.#destroyed) return;
    // Requests still waiting need a connection in place of the one that went away.
    if (this.#waiting.length > 0 && this.#all.size + this.#connecting < this.options.maxConnections) this.#open();
    if (this.#all.size === 0 && this.#connecting === 0) this.#stopTick();
  }

  #startTick(): void {
    if (this.#tick !== undefined) return;
    this.now = Date.now();
    this.#tick = setInterval(this.#onTick, TICK_MS);
    this.#tick.unref();
  }

  #stopTick(): void {
    if (this.#tick === undefined) return;
    clearInterval(this.#tick);
    this.#tick = undefined;
  }

  readonly #onTick = (): void => {
    const now = (this.now = Date.now());
    for (const conn of this.#all) conn.checkDeadline(now);
    if (this.#idleMs > 0) {
      // Oldest idle connections are at the front.
      while (this.#idle.length > 0 && now - this.#idle[0]!.idleSince >= this.#idleMs) this.#idle.shift()!.close();
    }
  };

  /** Stops taking new connections; each existing one closes once its request is done. */
  retire(): void {
    this.#retired = true;
    for (const conn of this.#idle.splice(0)) conn.close();
  }

  /** Closes everything now; requests in flight fail. */
  destroy(): void {
    this.#destroyed = true;
    this.#stopTick();
    this.#failWaiting(new UpstreamProtocolError('GATEHOUSE_UPSTREAM_POOL_CLOSED', 'upstream pool is closed'));
    for (const conn of this.#all) conn.close();
    this.#idle.length = 0;
  }

  /** Requests running on its connections or waiting for one (for least_request). */
  get inFlight(): number {
    return this.#all.size - this.#idle.length + this.#pending;
  }

  stats(): { connected: number; free: number; pending: number; running: number } {
    const connected = this.#all.size;
    const free = this.#idle.length;
    return { connected, free, pending: this.#pending, running: connected - free };
  }
}
