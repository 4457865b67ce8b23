// A connection to an upstream endpoint as its pool sees it: something that carries exchanges.
// HTTP/1.1 (upstream-connection.ts) carries one at a time; an HTTP/2 session (upstream-h2-session.ts)
// carries many as streams and tells its pool each time one frees up. Pools hold sessions; which
// kind a connection becomes is decided by open-upstream-session.ts, by the protocol ALPN agreed on.
import type { UpstreamExchangeHandler, UpstreamRequest } from './upstream-exchange.js';

interface SessionBase {
  /** Sends `request`; only when the session has room (its owner was told so through released()). */
  run(request: UpstreamRequest, handler: UpstreamExchangeHandler): void;
  /** Called by the pool's tick with the current coarse time: fails exchanges past their deadline. */
  checkDeadline(now: number): void;
  /** Closes the connection now (idle timeout, retirement, shutdown): exchanges on it fail. */
  close(): void;
  /** When the session last went idle (coarse ms), for the keep-alive idle timeout. */
  idleSince: number;
}

/** One exchange at a time (HTTP/1.1): busy from run() until it hands itself back through released(). */
export interface SingleSession extends SessionBase {
  readonly multiplexed: false;
}

/** Exchanges side by side as streams (HTTP/2). */
export interface MultiplexedSession extends SessionBase {
  readonly multiplexed: true;
  /** Whether it takes another stream now: under both stream limits, and no GOAWAY received. */
  readonly hasRoom: boolean;
  /** Streams open now: requests in flight. */
  readonly streams: number;
}

export type UpstreamSession = SingleSession | MultiplexedSession;

/** What a session needs from its pool. */
export interface SessionOwner {
  /** Coarse clock (ms), advanced by the pool's tick. */
  readonly now: number;
  readonly headersMs: number;
  readonly bodyMs: number;
  /** An exchange finished and the session can take another request (HTTP/2: a stream closed, or the upstream allowed more). */
  released(session: UpstreamSession): void;
  /** The socket is gone. */
  closed(session: UpstreamSession): void;
}

/** What a multiplexed session needs besides. */
export interface MultiplexedSessionOwner extends SessionOwner {
  /** The upstream sent GOAWAY: the session takes no new stream; those in flight finish, then it closes. */
  goingAway(session: MultiplexedSession): void;
  /**
   * The upstream did not process `request` (REFUSED_STREAM, or a stream above the last one its
   * GOAWAY names) and it has no body that was read: it may be sent again, as it is. `err` is the
   * failure to report if it is not.
   */
  refused(request: UpstreamRequest, handler: UpstreamExchangeHandler, err: Error): void;
}
