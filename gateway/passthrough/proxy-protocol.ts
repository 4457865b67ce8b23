// PROXY protocol headers (HAProxy's spec, v1 text and v2 binary) that a passthrough relay writes
// to the backend before the client's bytes, so that the backend sees the client's address (and,
// in v2, the SNI as the authority TLV) although the TCP connection comes from the gateway.
import net from 'node:net';

export type ProxyProtocolVersion = 'v1' | 'v2';

export interface ProxiedConnection {
  /** The client: the relayed socket's remote address and port. */
  readonly sourceAddress: string | undefined;
  readonly sourcePort: number | undefined;
  /** Where the client connected to: the relayed socket's local address and port. */
  readonly destinationAddress: string | undefined;
  readonly destinationPort: number | undefined;
  /** v2 only: sent as PP2_TYPE_AUTHORITY (the SNI the client asked for). */
  readonly authority?: string;
}

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_PROXY_COMMAND = 0x21; // version 2, PROXY
const V2_TCP4 = 0x11;
const V2_TCP6 = 0x21;
const V2_UNSPEC = 0x00;
const PP2_TYPE_AUTHORITY = 0x02;
const MAPPED_V4 = '::ffff:';

export function proxyHeader(version: ProxyProtocolVersion, c: ProxiedConnection): Buffer {
  return version === 'v1' ? proxyHeaderV1(c) : proxyHeaderV2(c);
}

type Family = { kind: 4 | 6; source: string; destination: string } | undefined;

/** Both ends in one family; IPv4-mapped IPv6 (a dual-stack listener) is written as IPv4. */
function family(c: ProxiedConnection): Family {
  if (c.sourcePort === undefined || c.destinationPort === undefined) return undefined;
  let source = stripZone(c.sourceAddress ?? '');
  let destination = stripZone(c.destinationAddress ?? '');
  if (source.toLowerCase().startsWith(MAPPED_V4) && net.isIPv4(source.slice(MAPPED_V4.length))) {
    if (destination.toLowerCase().startsWith(MAPPED_V4) && net.isIPv4(destination.slice(MAPPED_V4.length))) {
      source = source.slice(MAPPED_V4.length);
      destination = destination.slice(MAPPED_V4.length);
    }
  }
  if (net.isIPv4(source) && net.isIPv4(destination)) return { kind: 4, source, destination };
  if (net.isIPv6(source) && net.isIPv6(destination)) return { kind: 6, source, destination };
  return undefined;
}

function stripZone(address: string): string {
  const percent = address.indexOf('%');
  return percent === -1 ? address : address.slice(0, percent);
}

export function proxyHeaderV1(c: ProxiedConnection): Buffer {
  const f = family(c);
  if (f === undefined) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  return Buffer.from(`PROXY TCP${f.kind} ${f.source} ${f.destination} ${c.sourcePort} ${c.destinationPort}\r\n`, 'latin1');
}

export function proxyHeaderV2(c: ProxiedConnection): Buffer {
  const f = family(c);
  const authority = c.authority === undefined ? undefined : Buffer.from(c.authority, 'utf8');
  const addressLength = f === undefined ? 0 : f.kind === 4 ? 12 : 36;
  const tlvLength = authority === undefined ? 0 : 3 + authority.length;
  const header = Buffer.alloc(16 + addressLength + tlvLength);
  V2_SIGNATURE.copy(header, 0);
  header[12] = V2_PROXY_COMMAND;
  header[13] = f === undefined ? V2_UNSPEC : f.kind === 4 ? V2_TCP4 : V2_TCP6;
  header.writeUInt16BE(addressLength + tlvLength, 14);
  let p = 16;
  if (f !== undefined) {
    const size = f.kind === 4 ? 4 : 16;
    const write = f.kind === 4 ? writeIPv4 : writeIPv6;
    write(f.source, header, p);
    write(f.destination, header, p + size);
    p += 2 * size;
    header.writeUInt16BE(c.sourcePort!, p);
    header.writeUInt16BE(c.destinationPort!, p + 2);
    p += 4;
  }
  if (authority !== undefined) {
    header[p] = PP2_TYPE_AUTHORITY;
    header.writeUInt16BE(authority.length, p + 1);
    authority.copy(header, p + 3);
  }
  return header;
}

function writeIPv4(address: string, out: Buffer, at: number): void {
  const parts = address.split('.');
  for (let i = 0; i < 4; i++) out[at + i] = Number(parts[i]);
}

/** `address` is valid IPv6 (net.isIPv6), possibly with `::` and a dotted IPv4 tail. */
function writeIPv6(address: string, out: Buffer, at: number): void {
  const groups: number[] = [];
  const [head, tail] = address.includes('::') ? address.split('::') : [address, undefined];
  const parse = (part: string | undefined): number[] => {
    if (!part) return [];
    const result: number[] = [];
    for (const piece of part.split(':')) {
      if (piece.includes('.')) {
        const v4 = piece.split('.').map(Number);
        result.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else result.push(parseInt(piece, 16));
    }
    return result;
  };
  const left = parse(head);
  const right = parse(tail);
  groups.push(...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right);
  for (let i = 0; i < 8; i++) out.writeUInt16BE(groups[i]!, at + 2 * i);
}
