// Everything a new upstream connection needs to speak mTLS, built once (and again on reload):
// the secure context with our client certificate and the upstream trust store, the expected
// upstream identity, and the fingerprint that keys the session cache.
import { constants as cryptoConstants, X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import type { UpstreamTls } from '../config/types.js';
import { trustDomainOf } from '../identity/spiffe-id.js';
import { parseSubjectAltNames } from '../identity/subject-alt-names.js';
import { cipherString, curveString } from '../config/tls-suites.js';
import { isPermittedSubtreeViolation, opensslCrls, type PeerTrustStore, type TrustBundlePem } from '../identity/trust-domain-store.js';
import type { PemText } from '../config/pem-text.js';

export interface UpstreamTlsFiles {
  certPem: string;
  keyPem: string;
  /** The upstream's CAs: one trust_bundle, or a bundle per trust domain. */
  trust: readonly TrustBundlePem[];
  /** Every CRL file's text, concatenated: what OpenSSL loads. */
  crlPem?: string;
  /** The same, file by file with the config field naming each. */
  crls?: readonly PemText[];
}

export class UpstreamIdentityMismatchError extends Error {
  readonly code = 'GATEHOUSE_UPSTREAM_IDENTITY_MISMATCH';
  constructor(expected: string, presented: string) {
    super(`upstream presented ${presented || 'no identity'}, expected ${expected}`);
  }
}

export interface UpstreamTlsState {
  readonly secureContext: tls.SecureContext;
  readonly servername: string | undefined;
  readonly clientCertFingerprint: string;
  /** Returns an error when the upstream's (chain-verified) certificate is not the one we expect. */
  readonly checkIdentity: (host: string, cert: tls.PeerCertificate) => Error | undefined;
  readonly expected: string;
  /** The error a failed connection reports: OpenSSL's refusal of a chain that ends in another trust domain's bundle is an identity mismatch. */
  readonly connectError: (err: Error & { code?: string }) => Error;
}

export function buildUpstreamTlsState(config: UpstreamTls, files: UpstreamTlsFiles, trust: PeerTrustStore, endpointHost: string): UpstreamTlsState {
  const secureContext = tls.createSecureContext({
    cert: files.certPem,
    key: files.keyPem,
    ca: trust.caPem,
    crl: opensslCrls(files.crlPem, trust),
    minVersion: 'TLSv1.2',
    // The same suites as listeners: ECDHE with AEAD only unless configured; no renegotiation an upstream could ask for.
    ciphers: cipherString(config.ciphers),
    ecdhCurve: curveString(config.curves),
    secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION,
  });
  const leaf = new X509Certificate(files.certPem);
  const isIp = /^[\d.]+$|:/.test(endpointHost);
  const servername = config.serverName ?? config.expectDns ?? (isIp ? undefined : endpointHost);
  const expectId = config.expectId;
  const expectDns = config.expectDns;
  const checkIdentity = (_host: string, cert: tls.PeerCertificate): Error | undefined => {
    if (expectId !== undefined) {
      const { uris } = parseSubjectAltNames(cert.subjectaltname);
      if (uris.length === 1 && uris[0] === expectId) return undefined;
      return new UpstreamIdentityMismatchError(expectId, uris.join(', '));
    }
    if (expectDns !== undefined) {
      const err = tls.checkServerIdentity(expectDns, cert);
      return err ? new UpstreamIdentityMismatchError(expectDns, cert.subjectaltname ?? '') : undefined;
    }
    return undefined;
  };
  const expectedDomain = expectId === undefined ? undefined : trustDomainOf(expectId);
  const connectError = (err: Error & { code?: string }): Error =>
    trust.trustDomains !== undefined && isPermittedSubtreeViolation(err)
      ? new UpstreamIdentityMismatchError(expectId ?? '', `a certificate whose chain does not end in the bundle of trust domain '${expectedDomain}' (${err.message})`)
      : err;
  return {
    secureContext,
    servername,
    clientCertFingerprint: leaf.fingerprint256,
    checkIdentity,
    expected: expectId ?? expectDns ?? '',
    connectError,
  };
}
