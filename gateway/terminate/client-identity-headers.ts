// Request headers through which proxies in front of an application tell it who the TLS client
// was. An application behind such a proxy believes them; a client that sets one itself claims an
// identity it never proved. The gateway removes every one of them (any case, every duplicate, '_'
// for '-') unless a route trusts its callers to set them (trust_client_identity_headers).
// x-forwarded-client-cert is not here: its route's `xfcc` mode decides what happens to it.

export interface IdentityHeaderName {
  /** Lowercase. */
  readonly name: string;
  readonly prefix: boolean;
  /** Who sets it, for the reader. */
  readonly source: string;
}

const exact = (name: string, source: string): IdentityHeaderName => ({ name, prefix: false, source });
const prefix = (name: string, source: string): IdentityHeaderName => ({ name, prefix: true, source });

export const CLIENT_IDENTITY_HEADERS: readonly IdentityHeaderName[] = [
  exact('client-cert', 'RFC 9440'),
  exact('client-cert-chain', 'RFC 9440'),
  prefix('x-ssl-client-', 'NGINX and HAProxy conventions: -cert, -verify, -s-dn, -i-dn, -dn, -cn, -serial, -fingerprint, -sha1, -notbefore, -notafter'),
  exact('x-ssl-cert', 'HAProxy convention'),
  exact('x-ssl-issuer', 'HAProxy convention'),
  prefix('ssl-client-', 'Apache mod_ssl variables forwarded as headers (SSL_CLIENT_CERT, SSL_CLIENT_S_DN, SSL_CLIENT_VERIFY)'),
  prefix('x-client-cert', 'NGINX convention (X-Client-Cert), Google Cloud load balancers (X-Client-Cert-*)'),
  exact('x-client-dn', 'NGINX convention'),
  exact('x-client-s-dn', 'NGINX convention'),
  exact('x-client-i-dn', 'NGINX convention'),
  exact('x-client-verify', 'NGINX convention'),
  prefix('x-forwarded-tls-client-cert', 'Traefik (X-Forwarded-Tls-Client-Cert, X-Forwarded-Tls-Client-Cert-Info)'),
  prefix('x-amzn-mtls-clientcert', 'AWS Application Load Balancer'),
  exact('x-arr-clientcert', 'Azure App Service'),
];
