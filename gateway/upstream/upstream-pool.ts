// Keep-alive sessions to one upstream endpoint. An HTTP/1.1 connection carries one exchange at a
// time: the most recently used idle connection first (few connections stay warm), a new one opened
// through the connector while under the limit, otherwise the request waits its turn, unless
// `maxPending` already wait (then it is refused with upstream_overflow: a queue without bound only
// turns overload into timeouts). An HTTP/2 session carries many exchanges as streams: it takes
// requests while it has a free stream, and another session is opened (one at a time: each carries
// many) only when none has; after a GOAWAY a session takes nothing new, no longer counts against
// the limit, and a request the upstream did not process waits here for another, once. One coarse
// tick per pool checks response deadlines and closes sessions idle for too long (HTTP/2: with no
// stream open). A retired pool (after a TLS rotation) serves what it already has and closes each
// session as it frees up.
import type { Socket } from 'node:net';
import type { UpstreamProtocol, UpstreamTimeouts } from '../config/types.js';
import type { Balanced } from './balancer.js';
import { openUpstreamSession, type SessionOptions } from './open-upstream-session.js';
import type { MultiplexedSession, MultiplexedSessionOwner, SingleSession, UpstreamSession } from './upstream-session.js';
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
  /** What the connector's sockets become (ALPN decides for auto). Absent: http1. */
  protocol?: UpstreamProtocol;
  /** Our cap on one HTTP/2 session's concurrent streams. Absent: 100. */
  maxStreams?: number;
}

interface Waiting {
  readonly request: UpstreamRequest;
  readonly handler: UpstreamExchangeHandler;
  cancelled: boolean;
}

/** Deadline granularity: timeouts fire up to this late. */
const TICK_MS = 250;

export class UpstreamPool implements MultiplexedSessionOwner, Balanced {
  now = Date.now();
  readonly headersMs: number;
  readonly bodyMs: number;
  readonly endpointIndex: number;
  /** host:port, for logs. */
  readonly endpointName: string;
  readonly #idleMs: number;
  readonly #all = new Set<UpstreamSession>();
  /** HTTP/1.1 connections with no exchange, the most recently freed last. */
  readonly #idle: SingleSession[] = [];
  /** HTTP/2 sessions, with room or not. */
  readonly #shared: MultiplexedSession[] = [];
  /** HTTP/2 sessions that had a free stream when last seen, each once; one found full is dropped from here then. */
  readonly #withRoom: MultiplexedSession[] = [];
  /** HTTP/2 sessions after a GOAWAY: nothing new goes to them, and they close when their streams are done. */
  readonly #draining = new Set<MultiplexedSession>();
  /** Requests the upstream refused unprocessed and that were queued again: once each. */
  readonly #requeued = new WeakSet<UpstreamExchangeHandler>();
  readonly #waiting: Waiting[] = [];
  /** Entries of #waiting not cancelled: what max_pending bounds. */
  #pending = 0;
  /** One error for every refusal: overload is no time to allocate. */
  readonly #overflow: UpstreamProtocolError;
  #connecting = 0;
  /**
   * The endpoint speaks HTTP/2 (its last session did, or the config says so): one session at a
   * time is opened. `auto` starts as HTTP/1.1 would, opening side by side until one has answered.
   */
  #multiplexing: boolean;
  readonly #sessionOptions: SessionOptions;
  #retired = false;
  #destroyed = false;
  #tick: NodeJS.Timeout | undefined;

  constructor(private readonly options: UpstreamPoolOptions) {
    this.headersMs = options.timeouts.headersMs;
    this.bodyMs = options.timeouts.bodyMs;
    this.#idleMs = options.timeouts.idleMs;
    this.endpointIndex = options.endpointIndex;
    this.endpointName = options.hostHeader;
    this.#overflow = new UpstreamProtocolError('GATEHOUSE_UPSTREAM_OVERFLOW', `more than ${options.maxPending} requests waiting for a connection`);
    const protocol = options.protocol ?? 'http1';
    this.#multiplexing = protocol === 'h2';
    this.#sessionOptions = { protocol, hostHeader: options.hostHeader, maxStreams: options.maxStreams ?? 100, setupMs: options.timeouts.connectMs };
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
    if (this.#withRoom.length > 0 && this.#runShared(request, handler)) return;
    if (this.#pending >= this.options.maxPending) {
      handler.onError(this.#overflow);
      return;
    }
    this.#wait(request, handler, false);
    if (this.#canOpen()) this.#open();
  }

  /** Runs the request on an HTTP/2 session with a free stream, if one has. */
  #runShared(request: UpstreamRequest, handler: UpstreamExchangeHandler): boolean {
    const withRoom = this.#withRoom;
    while (withRoom.length > 0) {
      const session = withRoom[withRoom.length - 1]!;
      if (session.hasRoom) {
        session.run(request, handler);
        return true;
      }
      withRoom.pop();
    }
    return false;
  }

  /** Queues the request for the next free session (at the front when it has waited before). */
  #wait(request: UpstreamRequest, handler: UpstreamExchangeHandler, first: boolean): void {
    const waiting: Waiting = { request, handler, cancelled: false };
    if (first) this.#waiting.unshift(waiting);
    else this.#waiting.push(waiting);
    this.#pending++;
    handler.onConnect(() => {
      if (waiting.cancelled) return;
      waiting.cancelled = true;
      this.#pending--;
    });
  }

  /** Whether another session may be opened: under the limit (sessions after GOAWAY do not count), and for HTTP/2 none opening already. */
  #canOpen(): boolean {
    if (this.#all.size - this.#draining.size + this.#connecting >= this.options.maxConnections) return false;
    return this.#connecting === 0 || !this.#multiplexing;
  }

  #open(): void {
    this.#connecting++;
    this.#startTick();
    this.options.connect((err, socket) => {
      if (err !== null || socket === null) {
        this.#openFailed(err ?? new Error('upstream connect failed'));
        return;
      }
      if (this.#destroyed) {
        this.#connecting--;
        socket.destroy();
        return;
      }
      openUpstreamSession(socket, this, this.#sessionOptions, this.#opened);
    });
  }

  readonly #opened = (err: Error | null, conn: UpstreamSession | null): void => {
    if (err !== null || conn === null) {
      this.#openFailed(err ?? new Error('upstream session failed'));
      return;
    }
    this.#connecting--;
    if (this.#destroyed) {
      conn.close();
      return;
    }
    this.#all.add(conn);
    this.#multiplexing = conn.multiplexed;
    if (conn.multiplexed) this.#shared.push(conn);
    this.released(conn);
  };

  #openFailed(err: Error): void {
    this.#connecting--;
    // Nothing will serve the waiting requests soon: let them fail over now.
    if (this.#all.size - this.#draining.size === 0 && this.#connecting === 0) this.#failWaiting(err);
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
    if (conn.multiplexed) {
      this.#releasedStream(conn);
      return;
    }
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

  /** An HTTP/2 session has a free stream (one closed, or it just opened): waiting requests first. */
  #releasedStream(session: MultiplexedSession): void {
    const waiting = this.#waiting;
    while (waiting.length > 0 && session.hasRoom) {
      const next = waiting.shift()!;
      if (next.cancelled) continue;
      next.cancelled = true;
      this.#pending--;
      session.run(next.request, next.handler);
    }
    if (session.streams === 0) {
      session.idleSince = this.now;
      if (this.#retired || this.#destroyed) {
        session.close();
        return;
      }
    }
    if (session.hasRoom) {
      if (!this.#withRoom.includes(session)) this.#withRoom.push(session);
    } else if (this.#pending > 0 && this.#canOpen()) {
      this.#open(); // requests left waiting: another session
    }
  }

  goingAway(session: MultiplexedSession): void {
    this.#draining.add(session);
    remove(this.#withRoom, session);
    if (this.#pending > 0 && this.#canOpen()) this.#open();
  }

  refused(request: UpstreamRequest, handler: UpstreamExchangeHandler, err: Error): void {
    if (this.#destroyed || this.#requeued.has(handler)) {
      handler.onError(err);
      return;
    }
    this.#requeued.add(handler);
    const conn = this.#idle.pop();
    if (conn !== undefined) {
      conn.run(request, handler);
      return;
    }
    if (this.#withRoom.length > 0 && this.#runShared(request, handler)) return;
    this.#wait(request, handler, true);
    if (this.#canOpen()) this.#open();
  }

  closed(conn: UpstreamSession): void {
    this.#all.delete(conn);
    if (conn.multiplexed) {
      remove(this.#shared, conn);
      remove(this.#withRoom, conn);
      this.#draining.delete(conn);
    } else {
      remove(this.#idle, conn);
    }
    if (this.#destroyed) return;
    // Requests still waiting need a session in place of the one that went away.
    if (this.#waiting.length > 0 && this.#canOpen()) this.#open();
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
      for (const session of this.#shared) if (session.streams === 0 && now - session.idleSince >= this.#idleMs) session.close();
    }
  };

  /** Stops taking new connections; each existing one closes once its request is done. */
  retire(): void {
    this.#retired = true;
    for (const conn of this.#idle.splice(0)) conn.close();
    for (const session of this.#shared) if (session.streams === 0) session.close();
  }

  /** Closes everything now; requests in flight fail. */
  destroy(): void {
    this.#destroyed = true;
    this.#stopTick();
    this.#failWaiting(new UpstreamProtocolError('GATEHOUSE_UPSTREAM_POOL_CLOSED', 'upstream pool is closed'));
    for (const conn of this.#all) conn.close();
    this.#idle.length = 0;
    this.#withRoom.length = 0;
  }

  /** Requests running on its sessions or waiting for one (for least_request). */
  get inFlight(): number {
    return this.#all.size - this.#shared.length - this.#idle.length + this.#streams() + this.#pending;
  }

  /** HTTP/2 streams open across the sessions. */
  #streams(): number {
    let streams = 0;
    const shared = this.#shared;
    for (let i = 0; i < shared.length; i++) streams += shared[i]!.streams;
    return streams;
  }

  stats(): PoolStats {
    const connected = this.#all.size;
    const h2 = this.#shared.length;
    const streams = this.#streams();
    let free = this.#idle.length;
    for (const session of this.#shared) if (session.hasRoom) free++;
    return { connected, free, pending: this.#pending, running: connected - h2 - this.#idle.length + streams, h2Sessions: h2, h2Streams: streams };
  }
}

/** What a pool holds now, for the pool gauge. */
export interface PoolStats {
  /** Sessions open: HTTP/1.1 connections and HTTP/2 sessions. */
  connected: number;
  /** Sessions that take a request now: idle HTTP/1.1 connections, HTTP/2 sessions with a free stream. */
  free: number;
  /** Requests waiting for one. */
  pending: number;
  /** Requests in flight (HTTP/2: streams). */
  running: number;
  /** Of `connected`, the HTTP/2 sessions. */
  h2Sessions: number;
  /** Of `running`, the HTTP/2 streams. */
  h2Streams: number;
}

function remove<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i !== -1) list.splice(i, 1);
}
