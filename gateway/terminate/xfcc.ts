// x-forwarded-client-cert in Envoy's format: elements separated by ',', each a ';'-separated list
// of Key=Value (By, Hash, Cert, Chain, Subject, URI, DNS). Values holding ',', ';', '=' or '"' are
// double-quoted with '"' escaped; Cert and Chain are URL-encoded PEM. Our element is built once per
// (identity, proxy certificate, details) and memoized on the identity; with Chain, which belongs to
// the connection (a client may send its certificate with other intermediates), once per connection.
import type { XfccDetails, XfccMode } from '../config/types.js';
import type { PeerIdentity } from '../identity/peer-identity.js';

export const XFCC_HEADER = 'x-forwarded-client-cert';

function quote(value: string): string {
  return /[,;="]/.test(value) ? `"${value.replaceAll('"', '\\"')}"` : value;
}

function detailsKey(details: XfccDetails): string {
  return `${+details.subject}${+details.uri}${+details.dns}${+details.cert}${+details.chain}`;
}

/** PEM of the peer chain (leaf first), when the caller asks for `Chain`. */
export type ChainPem = () => string;

export function xfccElement(identity: PeerIdentity, by: string | undefined, details: XfccDetails, chain?: ChainPem): string {
  const key = details.chain ? undefined : `xfcc|${by ?? ''}|${detailsKey(details)}`;
  const memo = key === undefined ? undefined : identity.memo.get(key);
  if (memo !== undefined) return memo;
  const parts: string[] = [];
  if (by) parts.push(`By=${quote(by)}`);
  parts.push(`Hash=${identity.hash}`);
  if (details.cert) parts.push(`Cert="${encodeURIComponent(identity.cert.toString())}"`);
  const chainPem = details.chain && chain ? chain() : '';
  if (chainPem !== '') parts.push(`Chain="${encodeURIComponent(chainPem)}"`);
  // Envoy always quotes Subject; an empty subject is left out.
  if (details.subject && identity.subject) parts.push(`Subject="${identity.subject.replaceAll('"', '\\"')}"`);
  if (details.uri) for (const uri of identity.uris) parts.push(`URI=${quote(uri)}`);
  if (details.dns) for (const dns of identity.dnsNames) parts.push(`DNS=${quote(dns)}`);
  // The element is written into the upstream request head as is: no certificate field may split it.
  const element = parts.join(';').replace(/[\r\n\0]/g, (c) => encodeURIComponent(c));
  if (key !== undefined) identity.memo.set(key, element);
  return element;
}

/**
 * The XFCC value to send upstream under `mode`, or undefined to send none. `incoming` is what the
 * client sent (already joined if repeated); `element` builds ours lazily.
 */
export function forwardedClientCert(
  mode: XfccMode,
  incoming: string | undefined,
  mtls: boolean,
  element: () => string,
): string | undefined {
  switch (mode) {
    case 'sanitize':
      return undefined;
    case 'always_forward_only':
      return incoming;
    case 'forward_only':
      return mtls ? incoming : undefined;
    case 'append_forward':
      if (!mtls) return undefined;
      return incoming ? `${incoming},${element()}` : element();
    case 'sanitize_set':
      return mtls ? element() : undefined;
  }
}
