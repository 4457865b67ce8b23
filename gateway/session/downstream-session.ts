// A client connection being served, whatever protocol it speaks (HTTP/1.1 or HTTP/2):
// it feeds the one request handler, carries the connection's facts (connection-context.ts) to every
// request, and can be cut (shutdown, revocation). terminate/serve-downstream.ts picks the kind.
import type { Socket } from 'node:net';
import type { ConnectionContext } from './connection-context.js';

export interface DownstreamSession {
  readonly socket: Socket;
  readonly context: ConnectionContext;
  /** Stops serving now: in-flight requests are cut. */
  destroy(): void;
  /** Takes no new request (HTTP/2: GOAWAY), and closes once the requests in flight have been answered. */
  drain(): void;
}
