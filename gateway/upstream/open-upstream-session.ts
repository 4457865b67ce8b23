// Which kind of session a connected upstream socket becomes, by the protocol ALPN agreed on (or,
// in plaintext, by prior knowledge: `protocol: h2` speaks h2c from the first byte). An HTTP/2
// session is usable once the upstream's SETTINGS have come, so opening one is asynchronous.
import type { Socket } from 'node:net';
import type { UpstreamProtocol } from '../config/types.js';
import { UpstreamConnection } from './upstream-connection.js';
import { UpstreamProtocolError } from './upstream-exchange.js';
import { UpstreamH2Session } from './upstream-h2-session.js';
import type { MultiplexedSessionOwner, UpstreamSession } from './upstream-session.js';

export interface SessionOptions {
  readonly protocol: UpstreamProtocol;
  /** The endpoint as host:port: HTTP/1.1's Host and HTTP/2's :authority when the client sent none. */
  readonly hostHeader: string;
  /** Our own cap on one HTTP/2 session's concurrent streams. */
  readonly maxStreams: number;
  /** How long an HTTP/2 upstream has to send its SETTINGS. */
  readonly setupMs: number;
}

/** Called once: the session, or why the connection could not become one (the socket is closed then). */
export type SessionOpened = (err: Error | null, session: UpstreamSession | null) => void;

export function openUpstreamSession(socket: Socket, owner: MultiplexedSessionOwner, options: SessionOptions, opened: SessionOpened): void {
  const alpn = 'alpnProtocol' in socket ? (socket.alpnProtocol as string | false | null) : undefined;
  if (alpn === 'h2' || (alpn === undefined && options.protocol === 'h2')) {
    UpstreamH2Session.open(socket, owner, options, opened);
    return;
  }
  if (options.protocol === 'h2') {
    socket.destroy();
    const agreed = alpn ? `ALPN protocol '${alpn}'` : 'no ALPN protocol';
    opened(new UpstreamProtocolError('GATEHOUSE_UPSTREAM_PROTOCOL_MISMATCH', `upstream ${options.hostHeader} agreed ${agreed}, not h2 (protocol: h2)`), null);
    return;
  }
  opened(null, new UpstreamConnection(socket, owner, options.hostHeader));
}
