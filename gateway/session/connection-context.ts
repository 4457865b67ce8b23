// What the gateway knows about a client connection, computed once by the terminate listener at the
// end of the handshake and handed, as a value, to the connection that serves it and on to every
// request it carries (keep-alive requests reuse it). Nothing is stored on the socket.
import type { TLSSocket } from 'node:tls';
import type { XfccDetails } from '../config/types.js';
import type { PeerIdentity } from '../identity/peer-identity.js';

export interface ConnectionContext {
  /** Undefined on a plaintext connection (PERMISSIVE listeners). */
  readonly identity: PeerIdentity | undefined;
  /** The URI SAN of the certificate we served: XFCC `By`. */
  readonly by: string | undefined;
  /** SNI the client sent, lowercased; undefined when it sent none. */
  readonly sni: string | undefined;
  /** The protocol ALPN agreed on ('http/1.1'); undefined when the client offered none (or plaintext). */
  readonly alpn: string | undefined;
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
  /** The access log's fields for this connection (protocol, identity, TLS, remote), once rendered (access-log.ts). */
  logFields?: string;
}

/** Every plaintext connection's context: nothing known, nothing memoized (frozen, shared). */
export const PLAINTEXT_CONNECTION: ConnectionContext = Object.freeze({ identity: undefined, by: undefined, sni: undefined, alpn: undefined, mtls: false });
