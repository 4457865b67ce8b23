// Explains a certificate chain the way a TLS peer would judge it: builds and verifies the
// signature path to a root in the trust bundle, checks CRLs, validity, key usages and the
// X.509-SVID rules, and returns every problem found with a stable reason code and an explanation
// meant to answer "why is my mTLS failing?". No I/O: `certs inspect` prints the result and the
// gateway can call it to explain a rejection in its logs.
import './dev-ca.js'; // loads reflect-metadata and sets @peculiar/x509's crypto provider first
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
import { identityOf } from '../gateway/identity/peer-identity.js';
import { parseSubjectAltNames } from '../gateway/identity/subject-alt-names.js';
import type { CertReason } from '../gateway/reasons.js';
import { humanDuration } from './durations.js';
import { pemBlocks } from './pem-blocks.js';

export type InspectReason = Extract<
  CertReason,
  'unknown_ca' | 'bad_usage' | 'revoked' | 'crl_stale' | 'expired' | 'not_yet_valid' | 'bad_svid' | 'identity_mismatch'
>;

export type TlsRole = 'client' | 'server';

export interface InspectInput {
  /** PEM: the leaf first, then the intermediates it is presented with. */
  readonly chainPem: string;
  /** PEM roots (and any CAs) the verifier trusts; without it the chain is not checked against a root. */
  readonly trustBundlePem?: string;
  /** One or more PEM CRLs; without it revocation is not checked. */
  readonly crlPem?: string;
  readonly expectId?: string;
  readonly expectDns?: string;
  /** The side the certificate is presented on: a client needs clientAuth, a server serverAuth. */
  readonly usage?: TlsRole;
  /** Default: now. */
  readonly now?: Date;
}

export interface CertificateSummary {
  readonly role: 'leaf' | 'intermediate' | 'root' | 'trust anchor';
  readonly subject: string;
  readonly issuer: string;
  /** Lowercase hex, as in CRLs and `certs issue` output. */
  readonly serialNumber: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly keyType: string;
  /** SHA-256 of the DER certificate, colon-separated uppercase hex (as openssl prints it). */
  readonly sha256: string;
  readonly isCa: boolean;
  readonly selfSigned: boolean;
  readonly keyUsage: readonly string[] | undefined;
  readonly extendedKeyUsage: readonly string[] | undefined;
  readonly uris: readonly string[];
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
}

export interface CrlSummary {
  readonly issuer: string;
  readonly crlNumber: number | undefined;
  readonly thisUpdate: string;
  readonly nextUpdate: string | undefined;
  readonly revokedCount: number;
}

export interface Finding {
  readonly reason: InspectReason;
  readonly explanation: string;
}

export type Verdict = { readonly ok: true } | { readonly ok: false; readonly reason: InspectReason; readonly explanation: string };

export type TrustResult =
  | { readonly status: 'not_checked' }
  | { readonly status: 'trusted'; readonly anchor: CertificateSummary }
  | { readonly status: 'untrusted' };

export interface CertificateInspection {
  readonly now: string;
  /** The certificates of the chain file, in file order. */
  readonly chain: readonly CertificateSummary[];
  readonly spiffeId: string | undefined;
  readonly trust: TrustResult;
  readonly crls: readonly CrlSummary[];
  /** Every problem found, in the order a TLS verifier meets them: chain, usage, revocation, validity, SVID, identity. */
  readonly findings: readonly Finding[];
  /** What was not checked, or could fail elsewhere without being a verdict here. */
  readonly notes: readonly string[];
  /** The first finding, or ok. */
  readonly verdict: Verdict;
}

/** The input itself is unusable (no certificate, unparseable PEM): not a verdict about a certificate. */
export class CertificateInputError extends Error {
  override readonly name = 'CertificateInputError';
}

interface Cert {
  readonly node: X509Certificate;
  readonly asn: x509.X509Certificate;
  readonly summary: CertificateSummary;
  readonly label: string;
}

const KEY_USAGE_NAMES: readonly [x509.KeyUsageFlags, string][] = [
  [x509.KeyUsageFlags.digitalSignature, 'digitalSignature'],
  [x509.KeyUsageFlags.nonRepudiation, 'nonRepudiation'],
  [x509.KeyUsageFlags.keyEncipherment, 'keyEncipherment'],
  [x509.KeyUsageFlags.dataEncipherment, 'dataEncipherment'],
  [x509.KeyUsageFlags.keyAgreement, 'keyAgreement'],
  [x509.KeyUsageFlags.keyCertSign, 'keyCertSign'],
  [x509.KeyUsageFlags.cRLSign, 'cRLSign'],
  [x509.KeyUsageFlags.encipherOnly, 'encipherOnly'],
  [x509.KeyUsageFlags.decipherOnly, 'decipherOnly'],
];

const EKU_NAMES: Readonly<Record<string, string>> = {
  [x509.ExtendedKeyUsage.serverAuth]: 'serverAuth',
  [x509.ExtendedKeyUsage.clientAuth]: 'clientAuth',
  [x509.ExtendedKeyUsage.codeSigning]: 'codeSigning',
  [x509.ExtendedKeyUsage.emailProtection]: 'emailProtection',
  [x509.ExtendedKeyUsage.timeStamping]: 'timeStamping',
  [x509.ExtendedKeyUsage.ocspSigning]: 'OCSPSigning',
};

const CURVE_NAMES: Readonly<Record<string, string>> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

function keyType(cert: X509Certificate): string {
  const key = cert.publicKey;
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec':
      return `ECDSA ${CURVE_NAMES[details.namedCurve ?? ''] ?? details.namedCurve ?? '?'}`;
    case 'rsa':
    case 'rsa-pss':
      return `RSA ${details.modulusLength ?? '?'}`;
    default:
      return key.asymmetricKeyType ?? 'unknown';
  }
}

function signed(child: X509Certificate, parent: X509Certificate): boolean {
  return child.checkIssued(parent) && child.verify(parent.publicKey);
}

function parseCert(pem: string, role: CertificateSummary['role'], where: string): Cert {
  let node: X509Certificate;
  let asn: x509.X509Certificate;
  try {
    node = new X509Certificate(pem);
    asn = new x509.X509Certificate(pem);
  } catch (err) {
    throw new CertificateInputError(`${where} cannot be parsed: ${(err as Error).message}`);
  }
  const selfSigned = signed(node, node);
  const ku = asn.getExtension(x509.KeyUsagesExtension);
  const eku = asn.getExtension(x509.ExtendedKeyUsageExtension);
  const sans = parseSubjectAltNames(node.subjectAltName);
  // The file position says what a certificate should be; self-signing says what it is.
  const effectiveRole = role === 'intermediate' && selfSigned ? 'root' : role === 'trust anchor' && !selfSigned ? 'intermediate' : role;
  const summary: CertificateSummary = {
    role: effectiveRole,
    subject: asn.subject,
    issuer: asn.issuer,
    serialNumber: asn.serialNumber.toLowerCase(),
    notBefore: asn.notBefore.toISOString(),
    notAfter: asn.notAfter.toISOString(),
    keyType: keyType(node),
    sha256: node.fingerprint256,
    isCa: node.ca,
    selfSigned,
    keyUsage: ku ? KEY_USAGE_NAMES.filter(([flag]) => (ku.usages & flag) !== 0).map(([, name]) => name) : undefined,
    extendedKeyUsage: eku ? eku.usages.map((oid) => EKU_NAMES[String(oid)] ?? String(oid)) : undefined,
    uris: sans.uris,
    dnsNames: sans.dns,
    ipAddresses: sans.ips,
  };
  return { node, asn, summary, label: `${effectiveRole} "${asn.subject}"` };
}

function parseCerts(pem: string, what: string, role: (i: number) => CertificateSummary['role']): Cert[] {
  const blocks = pemBlocks(pem, 'CERTIFICATE');
  if (blocks.length === 0) throw new CertificateInputError(`${what} holds no PEM certificate`);
  return blocks.map((block, i) => parseCert(block, role(i), `certificate ${i + 1} of ${what}`));
}

const CRL_NUMBER_OID = '2.5.29.20';

/** The CRL number extension is a DER INTEGER; small enough for a JS number in practice. */
function crlNumberOf(crl: x509.X509Crl): number | undefined {
  const ext = crl.getExtension(CRL_NUMBER_OID);
  if (!ext) return undefined;
  const der = new Uint8Array(ext.value);
  if (der[0] !== 0x02 || der.length < 3 || der[1]! > 7) return undefined;
  let n = 0;
  for (const byte of der.subarray(2, 2 + der[1]!)) n = n * 256 + byte;
  return n;
}

function parseCrls(pem: string): x509.X509Crl[] {
  const blocks = pemBlocks(pem, 'X509 CRL');
  if (blocks.length === 0) throw new CertificateInputError('the CRL file holds no PEM "X509 CRL" block');
  return blocks.map((block, i) => {
    try {
      return new x509.X509Crl(block);
    } catch (err) {
      throw new CertificateInputError(`CRL ${i + 1} of the CRL file cannot be parsed: ${(err as Error).message}`);
    }
  });
}

interface PathResult {
  /** From the leaf up, each certificate signed by the next; ends at a root when one was reached. */
  readonly path: Cert[];
  /** The self-signed root of the bundle the path ends at, when it does (then the last of `path`). */
  readonly anchor: Cert | undefined;
}

/**
 * Builds the path as OpenSSL does: each issuer is taken from the bundle first, then from the
 * chain file, by name, key identifier and a verified signature, until a self-signed certificate.
 * The chain is trusted only if that root is in the bundle: Node does not accept a path that stops
 * at a bundled intermediate (no partial chains).
 */
function buildPath(chain: readonly Cert[], bundle: readonly Cert[]): PathResult {
  const path = [chain[0]!];
  const used = new Set(path);
  const candidates = [...bundle, ...chain];
  // Each step uses up one candidate, so this ends within candidates.length steps.
  for (;;) {
    const current = path[path.length - 1]!;
    if (current.summary.selfSigned) {
      const anchor = bundle.find((b) => b.summary.sha256 === current.summary.sha256);
      return { path, anchor };
    }
    const next = candidates.find((c) => !used.has(c) && signed(current.node, c.node));
    if (!next) return { path, anchor: undefined };
    used.add(next);
    path.push(next);
  }
}

const quoteList = (names: readonly string[]) => names.map((n) => `"${n}"`).join(', ');

function explainUntrusted(stuck: Cert, chain: readonly Cert[], anchors: readonly Cert[]): string {
  const issuer = stuck.asn.issuer;
  if (stuck.summary.selfSigned) {
    return `${stuck.label} is self-signed and not in the trust bundle (the bundle holds ${quoteList(anchors.map((a) => a.asn.subject))})`;
  }
  if (anchors.some((a) => a.asn.subject === issuer)) {
    return (
      `${stuck.label} names issuer "${issuer}" and the trust bundle holds a CA of that name, but its key did not sign ` +
      `this certificate: a different CA with the same name (was the CA re-created?); re-issue the certificate or update the bundle`
    );
  }
  if (chain.some((c) => c !== stuck && c.asn.subject === issuer)) {
    return `${stuck.label} names issuer "${issuer}", but the certificate of that name in the chain file did not sign it`;
  }
  const hint =
    stuck === chain[0] && chain.length === 1
      ? `; if "${issuer}" is an intermediate CA, the chain file must carry it after the leaf`
      : '';
  return (
    `${stuck.label} was issued by "${issuer}", which is not in the trust bundle ` +
    `(it holds ${quoteList(anchors.map((a) => a.asn.subject))}): the peer trusts a different CA${hint}`
  );
}

function checkCaUsage(cert: Cert): string | undefined {
  if (!cert.summary.isCa) return `${cert.label} signs the certificate below it but is not a CA (basicConstraints CA:FALSE)`;
  const ku = cert.summary.keyUsage;
  if (ku && !ku.includes('keyCertSign')) return `${cert.label} is a CA whose key usage lacks keyCertSign`;
  return undefined;
}

function checkLeafUsage(leaf: Cert, usage: TlsRole | undefined): string | undefined {
  const { keyUsage, extendedKeyUsage } = leaf.summary;
  if (keyUsage && !keyUsage.includes('digitalSignature')) {
    return `the leaf's key usage (${keyUsage.join(', ')}) lacks digitalSignature, which a TLS handshake signature needs`;
  }
  if (!extendedKeyUsage) return undefined;
  const has = extendedKeyUsage.join(', ') || 'empty';
  if (usage) {
    const needed = usage === 'client' ? 'clientAuth' : 'serverAuth';
    if (!extendedKeyUsage.includes(needed)) {
      return `the leaf's extended key usage is ${has}; a TLS ${usage} certificate needs ${needed} (gatehouse certs issue --${usage}, or neither flag for both)`;
    }
  } else if (!extendedKeyUsage.includes('serverAuth') && !extendedKeyUsage.includes('clientAuth')) {
    return `the leaf's extended key usage is ${has}: usable neither as a TLS client (clientAuth) nor as a server (serverAuth)`;
  }
  return undefined;
}

async function checkRevocation(
  certs: readonly Cert[],
  issuerOf: (i: number) => Cert | undefined,
  crls: readonly x509.X509Crl[],
  now: Date,
  findings: Finding[],
  notes: string[],
): Promise<void> {
  for (const [i, cert] of certs.entries()) {
    const issuer = issuerOf(i);
    const named = crls.filter((crl) => crl.issuer === cert.asn.issuer);
    let crl: x509.X509Crl | undefined;
    if (issuer) {
      for (const candidate of named) {
        if (await candidate.verify({ publicKey: issuer.asn })) {
          crl = candidate;
          break;
        }
      }
      if (!crl && named.length > 0) {
        notes.push(`the CRL from "${cert.asn.issuer}" is not signed by the key of ${issuer.label} (a CRL of a re-created CA?); it was ignored`);
      }
    } else if (named.length > 0) {
      crl = named[0];
      notes.push(`the CRL from "${cert.asn.issuer}" was used without checking its signature: its issuer's certificate is not available`);
    }
    if (!crl) {
      notes.push(
        `no CRL from "${cert.asn.issuer}" (issuer of ${cert.label}): a verifier that checks the whole chain, as Node's \`crl\` option does, fails with "unable to get certificate CRL"`,
      );
      continue;
    }
    if (crl.nextUpdate && crl.nextUpdate.getTime() < now.getTime()) {
      findings.push({
        reason: 'crl_stale',
        explanation: `the CRL from "${crl.issuer}" expired ${humanDuration(now.getTime() - crl.nextUpdate.getTime())} ago (nextUpdate ${crl.nextUpdate.toISOString()}): re-sign it (gatehouse certs revoke writes a fresh one)`,
      });
    }
    if (crl.thisUpdate.getTime() > now.getTime()) {
      notes.push(`the CRL from "${crl.issuer}" is not valid for another ${humanDuration(crl.thisUpdate.getTime() - now.getTime())}: check the clock`);
    }
    const entry = crl.findRevoked(cert.asn);
    if (entry) {
      const reason = entry.reason === undefined ? '' : `, reason ${x509.X509CrlReason[entry.reason]}`;
      findings.push({
        reason: 'revoked',
        explanation: `${cert.label} (serial ${cert.summary.serialNumber}) was revoked on ${entry.revocationDate.toISOString()}${reason}, by the CRL from "${crl.issuer}"`,
      });
    }
  }
}

function checkValidity(cert: Cert, now: Date): Finding | undefined {
  const t = now.getTime();
  const { notBefore, notAfter } = cert.asn;
  if (notBefore.getTime() > t) {
    return {
      reason: 'not_yet_valid',
      explanation:
        `${cert.label} is not valid for another ${humanDuration(notBefore.getTime() - t)} (notBefore ${notBefore.toISOString()}, now ${now.toISOString()}): ` +
        `check the clock on this machine and on the one that issued it`,
    };
  }
  if (notAfter.getTime() < t) {
    const renew = cert.summary.role === 'leaf' ? 'issue a new certificate' : 'renew this CA and re-issue what it signed';
    return {
      reason: 'expired',
      explanation: `${cert.label} expired ${humanDuration(t - notAfter.getTime())} ago (notAfter ${notAfter.toISOString()}): ${renew}`,
    };
  }
  return undefined;
}

function sanList(leaf: CertificateSummary): string {
  const parts = [
    ...leaf.uris.map((u) => `URI:${u}`),
    ...leaf.dnsNames.map((d) => `DNS:${d}`),
    ...leaf.ipAddresses.map((ip) => `IP:${ip}`),
  ];
  return parts.length ? parts.join(', ') : 'no subject alternative names';
}

export async function inspectCertificate(input: InspectInput): Promise<CertificateInspection> {
  const now = input.now ?? new Date();
  const chain = parseCerts(input.chainPem, 'the certificate file', (i) => (i === 0 ? 'leaf' : 'intermediate'));
  const anchors = input.trustBundlePem === undefined ? undefined : parseCerts(input.trustBundlePem, 'the trust bundle', () => 'trust anchor');
  const crls = input.crlPem === undefined ? undefined : parseCrls(input.crlPem);
  const leaf = chain[0]!;
  const findings: Finding[] = [];
  const notes: string[] = [];

  // 1. The signature path, as OpenSSL builds it.
  const { path, anchor } = buildPath(chain, anchors ?? []);
  let trust: TrustResult;
  if (!anchors) {
    trust = { status: 'not_checked' };
    notes.push('no trust bundle given: the chain was not checked against a root (--ca BUNDLE)');
  } else if (anchor) {
    trust = { status: 'trusted', anchor: anchor.summary };
  } else {
    trust = { status: 'untrusted' };
    findings.push({ reason: 'unknown_ca', explanation: explainUntrusted(path[path.length - 1]!, chain, anchors) });
  }
  const unused = chain.filter((c) => !path.some((p) => p.summary.sha256 === c.summary.sha256));
  if (anchor && unused.length > 0) notes.push(`not part of the verified path: ${unused.map((c) => c.label).join(', ')}`);

  // 2. Key usages: every CA on the path must be one; the leaf must fit the side it is used on.
  for (const ca of path.slice(1)) {
    const problem = checkCaUsage(ca);
    if (problem) findings.push({ reason: 'bad_usage', explanation: problem });
  }
  const leafUsage = checkLeafUsage(leaf, input.usage);
  if (leafUsage) findings.push({ reason: 'bad_usage', explanation: leafUsage });

  // 3. Revocation of every certificate below the anchor, by its issuer's CRL.
  if (crls && anchors && !anchor) {
    notes.push('revocation was not checked: the chain does not reach a trusted root, so no CRL can be verified');
  } else if (crls) {
    // A self-signed root is not looked up: a CRL it signs about itself would prove nothing.
    const below = path.filter((c) => !c.summary.selfSigned);
    await checkRevocation(below, (i) => path[i + 1], crls, now, findings, notes);
  } else {
    notes.push('no CRL given: revocation was not checked (--crl FILE)');
  }

  // 4. Validity periods: of the verified path, or of everything given when there is none.
  for (const cert of anchor ? path : chain) {
    const finding = checkValidity(cert, now);
    if (finding) findings.push(finding);
  }

  // 5. X.509-SVID rules, the same ones the gateway applies to its peers.
  const identity = identityOf(leaf.node);
  if (identity.svidProblem) {
    findings.push({ reason: 'bad_svid', explanation: identity.svidProblem });
  } else if (leaf.summary.keyUsage?.some((u) => u === 'keyCertSign' || u === 'cRLSign')) {
    findings.push({ reason: 'bad_svid', explanation: 'an X.509-SVID leaf must not have keyCertSign or cRLSign key usage' });
  } else if (identity.uris.length === 0) {
    notes.push('no URI SAN: not an X.509-SVID, it carries no SPIFFE ID');
  } else if (!identity.spiffeId) {
    notes.push(`the URI SAN ${identity.uris[0]} is not a SPIFFE ID`);
  }

  // 6. The identity the caller expects.
  if (input.expectId !== undefined && identity.spiffeId !== input.expectId) {
    const present = identity.spiffeId ?? (identity.uris.length ? `URI SANs ${identity.uris.join(', ')} but no valid SPIFFE ID` : 'no URI SAN');
    findings.push({ reason: 'identity_mismatch', explanation: `expected SPIFFE ID ${input.expectId}, the certificate has ${present}` });
  }
  if (input.expectDns !== undefined) {
    const name = input.expectDns;
    const matched = isIP(name) ? leaf.node.checkIP(name) : leaf.node.checkHost(name, { subject: 'never' });
    if (matched === undefined) {
      findings.push({ reason: 'identity_mismatch', explanation: `expected ${isIP(name) ? 'IP address' : 'DNS name'} ${name}, the certificate has ${sanList(leaf.summary)}` });
    }
  }

  const first = findings[0];
  return {
    now: now.toISOString(),
    chain: chain.map((c) => c.summary),
    spiffeId: identity.spiffeId,
    trust,
    crls: (crls ?? []).map((crl) => ({
      issuer: crl.issuer,
      crlNumber: crlNumberOf(crl),
      thisUpdate: crl.thisUpdate.toISOString(),
      nextUpdate: crl.nextUpdate?.toISOString(),
      revokedCount: crl.entries.length,
    })),
    findings,
    notes,
    verdict: first ? { ok: false, reason: first.reason, explanation: first.explanation } : { ok: true },
  };
}
