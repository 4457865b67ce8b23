// Why a terminate handshake failed, from what Node leaves on the socket: OpenSSL's verification
// result (authorizationError) when a certificate was refused, else the TLS error code.
import type { TLSSocket } from 'node:tls';
import type { HandshakeReason } from '../metrics/tls-metrics.js';
import { certReasonFromOpenssl } from '../reasons.js';

const NOT_TLS = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_HTTP_REQUEST', 'ERR_SSL_UNKNOWN_PROTOCOL', 'ERR_SSL_PACKET_LENGTH_TOO_LONG']);

export function handshakeFailureReason(err: Error & { code?: string }, socket: TLSSocket): HandshakeReason {
  const verification = verificationCode(socket);
  if (verification) return certReasonFromOpenssl(verification);
  const code = err.code;
  if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') return 'no_cert';
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return 'timeout';
  if (code !== undefined && NOT_TLS.has(code)) return 'not_tls';
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'client_aborted';
  return certReasonFromOpenssl(code);
}

/** OpenSSL's verification result for the client's certificate, when it refused one (e.g. CERT_REVOKED). */
export function verificationCode(socket: TLSSocket): string | undefined {
  return (socket.authorizationError as unknown as string | null | undefined) || undefined;
}
