// Certificate selection by SNI on a tls.Server, switched on only where there is a choice. With an
// SNICallback, Node pauses every handshake in OpenSSL's certificate callback to ask JavaScript for
// a context; a listener with one certificate has nothing to choose, and that round trip cost ~1.9%
// of the gateway's CPU per new mTLS connection (bench scenario 2, both builds side by side on one
// core, in both orders). Without the callback every handshake gets the server's own context,
// which the TLS state sets to its default certificate with the same trust bundle, CRL and ticket
// keys. Node reads the callback from a private field of the server for each new connection; where
// this Node has no such field, the callback given at creation simply stays on.
import type tls from 'node:tls';

export type SniCallback = NonNullable<tls.TlsOptions['SNICallback']>;

/** Sets the callback new handshakes call (undefined: none); false when this Node cannot change it. */
export function setSniCallback(server: tls.Server, callback: SniCallback | undefined): boolean {
  const field = Object.getOwnPropertySymbols(server).find((s) => s.description === 'snicallback');
  if (field === undefined) return false;
  (server as unknown as Record<symbol, unknown>)[field] = callback;
  return true;
}
