// Whether a client whose handshake completed is let in. OpenSSL has verified the chain against the
// listener's trust store (validity, usage, CRL and, with trust_domains, that the chain ends in the
// bundle of the leaf's own trust domain); the listener refuses what it found wrong, and what
// OpenSSL cannot check: the X.509-SVID rules, a SPIFFE ID where one is required, a trust domain
// without a bundle, and the lifecycle's own checks (stale CRL, expiry, revocation on resumed sessions).
import type { PeerIdentity } from '../identity/peer-identity.js';
import { isNameConstraintViolation } from '../identity/trust-domain-store.js';
import { certReasonFromOpenssl, type CertReason } from '../reasons.js';
import type { ServerTlsState } from './server-tls-state.js';

/** Why OpenSSL's verification failed, as a reason: on a trust_domains listener a name-constraint violation is a trust domain mismatch. */
export function verificationReason(code: string | null | undefined, state: Pick<ServerTlsState, 'trustDomains'>): CertReason {
  return state.trustDomains !== undefined && isNameConstraintViolation(code) ? 'trust_domain_mismatch' : certReasonFromOpenssl(code);
}

/** Why a client that OpenSSL verified is refused, or undefined: per handshake, so a few field reads and a set lookup. */
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
      if (domain === undefined) return `its URI SAN (${identity.uris.join(', ')}) is outside the trust domains its chain's CA vouches for`;
      if (state.trustDomains?.has(domain)) return `its chain does not end in the bundle of trust domain '${domain}'`;
      return `trust domain '${domain}' has no bundle on this listener (trust_domains: ${[...(state.trustDomains ?? [])].join(', ')})`;
    }
    default:
      return undefined;
  }
}
