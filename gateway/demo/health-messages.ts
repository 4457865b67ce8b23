// The two protobuf messages of the standard gRPC health service (grpc/health/v1/health.proto),
// encoded by hand: each has one field, so a protobuf library would be most of the demo's weight.
//   message HealthCheckRequest  { string service = 1; }
//   message HealthCheckResponse { ServingStatus status = 1; }   // an enum: a varint

export const HEALTH_SERVICE = 'grpc.health.v1.Health';
export const HEALTH_CHECK_PATH = `/${HEALTH_SERVICE}/Check`;
export const HEALTH_WATCH_PATH = `/${HEALTH_SERVICE}/Watch`;

export const SERVING_STATUS = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;

const SERVING_STATUS_NAMES = new Map<number, string>(Object.entries(SERVING_STATUS).map(([name, value]) => [value, name]));

export function servingStatusName(status: number): string {
  return SERVING_STATUS_NAMES.get(status) ?? String(status);
}

/** Protobuf wire types: a varint, a length-delimited run of bytes (strings, messages); 1 and 5 are fixed 8 and 4 bytes. */
const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

/** Proto3 leaves a field at its default value (empty string, enum 0) out of the message. */
export function encodeHealthCheckRequest(service: string): Buffer {
  if (service === '') return Buffer.alloc(0);
  const text = Buffer.from(service, 'utf8');
  return Buffer.concat([Buffer.from([(1 << 3) | LENGTH_DELIMITED]), encodeVarint(text.length), text]);
}

export function encodeHealthCheckResponse(status: number): Buffer {
  return status === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([(1 << 3) | VARINT]), encodeVarint(status)]);
}

/** undefined: not a protobuf message (truncated, or a field of the wrong wire type). */
export function decodeHealthCheckRequest(bytes: Buffer): { service: string } | undefined {
  const field = readField1(bytes, LENGTH_DELIMITED);
  if (field === null) return undefined;
  return { service: field === undefined ? '' : (field as Buffer).toString('utf8') };
}

export function decodeHealthCheckResponse(bytes: Buffer): { status: number } | undefined {
  const field = readField1(bytes, VARINT);
  if (field === null) return undefined;
  return { status: field === undefined ? 0 : (field as number) };
}

function encodeVarint(value: number): Buffer {
  const bytes: number[] = [];
  while (value > 0x7f) {
    bytes.push((value & 0x7f) | 0x80);
    value = Math.floor(value / 128);
  }
  bytes.push(value);
  return Buffer.from(bytes);
}

/**
 * The value of field 1 (the last one, as protobuf says for a repeated scalar), skipping other
 * fields as any reader must: undefined when absent, null when the message does not parse.
 */
function readField1(bytes: Buffer, wireType: number): number | Buffer | undefined | null {
  let at = 0;
  let value: number | Buffer | undefined;
  const varint = (): number | null => {
    let result = 0;
    for (let shift = 0; shift < 64; shift += 7) {
      if (at >= bytes.length) return null;
      const byte = bytes[at++]!;
      result += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return result;
    }
    return null;
  };
  while (at < bytes.length) {
    const key = varint();
    if (key === null) return null;
    const [number, type] = [Math.floor(key / 8), key % 8];
    if (number === 0 || (number === 1 && type !== wireType)) return null;
    let fieldValue: number | Buffer;
    if (type === VARINT) {
      const v = varint();
      if (v === null) return null;
      fieldValue = v;
    } else if (type === LENGTH_DELIMITED) {
      const length = varint();
      if (length === null || at + length > bytes.length) return null;
      fieldValue = bytes.subarray(at, at + length);
      at += length;
    } else if (type === FIXED64 || type === FIXED32) {
      at += type === FIXED64 ? 8 : 4;
      if (at > bytes.length) return null;
      continue;
    } else {
      return null; // groups (3, 4) are long deprecated; 6 and 7 do not exist
    }
    if (number === 1) value = fieldValue;
  }
  return value;
}
