// The TLS side of a terminate listener as one immutable value: a secure context per certificate
// (each carrying the client trust store, CRL, ticket keys and session id context, because OpenSSL
// verifies against the context SNI selected), the SNI lookup (exact, then wildcard, then default),
// each certificate's own URI SAN (XFCC `By`), and what the listener asks of client identities
// beyond the chain (a SPIFFE ID, its trust domain). A reload builds a new one and swaps it in.
import { constants as cryptoConstants, X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import type { ListenerTls } from '../config/types.js';
import type { PeerIdentity } from '../identity/peer-identity.js';
import { parseSubjectAltNames } from '../identity/subject-alt-names.js';
import { opensslCrls, type PeerTrustStore, type TrustBundlePem } from '../identity/trust-domain-store.js';
import type { CertReason } from '../reasons.js';
import { cipherString, curveString } from '../config/tls-suites.js';
import type { PemText } from '../config/pem-text.js';

export interface ServerCertificateFiles {
  sni: readonly string[];
  certPem: string;
  keyPem: string;
}

export interface ServerTlsFiles {
  certificates: readonly ServerCertificateFiles[];
  /** The client CAs: one trust_bundle, or a bundle per trust domain. */
  trust: readonly TrustBundlePem[];
  /** Every CRL file's text, concatenated: what OpenSSL loads. */
  crlPem?: string;
  /** The same, file by file with the config field naming each (one per issuing CA: roots and intermediates). */
  crls?: readonly PemText[];
}

export interface ServedCertificate {
  readonly context: tls.SecureContext;
  /** The certificate's URI SAN, if any: XFCC `By`. */
  readonly uri: string | undefined;
  readonly leaf: X509Certificate;
}

export interface ServerTlsState {
  readonly served: readonly ServedCertificate[];
  readonly defaultCert: ServedCertificate;
  /** Options for tls.Server#setSecureContext: the default certificate, for handshakes without SNI or without a choice. */
  readonly defaultOptions: tls.SecureContextOptions;
  select(servername: string): ServedCertificate;
  readonly crlPem: string | undefined;
  /** With trust_domains: the trust domains a client's SPIFFE ID may name, with their CAs (OpenSSL checked that its chain ends in that domain's bundle). */
  readonly trustDomains: PeerTrustStore['trustDomains'];
  /** Refuse certificates without a SPIFFE ID at the handshake (client_auth.require_spiffe_id, or trust_domains). */
  readonly requireSpiffeId: boolean;
  /** A check OpenSSL cannot make with this state (a stale CRL the gateway enforces itself, lifecycle/); a reason refuses the handshake. */
  readonly admit?: (identity: PeerIdentity) => CertReason | undefined;
}

export interface TlsTuning {
  /** 48 bytes (or a multiple) shared by all workers; undefined disables tickets. */
  ticketKeys?: Buffer;
  /** Same value in every worker and replica, so sessions resume anywhere. */
  sessionIdContext: string;
  sessionTimeoutSec: number;
}

export function buildServerTlsState(config: ListenerTls, files: ServerTlsFiles, trust: PeerTrustStore, tuning: TlsTuning): ServerTlsState {
  const exact = new Map<string, ServedCertificate>();
  const wildcard = new Map<string, ServedCertificate>();
  const served: ServedCertificate[] = [];
  let defaultCert: ServedCertificate | undefined;
  let defaultOptions: tls.SecureContextOptions | undefined;
  for (const file of files.certificates) {
    const options = optionsOf(file, files, trust, config, tuning);
    const leaf = new X509Certificate(file.certPem);
    const cert: ServedCertificate = {
      context: tls.createSecureContext(options),
      uri: parseSubjectAltNames(leaf.subjectAltName).uris[0],
      leaf,
    };
    served.push(cert);
    if (file.sni.length === 0) {
      defaultCert = cert;
      defaultOptions = options;
    }
    for (const name of file.sni) {
      const lower = name.toLowerCase();
      if (lower.startsWith('*.')) wildcard.set(lower.slice(1), cert);
      else exact.set(lower, cert);
    }
  }
  // Without an explicit default, the first certificate serves clients that send no (or unknown) SNI.
  defaultCert ??= served[0];
  if (!defaultCert) throw new Error('listener has no server certificate');
  defaultOptions ??= optionsOf(files.certificates[0]!, files, trust, config, tuning);
  const fallback = defaultCert;
  return {
    served,
    defaultCert,
    defaultOptions,
    crlPem: files.crlPem,
    trustDomains: trust.trustDomains,
    requireSpiffeId: config.clientAuth.requireSpiffeId || trust.trustDomains !== undefined,
    select(servername: string): ServedCertificate {
      const name = servername.toLowerCase();
      const hit = exact.get(name);
      if (hit) return hit;
      const dot = name.indexOf('.');
      if (dot > 0) {
        const wild = wildcard.get(name.slice(dot));
        if (wild) return wild;
      }
      return fallback;
    },
  };
}

function optionsOf(file: ServerCertificateFiles, files: ServerTlsFiles, trust: PeerTrustStore, config: ListenerTls, tuning: TlsTuning): tls.SecureContextOptions {
  return {
    cert: file.certPem,
    key: file.keyPem,
    ca: trust.caPem,
    crl: opensslCrls(files.crlPem, trust),
    minVersion: config.minVersion,
    ciphers: cipherString(config.ciphers),
    ecdhCurve: curveString(config.curves),
    sessionIdContext: tuning.sessionIdContext,
    sessionTimeout: tuning.sessionTimeoutSec,
    ...(tuning.ticketKeys && { ticketKeys: tuning.ticketKeys }),
    secureOptions: secureOptionsOf(tuning),
  };
}

/**
 * Client-initiated renegotiation is refused outright: each one costs a full handshake of CPU, and
 * our socket I/O bypasses Node's own limit (3 per 10 minutes). Without ticket keys Node would still
 * issue tickets under random per-process keys: tickets go off too.
 */
function secureOptionsOf(tuning: TlsTuning): number {
  return cryptoConstants.SSL_OP_NO_RENEGOTIATION | (tuning.ticketKeys ? 0 : cryptoConstants.SSL_OP_NO_TICKET);
}
