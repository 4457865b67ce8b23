// gRPC on HTTP/2 as far as the demo needs it, with no protobuf library (PROTOCOL-HTTP2.md in
// grpc/grpc): the status codes, the `grpc-message` text encoding, and the length-prefixed message:
// a flag byte (1 = compressed), a 4-byte big-endian length, then the message's bytes.

/** The status codes a gRPC call ends with (`grpc-status`), by name. */
export const GRPC_STATUS = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

const STATUS_NAMES = new Map<number, string>(Object.entries(GRPC_STATUS).map(([name, code]) => [code, name]));

/** `12` → `UNIMPLEMENTED`; a code outside the table keeps its number. */
export function grpcStatusName(code: number): string {
  return STATUS_NAMES.get(code) ?? String(code);
}

/** `application/grpc`, or one of its variants (`application/grpc+proto`, `application/grpc;…`). */
export function isGrpcContentType(contentType: string | undefined): boolean {
  if (contentType === undefined || !contentType.startsWith('application/grpc')) return false;
  const next = contentType.charCodeAt('application/grpc'.length);
  return Number.isNaN(next) || next === 0x2b /* + */ || next === 0x3b /* ; */;
}

const PREFIX_BYTES = 5;

/** One message as it goes on the wire: uncompressed, length-prefixed. */
export function encodeGrpcMessage(message: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(PREFIX_BYTES + message.length);
  frame[0] = 0;
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, PREFIX_BYTES);
  return frame;
}

/** Why a request body is not a sequence of messages this reader takes; `status` is what to answer. */
export class GrpcFramingError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Splits a stream of bytes into gRPC messages, however the bytes arrive in chunks. */
export class GrpcMessageReader {
  #buffered: Buffer = Buffer.alloc(0);

  constructor(private readonly maxMessageBytes: number) {}

  /** The whole messages completed by `chunk`. Throws GrpcFramingError for a compressed or too large message. */
  push(chunk: Buffer): Buffer[] {
    this.#buffered = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk]);
    const messages: Buffer[] = [];
    while (this.#buffered.length >= PREFIX_BYTES) {
      // We never offer grpc-accept-encoding, so a client has no business compressing.
      if (this.#buffered[0] !== 0) throw new GrpcFramingError(GRPC_STATUS.UNIMPLEMENTED, 'compressed messages are not supported');
      const length = this.#buffered.readUInt32BE(1);
      if (length > this.maxMessageBytes) throw new GrpcFramingError(GRPC_STATUS.RESOURCE_EXHAUSTED, `message of ${length} bytes is larger than ${this.maxMessageBytes}`);
      if (this.#buffered.length < PREFIX_BYTES + length) break;
      messages.push(this.#buffered.subarray(PREFIX_BYTES, PREFIX_BYTES + length));
      this.#buffered = this.#buffered.subarray(PREFIX_BYTES + length);
    }
    return messages;
  }

  /** At the end of the stream: true when it stopped inside a message. */
  get truncated(): boolean {
    return this.#buffered.length > 0;
  }
}

/**
 * `grpc-message` carries text percent-encoded as UTF-8: every byte outside printable ASCII, and
 * '%' itself, as %XX (so a reason with a newline or non-ASCII cannot break the header).
 */
export function encodeGrpcMessageText(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** The text of a `grpc-message` value; a '%' not followed by two hex digits is kept as it is, as the spec asks. */
export function decodeGrpcMessageText(value: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const hex = value[i] === '%' ? value.slice(i + 1, i + 3) : '';
    if (/^[0-9a-fA-F]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(value.charCodeAt(i) & 0xff);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}
