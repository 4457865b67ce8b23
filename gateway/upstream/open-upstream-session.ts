// Which kind of session a connected upstream socket becomes, by the protocol ALPN agreed on.
import type { Socket } from 'node:net';
import { UpstreamConnection } from './upstream-connection.js';
import type { SessionOwner, UpstreamSession } from './upstream-session.js';

/** The session for a connected socket. The connector offers only http/1.1 today; HTTP/2 ('h2') goes here beside it. */
export function openUpstreamSession(socket: Socket, owner: SessionOwner, hostHeader: string): UpstreamSession {
  return new UpstreamConnection(socket, owner, hostHeader);
}
