// The gateway's own answers to gRPC requests, as gRPC clients read them (gRPC over HTTP/2,
// "Responses"): HTTP 200 and a trailers-only response, one HEADERS frame carrying content-type,
// grpc-status and a percent-encoded grpc-message, instead of a JSON body no gRPC client reads. The
// status is the one a gRPC client acts on for what happened (retry UNAVAILABLE, not
// PERMISSION_DENIED), and the message starts with the gateway's stable reason (reasons.ts).

/** gRPC status codes the gateway answers with (grpc/doc/statuscodes.md). */
export const GRPC_STATUS = {
  INTERNAL: 13,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** The gRPC status for an answer the gateway would give an HTTP client as `httpStatus` for `reason`. */
export function grpcStatusOf(httpStatus: number, reason: string): number {
  switch (httpStatus) {
    case 403:
      return reason === 'no_identity' ? GRPC_STATUS.UNAUTHENTICATED : GRPC_STATUS.PERMISSION_DENIED;
    case 404:
      return GRPC_STATUS.UNIMPLEMENTED; // no route: no such service here
    case 408:
    case 504:
      return GRPC_STATUS.DEADLINE_EXCEEDED;
    case 413:
      return GRPC_STATUS.RESOURCE_EXHAUSTED;
    case 502:
    case 503:
      return GRPC_STATUS.UNAVAILABLE;
    default:
      return GRPC_STATUS.INTERNAL; // 400, 421, 431, …: the request itself cannot be served as sent
  }
}

/** The headers of a trailers-only response with `status` and `message` (flat [name, value, …] list). */
export function grpcStatusHeaders(status: number, message: string): string[] {
  return ['content-type', 'application/grpc', ...grpcStatusTrailers(status, message)];
}

/** The trailers that end a gRPC response that has begun with `status` and `message`. */
export function grpcStatusTrailers(status: number, message: string): string[] {
  return ['grpc-status', String(status), 'grpc-message', percentEncode(message)];
}

/**
 * grpc-message is percent-encoded UTF-8: bytes outside printable ASCII, and '%' itself, become
 * %XX (uppercase hex), so any message survives as an HTTP/2 header value.
 */
export function percentEncode(text: string): string {
  let plain = true;
  for (let i = 0; i < text.length && plain; i++) {
    const c = text.charCodeAt(i);
    plain = c >= 0x20 && c <= 0x7e && c !== 0x25;
  }
  if (plain) return text;
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
