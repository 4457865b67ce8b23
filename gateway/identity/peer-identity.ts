// The verified identity of a TLS peer, extracted once per certificate (cached by SHA-256
// fingerprint, so a client reconnecting with the same certificate costs a map lookup) and stored
// on its connection. Also checks the X.509-SVID rules OpenSSL does not: one URI SAN, leaf not a CA.
import type { X509Certificate } from 'node:crypto';
import { checkSpiffeId } from './spiffe-id.js';
import { parseSubjectAltNames } from './subject-alt-names.js';

export interface PeerIdentity {
  /** The SPIFFE ID (the single URI SAN), when the certificate is an X.509-SVID. */
  readonly spiffeId: string | undefined;
  readonly trustDomain: string | undefined;
  readonly uris: readonly string[];
  readonly dnsNames: readonly string[];
  /** Subject in RFC 2253 order ("CN=x,O=y"), as Envoy writes it in XFCC. */
  readonly subject: string;
  /** Lowercase hex SHA-256 of the DER certificate (XFCC `Hash`). */
  readonly hash: string;
  readonly serialNumber: string;
  readonly notAfter: Date;
  readonly cert: X509Certificate;
  /** Why this certificate is not a valid X.509-SVID, if it is not. */
  readonly svidProblem: string | undefined;
  /** Per-identity memo for derived strings (e.g. XFCC elements), filled by their owners. */
  readonly memo: Map<string, string>;
}

function svidProblem(cert: X509Certificate, uris: readonly string[]): string | undefined {
  if (cert.ca) return 'leaf certificate is a CA (basicConstraints CA:TRUE)';
  if (uris.length > 1) return `an X.509-SVID has exactly one URI SAN, this one has ${uris.length}`;
  const spiffe = uris[0];
  if (spiffe?.startsWith('spiffe://')) {
    const check = checkSpiffeId(spiffe);
    if (!check.ok) return `invalid SPIFFE ID '${spiffe}': ${check.problem}`;
  }
  return undefined;
}

export function identityOf(cert: X509Certificate): PeerIdentity {
  const sans = parseSubjectAltNames(cert.subjectAltName);
  const problem = svidProblem(cert, sans.uris);
  const uri = problem === undefined ? sans.uris[0] : undefined;
  const check = uri?.startsWith('spiffe://') ? checkSpiffeId(uri) : undefined;
  return {
    spiffeId: check?.ok ? uri : undefined,
    trustDomain: check?.ok ? check.trustDomain : undefined,
    uris: sans.uris,
    dnsNames: sans.dns,
    subject: cert.subject.split('\n').reverse().join(','),
    hash: cert.fingerprint256.replaceAll(':', '').toLowerCase(),
    serialNumber: cert.serialNumber,
    notAfter: new Date(cert.validTo),
    cert,
    svidProblem: problem,
    memo: new Map(),
  };
}

/** Bounded cache of identities by certificate fingerprint; oldest entries are dropped first. */
export class IdentityCache {
  readonly #entries = new Map<string, PeerIdentity>();

  constructor(private readonly capacity = 10_000) {}

  get(cert: X509Certificate): PeerIdentity {
    const key = cert.fingerprint256;
    const hit = this.#entries.get(key);
    if (hit) return hit;
    const identity = identityOf(cert);
    if (this.#entries.size >= this.capacity) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(key, identity);
    return identity;
  }

  get size(): number {
    return this.#entries.size;
  }
}
