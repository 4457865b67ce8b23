// What a failed exchange means for the client, as a typed value: a status, a stable reason, and
// whether retrying elsewhere is safe (only when nothing was sent: the connection never came up).
// The failure is the upstream's (502/503/504), unless the exchange broke off because the client's own
// request body failed (400/408/413, see RequestBodyError). Failures are constants: classifying one
// allocates nothing.
import { RequestBodyError } from '../session/downstream-request.js';
import type { RequestReason } from '../reasons.js';

export interface RequestFailure {
  readonly status: 400 | 408 | 413 | 502 | 503 | 504;
  readonly reason: RequestReason;
  /** True when no request byte can have reached the upstream: another endpoint may be tried. */
  readonly retrySafe: boolean;
}

function failure(status: RequestFailure['status'], reason: RequestReason, retrySafe: boolean): RequestFailure {
  return Object.freeze({ status, reason, retrySafe });
}

const IDENTITY_MISMATCH = failure(502, 'upstream_identity_mismatch', true);
const CONNECT_TIMEOUT = failure(504, 'upstream_connect_timeout', true);
const HEADERS_TIMEOUT = failure(504, 'upstream_headers_timeout', false);
const BODY_TIMEOUT = failure(504, 'upstream_body_timeout', false);
const PER_TRY_TIMEOUT = failure(504, 'upstream_per_try_timeout', false);
const REQUEST_TIMEOUT = failure(504, 'request_timeout', false);
const UNAVAILABLE = failure(502, 'upstream_unavailable', true);
const PROTOCOL_ERROR = failure(502, 'upstream_protocol_error', false);
const TLS_FAILED = failure(502, 'upstream_tls_failed', true);
const RESET = failure(502, 'upstream_reset', false);
// Shed load: trying the next endpoint would only move the queue there.
const OVERFLOW = failure(503, 'upstream_overflow', false);
// Nothing was sent: another endpoint may speak the protocol.
const PROTOCOL_MISMATCH = failure(502, 'upstream_protocol_mismatch', true);
const BODY_FAILURES = {
  bad_request: failure(400, 'bad_request', false),
  request_body_timeout: failure(408, 'request_body_timeout', false),
  request_body_too_large: failure(413, 'request_body_too_large', false),
} as const satisfies Record<RequestBodyError['reason'], RequestFailure>;

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

export function classifyUpstreamError(err: unknown): RequestFailure {
  if (err instanceof RequestBodyError) return BODY_FAILURES[err.reason];
  const code = (err as { code?: unknown } | null)?.code;
  switch (code) {
    case 'GATEHOUSE_UPSTREAM_IDENTITY_MISMATCH':
      return IDENTITY_MISMATCH;
    case 'GATEHOUSE_UPSTREAM_CONNECT_TIMEOUT':
      return CONNECT_TIMEOUT;
    case 'GATEHOUSE_UPSTREAM_HEADERS_TIMEOUT':
      return HEADERS_TIMEOUT;
    case 'GATEHOUSE_UPSTREAM_BODY_TIMEOUT':
      return BODY_TIMEOUT;
    case 'GATEHOUSE_UPSTREAM_PER_TRY_TIMEOUT':
      return PER_TRY_TIMEOUT;
    case 'GATEHOUSE_REQUEST_TIMEOUT':
      return REQUEST_TIMEOUT;
    case 'GATEHOUSE_UPSTREAM_POOL_CLOSED':
    case 'GATEHOUSE_UPSTREAM_CONNECT_RESET':
    case 'GATEHOUSE_UPSTREAM_REFUSED':
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EAI_AGAIN':
      return UNAVAILABLE;
    case 'GATEHOUSE_UPSTREAM_OVERFLOW':
      return OVERFLOW;
    case 'GATEHOUSE_UPSTREAM_PROTOCOL_MISMATCH':
      return PROTOCOL_MISMATCH;
    case 'GATEHOUSE_UPSTREAM_BAD_RESPONSE': // llhttp refused the response, or it broke its own framing
      return PROTOCOL_ERROR;
  }
  if (typeof code === 'string' && (TLS_VERIFY_CODES.has(code) || code.startsWith('ERR_SSL_'))) return TLS_FAILED;
  return RESET;
}
