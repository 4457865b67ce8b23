// A client connection being served, as the terminate listener sees it: whatever protocol it
// speaks, it feeds the one request handler, carries the connection's facts (connection-context.ts)
// to every request, and can be cut (shutdown, revocation). Which kind serves a connection is
// decided here, by the protocol ALPN agreed on (context.alpn).
import type { Socket } from 'node:net';
import { ClientConnection, type ClientConnectionOptions } from '../http1/client-connection.js';
import type { ConnectionContext } from './connection-context.js';

export interface DownstreamSession {
  readonly socket: Socket;
  readonly context: ConnectionContext;
  /** Stops serving now: in-flight requests are cut. */
  destroy(): void;
}

/**
 * Serves `socket`. Listeners offer only http/1.1 (config-schema.ts refuses any other ALPN id), and
 * plaintext is HTTP/1.1; an HTTP/2 session for 'h2' goes here beside it.
 */
export function serveDownstream(socket: Socket, context: ConnectionContext, options: ClientConnectionOptions): DownstreamSession {
  return new ClientConnection(socket, options, context);
}
