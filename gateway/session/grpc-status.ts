// The gateway's own answers to gRPC requests, as gRPC clients read them (gRPC over HTTP/2,
// "Responses"): HTTP 200 and a trailers-only response, one HEADERS frame carrying content-type,
// grpc-status and a percent-encoded grpc-message, instead of a JSON body no gRPC client reads. The
// status is the one a gRPC client acts on for what happened (retry UNAVAILABLE, not
// PERMISSION_DENIED), and the message starts with the gateway's stable reason (reasons.ts).
import { encodeGrpcMessageText, GRPC_STATUS } from '../grpc/grpc-wire.js';

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
  return ['grpc-status', String(status), 'grpc-message', encodeGrpcMessageText(message)];
}
