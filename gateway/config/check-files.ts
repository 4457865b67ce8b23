// File checks, run once the schema and rules passed: every file the config names exists, is
// readable and holds what its field says. Certificate chains parse (leaf first, each issued by
// the next), are valid now and fit their use; keys parse and match their certificate; trust
// bundles and CRLs parse. The certificate and key checks are the ones hot reload applies
// (lifecycle/tls-material.ts), so a config that validates also loads. CRL signatures are left to
// that (asynchronous) reload check; here a CRL must parse and not be from the future. A CRL may come
// from a CA outside the bundle: an intermediate's, checked by OpenSSL against the peer's chain.
import type { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import '../../certs/dev-ca.js'; // loads reflect-metadata and sets @peculiar/x509's crypto provider first
import * as x509 from '@peculiar/x509';
import { pemBlocks } from '../../certs/pem-blocks.js';
import { unconstrainableProblem } from '../identity/trust-domain-store.js';
import { checkPresentedChain, describe, parseCertificates, TlsMaterialError, validityProblem } from '../lifecycle/tls-material.js';
import { childPath, itemPath } from './config-problem.js';
import { trustDomainOfPattern, trustFiles } from './peer-trust.js';
import type { GatewayConfig, Listener, PeerTrust } from './types.js';
import type { ReadContext } from './yaml-reader.js';

/** OpenSSL refuses a CRL whose thisUpdate is ahead of its clock; allow the usual issuing skew. */
const CRL_CLOCK_SKEW_MS = 5 * 60_000;

const EKU = { server: '1.3.6.1.5.5.7.3.1', client: '1.3.6.1.5.5.7.3.2', any: '2.5.29.37.0' } as const;

type Role = 'server' | 'client';

export function checkFiles(config: GatewayConfig, cx: ReadContext, now: number): void {
  const files = new FileChecker(cx, now);
  for (const listener of config.listeners) {
    if (!listener.tls) continue;
    const tlsAt = childPath(cx.pathOf(listener), 'tls');
    const { clientAuth } = listener.tls;
    const bundle = files.peerTrust(childPath(tlsAt, 'client_auth'), clientAuth);
    files.crls(childPath(tlsAt, 'client_auth.crl'), clientAuth.crl, bundle);
    if (bundle && clientAuth.trustBundle !== undefined) warnSharedBundle(listener, clientAuth.trustBundle, bundle, childPath(tlsAt, 'client_auth.trust_bundle'), cx);
    for (const certificate of listener.tls.certificates) {
      const at = cx.pathOf(certificate);
      files.presented('server', { at: childPath(at, 'cert'), file: certificate.cert }, { at: childPath(at, 'key'), file: certificate.key });
    }
  }
  for (const upstream of config.upstreams) {
    if (!upstream.tls) continue;
    const tlsAt = childPath(cx.pathOf(upstream), 'tls');
    const bundle = files.peerTrust(tlsAt, upstream.tls);
    files.crls(childPath(tlsAt, 'crl'), upstream.tls.crl, bundle);
    files.presented('client', { at: childPath(tlsAt, 'cert'), file: upstream.tls.cert }, { at: childPath(tlsAt, 'key'), file: upstream.tls.key });
  }
  if (config.admin.tokenFile !== undefined) files.readable('admin.token_file', config.admin.tokenFile);
  if (config.sessionTickets.keyFile !== undefined) files.readable('session_tickets.key_file', config.sessionTickets.keyFile);
}

interface FileRef {
  readonly at: string;
  readonly file: string;
}

type ReadResult = { readonly text: string } | { readonly problem: string };

class FileChecker {
  /** One read per file, however many fields name it. */
  readonly #reads = new Map<string, ReadResult>();

  constructor(
    private readonly cx: ReadContext,
    private readonly now: number,
  ) {}

  /** The PEM file's text, or undefined after reporting why it cannot be used. */
  read(at: string, file: string): string | undefined {
    let result = this.#reads.get(file);
    if (!result) {
      result = readPemFile(file);
      this.#reads.set(file, result);
    }
    if ('text' in result) return result.text;
    this.cx.problems.atValue(at, result.problem);
    return undefined;
  }

  /** A file whose format is not ours to judge (session ticket keys): it exists and is not empty. */
  readable(at: string, file: string): void {
    const result = readBytes(file);
    if (!Buffer.isBuffer(result)) this.cx.problems.atValue(at, result.problem);
    else if (result.length === 0) this.cx.problems.atValue(at, `${file} is empty`);
  }

  /** A certificate chain the gateway presents (as a server, or as a client to an upstream) and its key. */
  presented(role: Role, cert: FileRef, key: FileRef): void {
    const certPem = this.read(cert.at, cert.file);
    const keyPem = this.read(key.at, key.file);
    if (certPem === undefined) return;
    const chain = this.#certificates(cert, certPem);
    if (!chain) return;
    for (const c of chain) this.#problemIf(cert, validityProblem(c, this.now));
    this.#problemIf(cert, orderProblem(chain));
    this.#problemIf(cert, usageProblem(chain[0]!, role));
    if (keyPem === undefined) return;
    // Checked at a moment the chain is valid, so that an expired certificate (reported above)
    // does not hide a key that does not match it.
    const validAt = Math.max(...chain.map((c) => Date.parse(c.validFrom)));
    try {
      checkPresentedChain({ field: cert.at, file: cert.file, pem: certPem }, { field: key.at, file: key.file, pem: keyPem }, validAt);
    } catch (err) {
      // Certificate problems were reported above; what is left is the key's.
      if (!(err instanceof TlsMaterialError)) throw err;
      if (err.field === key.at) this.cx.problems.atValue(key.at, `${key.file}: ${err.problem}`);
    }
  }

  /** The CAs of a trust bundle. Some expired ones are only a warning (CA rollover); all of them is a problem. */
  trustBundle(at: string, file: string): X509Certificate[] | undefined {
    const pem = this.read(at, file);
    const cas = pem === undefined ? undefined : this.#certificates({ at, file }, pem);
    if (!cas) return undefined;
    const invalid = cas.map((ca) => validityProblem(ca, this.now)).filter((p): p is string => p !== undefined);
    if (invalid.length === cas.length) this.cx.problems.atValue(at, `${file}: no certificate of the trust bundle is valid now: ${invalid.join('; ')}`);
    else for (const problem of invalid) this.cx.problems.warn(at, `${file}: ${problem}`);
    return cas;
  }

  /**
   * The CAs of a trust_bundle, or of every bundle of trust_domains (undefined when one cannot be
   * read). A CA of a trust domain must take a name constraint (identity/trust-domain-store.ts); one
   * listed for several trust domains may issue identities of each, which is worth a warning.
   */
  peerTrust(at: string, trust: PeerTrust): X509Certificate[] | undefined {
    const all: X509Certificate[] = [];
    const domainsOf = new Map<string, string>();
    let complete = true;
    for (const { field, file, trustDomain } of trustFiles(trust)) {
      const fieldAt = childPath(at, field);
      const cas = this.trustBundle(fieldAt, file);
      if (!cas) complete = false;
      for (const ca of cas ?? []) {
        all.push(ca);
        if (trustDomain === undefined) continue;
        const problem = unconstrainableProblem(ca);
        if (problem !== undefined) this.cx.problems.atValue(fieldAt, `${file}: CA ${describe(ca)} ${problem}`);
        const also = domainsOf.get(ca.fingerprint256);
        if (also !== undefined && also !== trustDomain) {
          this.cx.problems.warn(fieldAt, `${file}: CA ${describe(ca)} is also in the bundle of trust domain '${also}': it can issue identities of both`);
        }
        domainsOf.set(ca.fingerprint256, trustDomain);
      }
    }
    return complete ? all : undefined;
  }

  /**
   * The files of a `crl` field: one (at the field) or a list (at each entry). CRLs from outside the
   * bundle are intermediates'; but if none is from a CA of the bundle, OpenSSL would refuse everyone.
   */
  crls(at: string, crl: string | readonly string[] | undefined, bundle: readonly X509Certificate[] | undefined): void {
    if (crl === undefined) return;
    const entries = typeof crl === 'string' ? [{ at, file: crl }] : crl.map((file, i) => ({ at: itemPath(at, i), file }));
    const issuers = entries.flatMap((e) => this.crl(e.at, e.file) ?? []);
    if (!bundle || issuers.length === 0 || this.cx.problems.hasProblemAt(at)) return;
    // Issuer names as @peculiar/x509 prints them, to compare with the CRLs' issuer names.
    const cas = new Set(bundle.map((ca) => new x509.X509Certificate(ca.raw).subject));
    if (!issuers.some((issuer) => cas.has(issuer))) {
      this.cx.problems.atValue(
        at,
        `no CRL is from a CA of the trust bundle (the first is issued by '${issuers[0]}', which is not in the trust bundle): ` +
          "OpenSSL checks each certificate of a chain against its issuer's CRL and would refuse every client; add the trust bundle CA's CRL",
      );
    }
  }

  /** Every CRL of the file parses and is not from the future; returns their issuers (undefined when the file is unusable). */
  crl(at: string, file: string): string[] | undefined {
    const pem = this.read(at, file);
    if (pem === undefined) return undefined;
    const blocks = pemBlocks(pem, 'X509 CRL');
    const begun = pem.split('-----BEGIN ').length - 1;
    if (blocks.length === 0) {
      this.cx.problems.atValue(at, `${file}: no X509 CRL PEM block${begun > 0 ? ' (a CRL file holds -----BEGIN X509 CRL----- blocks)' : ''}`);
      return undefined;
    }
    const issuers: string[] = [];
    if (begun !== blocks.length) this.cx.problems.atValue(at, `${file}: holds ${begun} PEM blocks of which ${blocks.length} are complete X509 CRLs: truncated, or another kind of block`);
    blocks.forEach((block, i) => {
      let crl: x509.X509Crl;
      try {
        crl = new x509.X509Crl(block);
      } catch (err) {
        this.cx.problems.atValue(at, `${file}: CRL ${i + 1} does not parse: ${(err as Error).message}`);
        return;
      }
      issuers.push(crl.issuer);
      if (crl.thisUpdate.getTime() > this.now + CRL_CLOCK_SKEW_MS) {
        this.cx.problems.atValue(at, `${file}: CRL ${i + 1} is not valid until ${crl.thisUpdate.toISOString()} (thisUpdate is in the future)`);
      }
      if (crl.nextUpdate && crl.nextUpdate.getTime() < this.now) {
        this.cx.problems.warn(at, `${file}: CRL ${i + 1} is stale since ${crl.nextUpdate.toISOString()} (nextUpdate); lifecycle.stale_crl decides what happens`);
      }
    });
    return issuers;
  }

  #certificates(ref: FileRef, pem: string): X509Certificate[] | undefined {
    try {
      return parseCertificates({ field: ref.at, file: ref.file }, pem);
    } catch (err) {
      if (!(err instanceof TlsMaterialError)) throw err;
      this.cx.problems.atValue(ref.at, `${ref.file}: ${err.problem}`);
      return undefined;
    }
  }

  #problemIf(ref: FileRef, problem: string | undefined): void {
    if (problem !== undefined) this.cx.problems.atValue(ref.at, `${ref.file}: ${problem}`);
  }
}

function readBytes(file: string): Buffer | { readonly problem: string } {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { problem: `file not found: ${file}` };
    if (code === 'EACCES') return { problem: `cannot read ${file}: permission denied` };
    if (code === 'EISDIR') return { problem: `${file} is a directory, not a file` };
    return { problem: `cannot read ${file}: ${(err as Error).message}` };
  }
}

function readPemFile(file: string): ReadResult {
  const bytes = readBytes(file);
  if (!Buffer.isBuffer(bytes)) return bytes;
  if (bytes.length === 0) return { problem: `${file} is empty` };
  const text = bytes.toString('utf8');
  // A DER SEQUENCE starts with 0x30: the most common mix-up, worth a precise hint.
  if (!text.includes('-----BEGIN ') && bytes[0] === 0x30) {
    return { problem: `${file} is binary DER, not PEM: convert it, e.g. openssl x509 -inform der -in ${file} -out ${file}.pem` };
  }
  return { text };
}

/** The leaf first, then each certificate issued by the next one. */
function orderProblem(chain: readonly X509Certificate[]): string | undefined {
  if (chain.length > 1 && chain[0]!.ca) return `the first certificate, ${describe(chain[0]!)}, is a CA: the file must start with the leaf`;
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!chain[i]!.checkIssued(chain[i + 1]!)) {
      return `certificate ${i + 2} did not issue certificate ${i + 1}: list the leaf first, then each issuer in order`;
    }
  }
  return undefined;
}

/** An extended key usage, when present, must allow the role the certificate plays. */
function usageProblem(leaf: X509Certificate, role: Role): string | undefined {
  const usages = leaf.keyUsage;
  if (usages === undefined || usages.includes(EKU[role]) || usages.includes(EKU.any)) return undefined;
  return role === 'server'
    ? `certificate ${describe(leaf)} is not for TLS servers (its extended key usage lacks serverAuth)`
    : `certificate ${describe(leaf)} is not for TLS clients (its extended key usage lacks clientAuth)`;
}

/**
 * One trust_bundle holding CAs that do not chain to one another, on a listener whose allow-lists
 * name several trust domains: any of those CAs can issue an identity of any of those domains
 * (a partner's CA can mint our IDs). trust_domains binds each CA to its own trust domain.
 */
function warnSharedBundle(listener: Listener, file: string, cas: readonly X509Certificate[], at: string, cx: ReadContext): void {
  const hierarchies = cas.filter((ca) => !cas.some((other) => other !== ca && ca.checkIssued(other) && ca.verify(other.publicKey)));
  const named = new Set(listener.routes.flatMap((r) => (r.kind === 'terminate' ? r.authorization.allow.map(trustDomainOfPattern) : [])).filter((d) => d !== undefined));
  if (hierarchies.length < 2 || named.size < 2) return;
  cx.problems.warn(
    at,
    `${file}: holds ${hierarchies.length} CAs that do not chain to one another (${hierarchies.map((ca) => describe(ca)).join(', ')}), and the allow-lists of listener ` +
      `'${listener.name}' name the trust domains ${[...named].join(', ')}: each of these CAs can issue identities of every one of them. ` +
      'Give each trust domain its own bundle with client_auth.trust_domains',
  );
}
