// A connection to an upstream endpoint as its pool sees it: something that carries exchanges.
// HTTP/1.1 (upstream-connection.ts) carries one at a time; an HTTP/2 session would carry many as
// streams and tell its pool each time one frees up. Pools hold sessions; which kind a connection
// becomes is decided by open-upstream-session.ts, by the protocol ALPN agreed on.
import type { UpstreamExchangeHandler, UpstreamRequest } from './upstream-exchange.js';

export interface UpstreamSession {
  /** Sends `request`; only when the session has room (its owner was told so through released()). */
  run(request: UpstreamRequest, handler: UpstreamExchangeHandler): void;
  /** Called by the pool's tick with the current coarse time: fails exchanges past their deadline. */
  checkDeadline(now: number): void;
  /** Closes the connection (idle timeout, retirement, shutdown). */
  close(): void;
  /** When the session last went idle (coarse ms), for the keep-alive idle timeout. */
  idleSince: number;
}

/** What a session needs from its pool. */
export interface SessionOwner {
  /** Coarse clock (ms), advanced by the pool's tick. */
  readonly now: number;
  readonly headersMs: number;
  readonly bodyMs: number;
  /** An exchange finished and the session can take another request. */
  released(session: UpstreamSession): void;
  /** The socket is gone. */
  closed(session: UpstreamSession): void;
}
