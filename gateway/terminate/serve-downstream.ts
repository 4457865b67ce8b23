// Which kind of session serves a client connection, decided by the protocol ALPN agreed on
// (context.alpn): HTTP/2 for 'h2', HTTP/1.1 otherwise (http/1.1, no ALPN, plaintext).
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { ClientConnection, type ClientConnectionOptions } from '../http1/client-connection.js';
import { Http2ClientSession } from '../http2/client-session.js';
import { h2Engine } from '../http2/native/h2-engine.js';
import type { Http2SessionOptions } from '../http2/session-options.js';
import type { ConnectionContext } from '../session/connection-context.js';
import type { DownstreamSession } from '../session/downstream-session.js';

/** A listener's options for both kinds (the HTTP/1.1 connection reads its own and ignores `http2`). */
export interface DownstreamOptions extends ClientConnectionOptions {
  readonly http2: Http2SessionOptions;
}

export function serveDownstream(socket: Socket, context: ConnectionContext, options: DownstreamOptions): DownstreamSession {
  // h2 is offered only where the engine was built (servedAlpn).
  if (context.alpn === 'h2') return new Http2ClientSession(socket as TLSSocket, context, options.http2, h2Engine!);
  return new ClientConnection(socket, options, context);
}
