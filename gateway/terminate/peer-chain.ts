// The client's certificate chain as PEM, leaf first, for XFCC `Chain`: built once per connection,
// when a route first asks for it. Node reports the chain as it verified it: the certificates the
// client sent, completed with issuers from the listener's trust bundle. The self-signed root at
// its end is left out, as clients leave it out of what they send (Envoy's Chain is what the client
// sent). Node 24.21 loses the intermediates the client sent by the time a server can ask
// (nodejs/node#65579): there, an intermediate appears only when the trust bundle holds it.
import { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';

/** A chain longer than this is not a certificate chain OpenSSL verified. */
const MAX_CHAIN = 16;

export function peerChainPem(socket: TLSSocket | undefined): string {
  if (socket === undefined) return '';
  let cert: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  let pem = '';
  for (let depth = 0; depth < MAX_CHAIN && cert?.raw !== undefined; depth++) {
    const issuer: DetailedPeerCertificate | undefined = cert.issuerCertificate;
    if (issuer === cert && depth > 0) break; // the self-signed root (Node links it to itself)
    pem += new X509Certificate(cert.raw).toString();
    if (issuer === cert) break;
    cert = issuer;
  }
  return pem;
}
