// A client connection being served, whatever protocol it speaks (HTTP/1.1 today, HTTP/2 next):
// it feeds the one request handler, carries the connection's facts (connection-context.ts) to every
// request, and can be cut (shutdown, revocation). terminate/serve-downstream.ts picks the kind.
import type { Socket } from 'node:net';
import type { ConnectionContext } from './connection-context.js';

export interface DownstreamSession {
  readonly socket: Socket;
  readonly context: ConnectionContext;
  /** Stops serving now: in-flight requests are cut. */
  destroy(): void;
  /**
   * Graceful stop: requests in flight finish, the next response tells the client to go elsewhere
   * (HTTP/1.1 `connection: close`, HTTP/2 GOAWAY), a connection idle between requests closes now.
   * The session ends by itself; drain.timeout cuts what is left (destroy).
   */
  drain(): void;
}
