// Which kind of session serves a client connection, decided by the protocol ALPN agreed on
// (context.alpn). Listeners offer only http/1.1 (config-schema.ts refuses any other ALPN id), and
// plaintext is HTTP/1.1; an HTTP/2 session for 'h2' goes here beside it.
import type { Socket } from 'node:net';
import { ClientConnection, type ClientConnectionOptions } from '../http1/client-connection.js';
import type { ConnectionContext } from '../session/connection-context.js';
import type { DownstreamSession } from '../session/downstream-session.js';

export function serveDownstream(socket: Socket, context: ConnectionContext, options: ClientConnectionOptions): DownstreamSession {
  return new ClientConnection(socket, options, context);
}
