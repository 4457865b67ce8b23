// Strict checks of TLS material before it replaces what is serving: every PEM block complete and
// parseable (OpenSSL silently drops a truncated last CA of a bundle), the key matching its
// certificate, certificates within their validity, CRLs parseable, a CRL from a CA of the trust
// bundle signed by it, and a warning for each bundle CA without a CRL (OpenSSL then refuses every
// client under it with UNABLE_TO_GET_CRL). Errors name the config field, the file and the problem.
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import '../../certs/dev-ca.js'; // loads reflect-metadata and sets @peculiar/x509's crypto provider first
import * as x509 from '@peculiar/x509';
import { normalizeSerial } from './revocation.js';

export class TlsMaterialError extends Error {
  readonly code = 'GATEHOUSE_TLS_MATERIAL_INVALID';
  constructor(
    readonly field: string,
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${field}: ${file}: ${problem}`);
  }
}

/** Where a piece of material came from, for error messages. */
export interface Source {
  readonly field: string;
  readonly file: string;
}

export type CertificateRole = 'server' | 'client' | 'trust_bundle';

export interface LoadedCertificate {
  readonly role: CertificateRole;
  readonly cert: X509Certificate;
}

export interface LoadedCrl {
  readonly file: string;
  /**
   * The trust bundle CA that signed it, when the bundle holds it. Absent for an intermediate CA's
   * CRL: OpenSSL checks its signature against the intermediate the peer presents with its chain.
   */
  readonly issuer?: X509Certificate;
  /** The issuer's name as in logs ("CN=Issuing CA,O=example"). */
  readonly issuerName: string;
  /** The issuer's name as @peculiar/x509 prints it: what a certificate's issuer is compared with. */
  readonly issuerDn: string;
  readonly serials: ReadonlySet<string>;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | undefined;
}

/** OpenSSL refuses a CRL whose thisUpdate is ahead of its clock; allow the usual issuing skew. */
const CRL_CLOCK_SKEW_MS = 5 * 60_000;

interface PemBlock {
  readonly label: string;
  readonly pem: string;
}

const BEGIN = /-----BEGIN ([A-Z0-9 ]+)-----/g;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Every PEM block, refusing a block without its END line or with a damaged body. Text between blocks is allowed. */
function strictPemBlocks(src: Source, text: string, labels: readonly string[]): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const begin of text.matchAll(BEGIN)) {
    const label = begin[1]!;
    const n = blocks.length + 1;
    const bodyStart = begin.index! + begin[0].length;
    const endLine = `-----END ${label}-----`;
    const end = text.indexOf(endLine, bodyStart);
    const nextBegin = text.indexOf('-----BEGIN ', bodyStart);
    if (end === -1 || (nextBegin !== -1 && nextBegin < end)) {
      throw new TlsMaterialError(src.field, src.file, `truncated PEM: block ${n} (${label}) has no END line`);
    }
    const body = text.slice(bodyStart, end).replace(/\s+/g, '');
    if (body.length === 0 || body.length % 4 !== 0 || !BASE64.test(body)) {
      throw new TlsMaterialError(src.field, src.file, `corrupt PEM: block ${n} (${label}) is not valid base64`);
    }
    if (!labels.includes(label)) {
      throw new TlsMaterialError(src.field, src.file, `unexpected PEM block ${n} (${label}); expected ${labels.join(' or ')}`);
    }
    blocks.push({ label, pem: text.slice(begin.index!, end + endLine.length) + '\n' });
  }
  if (blocks.length === 0) throw new TlsMaterialError(src.field, src.file, `no ${labels[0]} PEM block`);
  return blocks;
}

export function parseCertificates(src: Source, text: string): X509Certificate[] {
  return strictPemBlocks(src, text, ['CERTIFICATE']).map((block, i) => {
    try {
      return new X509Certificate(block.pem);
    } catch (err) {
      throw new TlsMaterialError(src.field, src.file, `certificate ${i + 1} does not parse: ${(err as Error).message}`);
    }
  });
}

export function describe(cert: X509Certificate): string {
  return `'${subjectOf(cert)}' (serial ${normalizeSerial(cert.serialNumber)})`;
}

/** RFC 2253 order, as in XFCC and logs: "CN=frontend,O=example". */
export function subjectOf(cert: X509Certificate): string {
  return cert.subject.split('\n').reverse().join(',');
}

/** Why the certificate cannot be used at `now`, or undefined. */
export function validityProblem(cert: X509Certificate, now: number): string | undefined {
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (now < from) return `certificate ${describe(cert)} is not valid until ${new Date(from).toISOString()}`;
  if (now >= to) return `certificate ${describe(cert)} expired at ${new Date(to).toISOString()}`;
  return undefined;
}

/** A certificate chain we present (server or upstream client) and its key: complete, valid now, and matching. */
export function checkPresentedChain(cert: Source & { pem: string }, key: Source & { pem: string }, now: number): X509Certificate[] {
  const chain = parseCertificates(cert, cert.pem);
  for (const c of chain) {
    const problem = validityProblem(c, now);
    if (problem) throw new TlsMaterialError(cert.field, cert.file, problem);
  }
  const [block] = strictPemBlocks(key, key.pem, ['PRIVATE KEY', 'EC PRIVATE KEY', 'RSA PRIVATE KEY', 'ENCRYPTED PRIVATE KEY']);
  if (block!.label === 'ENCRYPTED PRIVATE KEY') throw new TlsMaterialError(key.field, key.file, 'encrypted private keys are not supported');
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(block!.pem);
  } catch (err) {
    throw new TlsMaterialError(key.field, key.file, `private key does not parse: ${(err as Error).message}`);
  }
  if (!chain[0]!.checkPrivateKey(privateKey)) {
    throw new TlsMaterialError(key.field, key.file, `private key does not match certificate ${describe(chain[0]!)} of ${cert.file}`);
  }
  return chain;
}

/** The CAs of a trust bundle; at least one must be valid now. Expired or not-yet-valid ones are reported, not fatal (CA rollover). */
export function checkTrustBundle(src: Source, text: string, now: number): { cas: X509Certificate[]; warnings: string[] } {
  const cas = parseCertificates(src, text);
  const warnings: string[] = [];
  for (const ca of cas) {
    const problem = validityProblem(ca, now);
    if (problem) warnings.push(`${src.field}: ${problem}`);
  }
  if (warnings.length === cas.length) throw new TlsMaterialError(src.field, src.file, 'no certificate of the trust bundle is valid now');
  return { cas, warnings };
}

/**
 * Every CRL of the files: one per issuing CA. A CRL from a CA of the bundle must verify with it; a
 * CRL from any other issuer is an intermediate CA's, whose certificate arrives with the peer's
 * chain (OpenSSL checks the signature then, and refuses the peer if it does not verify). A CRL past
 * nextUpdate is loaded (the stale_crl policy decides).
 */
export async function checkCrls(sources: readonly (Source & { pem: string })[], bundle: readonly X509Certificate[], now: number): Promise<{ crls: LoadedCrl[]; warnings: string[] }> {
  const crls: LoadedCrl[] = [];
  let foreign: { src: Source; n: number; issuer: string } | undefined;
  const candidates = bundle.map((node) => ({ node, peculiar: new x509.X509Certificate(node.raw) }));
  for (const src of sources) {
    for (const [i, block] of strictPemBlocks(src, src.pem, ['X509 CRL']).entries()) {
      let crl: x509.X509Crl;
      try {
        crl = new x509.X509Crl(block.pem);
      } catch (err) {
        throw new TlsMaterialError(src.field, src.file, `CRL ${i + 1} does not parse: ${(err as Error).message}`);
      }
      const sameName = candidates.filter((c) => c.peculiar.subject === crl.issuer);
      let issuer: X509Certificate | undefined;
      for (const c of sameName) {
        if (await crl.verify({ publicKey: c.peculiar }).catch(() => false)) {
          issuer = c.node;
          break;
        }
      }
      if (sameName.length > 0 && !issuer) throw new TlsMaterialError(src.field, src.file, `CRL ${i + 1} signature does not verify with the trust bundle's '${crl.issuer}'`);
      if (!issuer) foreign ??= { src, n: i + 1, issuer: crl.issuer };
      if (crl.thisUpdate.getTime() > now + CRL_CLOCK_SKEW_MS) {
        throw new TlsMaterialError(src.field, src.file, `CRL ${i + 1} is not valid until ${crl.thisUpdate.toISOString()} (thisUpdate in the future)`);
      }
      crls.push({
        file: src.file,
        issuer,
        issuerName: issuer ? subjectOf(issuer) : crl.issuer.replace(/, /g, ','),
        issuerDn: crl.issuer,
        serials: new Set(crl.entries.map((e) => normalizeSerial(e.serialNumber))),
        thisUpdate: crl.thisUpdate,
        nextUpdate: crl.nextUpdate,
      });
    }
  }
  // OpenSSL checks CRLs for the whole chain (CRL_CHECK_ALL): a CA without a CRL gets all its clients refused.
  // CRLs of intermediates alone cover no chain (the root's CRL checks the intermediate): a wrong file, surely.
  if (foreign && !crls.some((crl) => crl.issuer)) {
    throw new TlsMaterialError(
      foreign.src.field,
      foreign.src.file,
      `no CRL is from a CA of the trust bundle (CRL ${foreign.n} is issued by '${foreign.issuer}', which is not in the trust bundle): ` +
        "OpenSSL checks each certificate of a chain against its issuer's CRL and would refuse every client (UNABLE_TO_GET_CRL); add the trust bundle CA's CRL",
    );
  }
  const field = sources.length === 1 ? sources[0]!.field : sources[0]!.field.replace(/\[\d+\]$/, '');
  const warnings = bundle
    .filter((ca) => !crls.some((crl) => crl.issuer === ca))
    .map((ca) => `${field}: no CRL from trust bundle CA ${describe(ca)}: OpenSSL refuses certificates chaining to it (UNABLE_TO_GET_CRL)`);
  return { crls, warnings };
}
