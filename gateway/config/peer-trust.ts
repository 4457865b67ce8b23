// The CA files that verify a peer, one trust_bundle or a bundle per SPIFFE trust domain
// (trust_domains), listed in one order with the YAML field each comes from, for everything that
// reads them: file checks, the TLS states and their reload. And the trust domain an allow-list
// entry names, for the checks that compare allow-lists with bundles.
import { trustDomainOf } from '../identity/spiffe-id.js';
import type { IdentityPattern, PeerTrust } from './types.js';

export interface TrustFile {
  /** Below the section that holds the trust: `trust_bundle` or `trust_domains.<domain>`. */
  readonly field: string;
  readonly file: string;
  /** Undefined for a trust_bundle, which vouches for any trust domain. */
  readonly trustDomain: string | undefined;
}

export function trustFiles(trust: PeerTrust): TrustFile[] {
  if (trust.trustDomains) return trust.trustDomains.map((d) => ({ field: `trust_domains.${d.trustDomain}`, file: d.bundle, trustDomain: d.trustDomain }));
  return [{ field: 'trust_bundle', file: trust.trustBundle ?? '', trustDomain: undefined }];
}

/** The trust domain whose identities an allow-list entry can match. */
export function trustDomainOfPattern(pattern: IdentityPattern): string | undefined {
  if (pattern.kind === 'trust_domain') return pattern.trustDomain;
  return trustDomainOf(pattern.kind === 'exact' ? pattern.id : pattern.prefix.slice(0, -1));
}
