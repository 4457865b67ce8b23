// Per-route authorization as data: an allow-list compiled once into sets, checked by one function.
// Default deny: an empty allow-list allows nobody. A denial is a typed value whose reason is a
// stable code (metric label, log field, JSON body).
import type { Authorization } from '../config/types.js';
import type { PeerIdentity } from '../identity/peer-identity.js';

export type AuthorizationDecision =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly reason: 'not_allowed' | 'no_identity' };

const ALLOWED: AuthorizationDecision = { allowed: true };
const NOT_ALLOWED: AuthorizationDecision = { allowed: false, reason: 'not_allowed' };
const NO_IDENTITY: AuthorizationDecision = { allowed: false, reason: 'no_identity' };

export class AuthorizationPolicy {
  readonly #exact = new Set<string>();
  readonly #trustDomains = new Set<string>();
  /** Prefixes end in '/', so `spiffe://td/ns/a/*` never matches `spiffe://td/ns/ab`. */
  readonly #prefixes: string[] = [];
  readonly allowPlaintext: boolean;

  constructor(config: Authorization) {
    for (const pattern of config.allow) {
      if (pattern.kind === 'exact') this.#exact.add(pattern.id);
      else if (pattern.kind === 'trust_domain') this.#trustDomains.add(pattern.trustDomain);
      else this.#prefixes.push(pattern.prefix.endsWith('/') ? pattern.prefix : pattern.prefix + '/');
    }
    this.allowPlaintext = config.allowPlaintext;
  }

  /** `identity` undefined: a plaintext caller on a PERMISSIVE listener. */
  check(identity: PeerIdentity | undefined): AuthorizationDecision {
    if (!identity) return this.allowPlaintext ? ALLOWED : NO_IDENTITY;
    const id = identity.spiffeId;
    if (id === undefined) return NO_IDENTITY;
    if (this.#exact.has(id)) return ALLOWED;
    if (identity.trustDomain !== undefined && this.#trustDomains.has(identity.trustDomain)) return ALLOWED;
    for (const prefix of this.#prefixes) if (id.startsWith(prefix)) return ALLOWED;
    return NOT_ALLOWED;
  }
}
