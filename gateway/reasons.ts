// Stable reason codes: metric label values, log fields and the `reason` of JSON error bodies.
// Operators alert and grep on these, so they never change meaning; add new ones at the end.

/** Why a client or upstream certificate was refused. Shared by the gateway and `certs inspect`. */
export const CERT_REASONS = [
  'no_cert',
  'unknown_ca',
  'expired',
  'not_yet_valid',
  'revoked',
  'bad_usage',
  'identity_mismatch',
  'bad_svid',
  'crl_stale',
  'handshake_failed',
  'weak_key', // a key below OpenSSL's security level (RSA under 2048 bits): EE_KEY_TOO_SMALL, CA_KEY_TOO_SMALL
  'weak_signature', // signed with a digest below the security level (SHA-1, MD5): CA_MD_TOO_WEAK
  // Refused by OpenSSL for a reason Node's verify result does not name ('UNSPECIFIED'): Node 24 reports the
  // three codes above this way, and also unhandled critical extensions, name constraints and key usage.
  'bad_certificate',
  // The SPIFFE ID's trust domain has no bundle on this listener, or the chain ends at another trust domain's CA.
  'trust_domain_mismatch',
  // No SPIFFE ID (no URI SAN, or a URI SAN of another scheme): no allow-list can ever match it.
  'no_spiffe_id',
] as const;
export type CertReason = (typeof CERT_REASONS)[number];

/** Why a request was refused after the handshake. */
export const REQUEST_REASONS = [
  'not_allowed',
  'no_identity',
  'sni_host_mismatch',
  'no_route',
  'upstream_identity_mismatch',
  'upstream_unavailable',
  'upstream_connect_timeout',
  'upstream_headers_timeout',
  'upstream_body_timeout',
  'upstream_reset',
  'upstream_tls_failed',
  'bad_path', // a path refused by request-path.ts (400; the body and log name the rule)
  'upstream_protocol_error', // a response llhttp refuses, cut short of its framing, or an upgrade nobody asked for
  'bad_request', // malformed request (head, or a chunked body found bad after the head went upstream)
  'request_body_timeout', // the client went silent mid-body for timeouts.request_body while the upstream waited
  'request_body_too_large', // the body is larger than max_request_body (announced or counted)
  'http_version_not_supported', // a request line with a version other than HTTP/1.x (505)
  'unsupported_transfer_coding', // a request Transfer-Encoding other than chunked alone (501)
  'bad_host', // no Host, more than one, or one that is no host[:port] (400; the body and log name the rule)
  'upstream_overflow', // more requests waiting for an endpoint's pooled connection than upstreams[].limits.max_pending (503)
  'upstream_per_try_timeout', // no response head within retries.per_try_timeout, and no retry left (504)
  'request_timeout', // no response head within the route's timeouts.request, every try included (504)
  'upstream_protocol_mismatch', // the upstream does not speak upstreams[].protocol (h2: ALPN agreed another protocol, or no HTTP/2 preface on h2c) (502)
  'grpc_deadline_exceeded', // the gRPC request's grpc-timeout passed before its response ended (grpc-status 4)
  'method_not_allowed', // CONNECT: no tunnels through terminate routes (405)
  'request_header_too_large', // a request head over 16 KiB (HTTP/1.1) or an HTTP/2 header list over limits.max_header_bytes (431)
  'grpc_needs_http2', // a gRPC request on a route whose upstream speaks HTTP/1.1 (501; grpc-status 13)
] as const;
export type RequestReason = (typeof REQUEST_REASONS)[number];

/**
 * Maps OpenSSL's verification result (Node's `authorizationError` / `err.code`) to our reason.
 * Unknown codes map to `handshake_failed` so that a new OpenSSL code is never mislabelled. Node's
 * verify callback lets OpenSSL go on after an error, so the result is the last error met: a chain
 * from an unknown CA, with CRLs configured, ends on UNABLE_TO_GET_CRL (no CRL for its issuer).
 */
export function certReasonFromOpenssl(code: string | null | undefined): CertReason {
  switch (code) {
    case undefined:
    case null:
    case 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE':
      return 'no_cert';
    case 'CERT_HAS_EXPIRED':
      return 'expired';
    case 'CERT_NOT_YET_VALID':
      return 'not_yet_valid';
    case 'CERT_REVOKED':
      return 'revoked';
    case 'INVALID_PURPOSE':
    case 'INVALID_CA':
    case 'KEYUSAGE_NO_CERTSIGN':
      return 'bad_usage';
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'CERT_SIGNATURE_FAILURE':
    case 'CERT_CHAIN_TOO_LONG':
    case 'UNABLE_TO_GET_CRL': // OpenSSL's own alert for it is unknown_ca too
      return 'unknown_ca';
    case 'EE_KEY_TOO_SMALL':
    case 'CA_KEY_TOO_SMALL':
      return 'weak_key';
    case 'CA_MD_TOO_WEAK':
      return 'weak_signature';
    case 'UNSPECIFIED':
      return 'bad_certificate';
    case 'CRL_HAS_EXPIRED':
      return 'crl_stale';
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return 'identity_mismatch';
    default:
      return 'handshake_failed';
  }
}

/**
 * Why the front door closed a connection before it reached a route (listener/front-door.ts):
 * `gatehouse_front_door_refusals_total{reason}` and the `reason` of its log lines. A bare TLS
 * listener counts its accept refusals (max_connections, max_connections_per_source) there too.
 */
export const FRONT_DOOR_REASONS = [
  'not_tls', // not a TLS ClientHello, and the listener is STRICT (or the bytes are not HTTP)
  'hello_too_large',
  'hello_malformed',
  'hello_timeout', // no complete ClientHello (or first request bytes) within timeouts.hello
  'unrecognized_name', // no route for the SNI/ALPN and no default: TLS alert 112 sent
  'max_connections',
  'no_terminate_handler', // a terminate route matched but the listener has no TLS server wired
  'max_connections_per_source', // the client's address already holds max_connections_per_source connections
] as const;
export type FrontDoorReason = (typeof FRONT_DOOR_REASONS)[number];

/** How a passthrough connection to a backend ended up: `gatehouse_passthrough_connections_total{outcome}`. */
export const PASSTHROUGH_OUTCOMES = ['relayed', 'upstream_unavailable', 'upstream_connect_timeout', 'client_closed'] as const;
export type PassthroughOutcome = (typeof PASSTHROUGH_OUTCOMES)[number];

/**
 * Why the gateway closed a client's HTTP/2 connection (with GOAWAY) for what the client sent:
 * `gatehouse_http2_connections_closed_total{reason}` and the `reason` of the log line.
 */
export const HTTP2_CLOSE_REASONS = [
  'rapid_reset', // CVE-2023-44487: most of its streams reset by the client just after opening them
  'continuation_flood', // CVE-2024-27316: a header block in more CONTINUATION frames than nghttp2 takes
  'settings_flood', // SETTINGS frames faster than any client needs (each one is answered)
  'ping_flood', // PING frames faster than any client needs (each one is answered)
  'frame_flood', // nghttp2's queue of frames to answer with outgrew its bound, PINGs and SETTINGS apart
  'invalid_frames', // more invalid frames than node:http2 tolerates (maxSessionInvalidFrames)
  'protocol_error', // any other HTTP/2 protocol error nghttp2 ended the connection for
] as const;
export type Http2CloseReason = (typeof HTTP2_CLOSE_REASONS)[number];
