// Everything a new upstream connection needs to speak mTLS, built once (and again on reload):
// the secure context with our client certificate and the upstream trust bundle, the expected
// upstream identity, and the fingerprint that keys the session cache.
import { constants as cryptoConstants, X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { pemBlocks } from '../../certs/pem-blocks.js';
import type { UpstreamTls } from '../config/types.js';
import { parseSubjectAltNames } from '../identity/subject-alt-names.js';
import { cipherString, curveString } from '../config/tls-suites.js';
import type { PemText } from '../runtime/read-tls-files.js';

export interface UpstreamTlsFiles {
  certPem: string;
  keyPem: string;
  trustBundlePem: string;
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
}

export function buildUpstreamTlsState(config: UpstreamTls, files: UpstreamTlsFiles, endpointHost: string): UpstreamTlsState {
  const secureContext = tls.createSecureContext({
    cert: files.certPem,
    key: files.keyPem,
    ca: files.trustBundlePem,
    // Every CRL of the file: given one string, Node loads only its first block.
    crl: files.crlPem === undefined ? undefined : pemBlocks(files.crlPem, 'X509 CRL'),
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
  return {
    secureContext,
    servername,
    clientCertFingerprint: leaf.fingerprint256,
    checkIdentity,
    expected: expectId ?? expectDns ?? '',
  };
}
