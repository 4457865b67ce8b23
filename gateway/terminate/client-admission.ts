// Whether a client whose handshake completed is let in. OpenSSL has verified the chain against the
// listener's trust store (validity, usage, CRL and, with trust_domains, that the chain ends in the
// bundle of the leaf's own trust domain); the listener refuses what it found wrong, and what
// OpenSSL cannot check: the X.509-SVID rules, a SPIFFE ID where one is required, a trust domain
// without a bundle, and the lifecycle's own checks (stale CRL, expiry, revocation on resumed sessions).
import type { PeerIdentity } from '../identity/peer-identity.js';
import { issued } from '../identity/trust-domain-store.js';
import { certReasonFromOpenssl, type CertReason } from '../reasons.js';
import type { ServerTlsState } from './server-tls-state.js';

/**
 * Why OpenSSL refused a client's chain, as a reason. With trust_domains, its name-constraint verdict
 * (a leaf naming a trust domain its chain's CA may not vouch for) reaches a server only as Node's
 * UNSPECIFIED, which a few other verdicts share (keys below the security level, for one): the
 * certificate tells them apart. A leaf that its own trust domain's CA issued did not cross domains.
 */
export function verificationReason(code: string | null | undefined, identity: PeerIdentity, state: Pick<ServerTlsState, 'trustDomains'>): CertReason {
  const domains = state.trustDomains;
  if (domains === undefined || (code !== 'UNSPECIFIED' && code !== 'PERMITTED_VIOLATION')) return certReasonFromOpenssl(code);
  if (identity.svidProblem !== undefined) return 'bad_svid';
  if (identity.spiffeId === undefined) return 'no_spiffe_id';
  const own = domains.get(identity.trustDomain!);
  return own?.some((ca) => issued(ca, identity.cert)) ? certReasonFromOpenssl(code) : 'trust_domain_mismatch';
}

/** Why a client that OpenSSL verified is refused, or undefined: per handshake, so a few field reads and a map lookup. */
export function clientRefusal(identity: PeerIdentity, state: Pick<ServerTlsState, 'requireSpiffeId' | 'trustDomains' | 'admit'>): CertReason | undefined {
  if (identity.svidProblem !== undefined) return 'bad_svid';
  if (identity.spiffeId === undefined) {
    if (state.requireSpiffeId) return 'no_spiffe_id';
  } else if (state.trustDomains !== undefined && !state.trustDomains.has(identity.trustDomain!)) {
    return 'trust_domain_mismatch';
  }
  return state.admit?.(identity);
}

/** What the log says about a refusal, beyond the reason. */
export function refusalDetail(reason: CertReason, identity: PeerIdentity, state: Pick<ServerTlsState, 'trustDomains'>): string | undefined {
  switch (reason) {
    case 'bad_svid':
      return identity.svidProblem;
    case 'no_spiffe_id':
      return identity.uris.length === 0 ? 'the certificate has no URI SAN' : `the certificate's URI SAN is not a SPIFFE ID: ${identity.uris.join(', ')}`;
    case 'trust_domain_mismatch': {
      const domain = identity.trustDomain;
      if (state.trustDomains?.has(domain!)) return `its chain does not end in the bundle of trust domain '${domain}'`;
      return `trust domain '${domain}' has no bundle on this listener (trust_domains: ${[...(state.trustDomains?.keys() ?? [])].join(', ')})`;
    }
    default:
      return undefined;
  }
}
