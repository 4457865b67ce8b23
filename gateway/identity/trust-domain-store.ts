// What OpenSSL trusts for one listener or upstream. With a single trust_bundle, the bundle as it is.
// With a bundle per SPIFFE trust domain (the SPIFFE X.509-SVID rule: an SVID is valid only if it
// chains to the bundle of its own trust domain), OpenSSL must also know which domain each CA may
// vouch for: the gateway makes a private root for this store, and cross-certifies with it every
// self-signed CA of the bundles (same subject, same key, same SKID and constraints) adding a name
// constraint that permits only URI names of that CA's trust domains (RFC 5280 4.2.1.10: for a
// URI, the host part, i.e. the SPIFFE trust domain). The private root is the only trust anchor, so
// every chain OpenSSL accepts passes through a cross-certificate, and a chain whose leaf names
// another trust domain fails in the handshake (X509_V_ERR_PERMITTED_VIOLATION), intermediates the
// peer sent included. Done in OpenSSL because a Node 24 server never sees the intermediates a
// client sent (its own handshake code consumes them), so the gateway cannot walk the chain itself.
// CAs that are not self-signed (intermediates in a bundle) go in as they are, below their root.
import '../../certs/dev-ca.js'; // loads reflect-metadata and sets @peculiar/x509's crypto provider first
import { X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { createCrl, createRootCa, randomSerial, type CertificateAuthority } from '../../certs/dev-ca.js';
import { pemBlocks } from '../../certs/pem-blocks.js';

export interface TrustBundlePem {
  /** Undefined for a trust_bundle. */
  readonly trustDomain: string | undefined;
  readonly pem: string;
}

export interface PeerTrustStore {
  /** The `ca` of the secure context. */
  readonly caPem: string;
  /** A CRL of the private root, empty: with CRLs on, OpenSSL wants one for every certificate of the chain, cross-certificates included. */
  readonly anchorCrlPem: string | undefined;
  /** The CAs of each trust domain's bundle, as configured (trust_domains); undefined for a single trust_bundle, which vouches for any domain. */
  readonly trustDomains: ReadonlyMap<string, readonly X509Certificate[]> | undefined;
}

const NAME_CONSTRAINTS = '2.5.29.30';
const AUTHORITY_KEY_IDENTIFIER = '2.5.29.35';
const EC_SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
const CLOCK_SKEW_MS = 5 * 60_000;
const DAY_MS = 24 * 3600_000;
const OWN_CONSTRAINTS = 'carries name constraints of its own, which trust_domains would replace: list it in a trust_bundle, or its intermediates in trust_domains';

/** A single trust_bundle: OpenSSL trusts it as it is. */
export function singleBundleStore(pem: string): PeerTrustStore {
  return { caPem: pem, anchorCrlPem: undefined, trustDomains: undefined };
}

export async function buildPeerTrustStore(bundles: readonly TrustBundlePem[]): Promise<PeerTrustStore> {
  if (bundles.length === 1 && bundles[0]!.trustDomain === undefined) return singleBundleStore(bundles[0]!.pem);
  // Self-signed CAs by name and key, each with every trust domain it is listed for: a CA of several
  // domains must permit all of them in each of its cross-certificates, or OpenSSL, choosing among
  // certificates of the same name and key, could pick one that permits another domain.
  const roots = new Map<string, { certs: Map<string, X509Certificate>; domains: Set<string> }>();
  const others = new Map<string, X509Certificate>();
  const trustDomains = new Map<string, X509Certificate[]>();
  for (const { trustDomain, pem } of bundles) {
    if (trustDomain === undefined) throw new Error('a trust_bundle cannot be mixed with trust_domains');
    const cas = pemBlocks(pem, 'CERTIFICATE').map((block) => new X509Certificate(block));
    trustDomains.set(trustDomain, cas);
    for (const cert of cas) {
      if (!isSelfSigned(cert)) {
        others.set(cert.fingerprint256, cert);
        continue;
      }
      const key = sameCa(cert);
      const root = roots.get(key) ?? { certs: new Map<string, X509Certificate>(), domains: new Set<string>() };
      root.certs.set(cert.fingerprint256, cert);
      root.domains.add(trustDomain);
      roots.set(key, root);
    }
  }
  const cas = [...roots.values()].flatMap((r) => [...r.certs.values()].map((cert) => ({ cert, domains: [...r.domains] })));
  // The private root outlives every CA it cross-certifies (each cross-certificate keeps its CA's dates).
  const notAfter = new Date(Math.max(Date.now() + DAY_MS, ...cas.map((ca) => Date.parse(ca.cert.validTo))));
  const anchor = await createRootCa({ commonName: 'gatehouse trust domains', notBefore: new Date(Date.now() - CLOCK_SKEW_MS), notAfter });
  const crossed = await Promise.all(cas.map((ca) => crossCertify(anchor, ca.cert, ca.domains)));
  return {
    caPem: [anchor.certPem, ...crossed, ...[...others.values()].map((c) => c.toString() + '\n')].join(''),
    anchorCrlPem: await createCrl(anchor, [], { nextUpdate: notAfter }),
    trustDomains,
  };
}

/** The CRLs for the secure context: every one of the file (given one string, Node loads only the first), and the store's own. */
export function opensslCrls(crlPem: string | undefined, store: PeerTrustStore): string[] | undefined {
  if (crlPem === undefined) return undefined;
  const crls = pemBlocks(crlPem, 'X509 CRL');
  return store.anchorCrlPem === undefined ? crls : [...crls, store.anchorCrlPem];
}

/**
 * Whether a connection failed on X509_V_ERR_PERMITTED_VIOLATION, which with trust_domains means the
 * leaf names a trust domain its chain's CA may not vouch for. Node has no code of its own for it
 * (UNSPECIFIED, like a few others), but its error carries OpenSSL's text.
 */
export function isPermittedSubtreeViolation(err: { readonly code?: string; readonly message: string }): boolean {
  return (err.code === 'UNSPECIFIED' || err.code === 'PERMITTED_VIOLATION') && err.message === 'permitted subtree violation';
}

/** Whether `ca` issued `cert` (name and signature). */
export function issued(ca: X509Certificate, cert: X509Certificate): boolean {
  return cert.checkIssued(ca) && cert.verify(ca.publicKey);
}

/** Why a CA of a trust_domains bundle cannot be constrained to its trust domain, if it cannot. */
export function unconstrainableProblem(ca: X509Certificate): string | undefined {
  return isSelfSigned(ca) && hasNameConstraints(new x509.X509Certificate(ca.raw)) ? OWN_CONSTRAINTS : undefined;
}

function hasNameConstraints(cert: x509.X509Certificate): boolean {
  return cert.extensions.some((e) => e.type === NAME_CONSTRAINTS);
}

function isSelfSigned(cert: X509Certificate): boolean {
  return issued(cert, cert);
}

/** Certificates of one CA: the same name and key (a root re-issued with new dates is the same CA). */
function sameCa(cert: X509Certificate): string {
  return `${cert.subject}\n${cert.publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`;
}

/** `ca`'s subject, key and extensions, issued by `anchor`, permitted only URI names of `trustDomains`. */
async function crossCertify(anchor: CertificateAuthority, ca: X509Certificate, trustDomains: readonly string[]): Promise<string> {
  const original = new x509.X509Certificate(ca.raw);
  if (hasNameConstraints(original)) throw new Error(`CA '${original.subject}' ${OWN_CONSTRAINTS}`);
  const kept = original.extensions.filter((e) => e.type !== AUTHORITY_KEY_IDENTIFIER).map((e) => new x509.Extension(e.type, e.critical, e.value));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: original.subjectName,
    issuer: anchor.cert.subjectName,
    notBefore: original.notBefore,
    notAfter: original.notAfter,
    publicKey: original.publicKey,
    signingKey: anchor.key,
    signingAlgorithm: EC_SIGN,
    extensions: [...kept, await x509.AuthorityKeyIdentifierExtension.create(anchor.cert), new x509.Extension(NAME_CONSTRAINTS, true, permittedUriHosts(trustDomains))],
  });
  return cert.toString('pem') + '\n';
}

/** NameConstraints ::= SEQUENCE { permittedSubtrees [0] SEQUENCE OF GeneralSubtree { base uniformResourceIdentifier [6] } } */
function permittedUriHosts(hosts: readonly string[]): Buffer {
  const subtrees = hosts.map((host) => der(0x30, der(0x86, Buffer.from(host, 'ascii'))));
  return der(0x30, der(0xa0, ...subtrees));
}

/** One DER TLV. */
function der(tag: number, ...contents: Buffer[]): Buffer {
  const body = Buffer.concat(contents);
  const length: number[] = [];
  for (let n = body.length; n > 0; n >>= 8) length.unshift(n & 0xff);
  const header = body.length < 0x80 ? [tag, body.length] : [tag, 0x80 | length.length, ...length];
  return Buffer.concat([Buffer.from(header), body]);
}
