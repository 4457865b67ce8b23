// What an upstream failure means for the client: a status and a stable reason. The error is the
// upstream's fault (502/504), unless the exchange broke off because the client's own request body
// failed (400/408/413, see RequestBodyError), and says whether retrying elsewhere is safe (only
// when nothing was sent: the connection never came up).
import { RequestBodyError } from '../http1/client-request.js';
import type { RequestReason } from '../reasons.js';

export interface UpstreamFailure {
  readonly status: 400 | 408 | 413 | 502 | 504;
  readonly reason: RequestReason;
  /** True when no request byte can have reached the upstream. */
  readonly beforeRequestSent: boolean;
}

const TLS_VERIFY_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  // The upstream CRL: stale (stale_crl: reject_all), or none for the upstream's CA.
  'CRL_HAS_EXPIRED',
  'CRL_NOT_YET_VALID',
  'UNABLE_TO_GET_CRL',
  'CRL_SIGNATURE_FAILURE',
  'INVALID_PURPOSE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

export function classifyUpstreamError(err: unknown): UpstreamFailure {
  if (err instanceof RequestBodyError) return { status: err.status, reason: err.reason, beforeRequestSent: false };
  const code = (err as { code?: unknown } | null)?.code;
  switch (code) {
    case 'GATEHOUSE_UPSTREAM_IDENTITY_MISMATCH':
      return { status: 502, reason: 'upstream_identity_mismatch', beforeRequestSent: true };
    case 'GATEHOUSE_UPSTREAM_CONNECT_TIMEOUT':
      return { status: 504, reason: 'upstream_connect_timeout', beforeRequestSent: true };
    case 'GATEHOUSE_UPSTREAM_HEADERS_TIMEOUT':
      return { status: 504, reason: 'upstream_headers_timeout', beforeRequestSent: false };
    case 'GATEHOUSE_UPSTREAM_BODY_TIMEOUT':
      return { status: 504, reason: 'upstream_body_timeout', beforeRequestSent: false };
    case 'GATEHOUSE_UPSTREAM_POOL_CLOSED':
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EAI_AGAIN':
      return { status: 502, reason: 'upstream_unavailable', beforeRequestSent: true };
    case 'GATEHOUSE_UPSTREAM_BAD_RESPONSE': // llhttp refused the response, or it broke its own framing
      return { status: 502, reason: 'upstream_protocol_error', beforeRequestSent: false };
  }
  if (typeof code === 'string' && (TLS_VERIFY_CODES.has(code) || code.startsWith('ERR_SSL_'))) {
    return { status: 502, reason: 'upstream_tls_failed', beforeRequestSent: true };
  }
  return { status: 502, reason: 'upstream_reset', beforeRequestSent: false };
}
