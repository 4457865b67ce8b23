// What the gateway knows about a client connection, computed once at the end of the handshake and
// stored on the socket: every request on a keep-alive connection reuses it.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { XfccDetails } from '../config/types.js';
import type { PeerIdentity } from '../identity/peer-identity.js';

const CONTEXT = Symbol('gatehouse.connection');

export interface ConnectionContext {
  /** Undefined on a plaintext connection (PERMISSIVE listeners). */
  readonly identity: PeerIdentity | undefined;
  /** The URI SAN of the certificate we served: XFCC `By`. */
  readonly by: string | undefined;
  /** SNI the client sent, lowercased; undefined when it sent none. */
  readonly sni: string | undefined;
  readonly mtls: boolean;
  /** The TLS connection, for facts read only when a route asks for them (the peer chain). */
  readonly tlsSocket?: TLSSocket;
  /** The last XFCC element built for this connection, and for which details (routes share them). */
  xfcc?: { readonly details: XfccDetails; readonly element: string };
  /** The client's certificate chain as PEM (peer-chain.ts), once a route asked for XFCC `Chain`. */
  chainPem?: string;
  /** The last Host value a request on this connection sent, found valid, and its normalized form (host-header.ts). */
  hostValue?: string;
  host?: string;
}

const PLAINTEXT: ConnectionContext = Object.freeze({ identity: undefined, by: undefined, sni: undefined, mtls: false });

export function setConnectionContext(socket: Socket, context: ConnectionContext): void {
  (socket as unknown as Record<symbol, ConnectionContext>)[CONTEXT] = context;
}

export function connectionContext(socket: Socket): ConnectionContext {
  return (socket as unknown as Record<symbol, ConnectionContext | undefined>)[CONTEXT] ?? PLAINTEXT;
}
