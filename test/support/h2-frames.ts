// HTTP/2 on the wire for tests that must send what no well-behaved client sends (floods, malformed
// requests): frames built byte by byte (RFC 9113 §4), header blocks as HPACK literals without
// indexing or Huffman coding (RFC 7541 §6.2.2), over a real mTLS connection; and the frames the
// gateway answers with, parsed as they arrive.
import type { TLSSocket } from 'node:tls';
import { connectMtls, type ClientCert } from './mtls-client.js';

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
export const ERROR = { NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, REFUSED_STREAM: 7, CANCEL: 8, ENHANCE_YOUR_CALM: 11 } as const;

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK integer with an N-bit prefix (RFC 7541 §5.1). */
function hpackInteger(value: number, prefixBits: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [value];
  const out = [max];
  for (value -= max; value >= 128; value = Math.floor(value / 128)) out.push((value % 128) + 128);
  out.push(value);
  return out;
}

/** A header block of literal fields without indexing, new names (RFC 7541 §6.2.2). */
export function headerBlock(fields: readonly (readonly [string, string])[]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) {
    const n = Buffer.from(name, 'latin1');
    const v = Buffer.from(value, 'latin1');
    parts.push(Buffer.from([0x00, ...hpackInteger(n.length, 7)]), n, Buffer.from(hpackInteger(v.length, 7)), v);
  }
  return Buffer.concat(parts);
}

/** A GET request's header block for `path` on `authority`. */
export function getRequest(path: string, authority = 'localhost'): Buffer {
  return headerBlock([
    [':method', 'GET'],
    [':scheme', 'https'],
    [':path', path],
    [':authority', authority],
  ]);
}

export const rstStream = (streamId: number, code: number) => frame(FRAME.RST_STREAM, 0, streamId, Buffer.from([0, 0, 0, code]));
export const ping = (n = 0) => frame(FRAME.PING, 0, 0, Buffer.alloc(8, n & 0xff));
export const emptySettings = () => frame(FRAME.SETTINGS, 0, 0);

export interface ReceivedFrame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

/** A raw HTTP/2 client connection: writes frames, and keeps every frame the gateway sent. */
export class RawH2Connection {
  readonly frames: ReceivedFrame[] = [];
  #pending = Buffer.alloc(0);
  #closed: Promise<void>;

  private constructor(readonly socket: TLSSocket) {
    socket.on('error', () => {}); // the gateway closing on a flood may reset a write in flight
    socket.on('data', (chunk: Buffer) => {
      let data = Buffer.concat([this.#pending, chunk]);
      while (data.length >= 9) {
        const length = data.readUIntBE(0, 3);
        if (data.length < 9 + length) break;
        const received = { type: data[3]!, flags: data[4]!, streamId: data.readUInt32BE(5) & 0x7fffffff, payload: data.subarray(9, 9 + length) };
        // Keep the count of frames bounded in memory: floods are answered frame by frame.
        if (this.frames.length < 100_000) this.frames.push(received);
        // Acknowledge the server's SETTINGS, as any client must.
        if (received.type === FRAME.SETTINGS && (received.flags & FLAG.ACK) === 0 && this.ackSettings) socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
        data = data.subarray(9 + length);
      }
      this.#pending = Buffer.from(data);
    });
    this.#closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  /** Whether the server's SETTINGS get their ACK (a flood test may want them not to). */
  ackSettings = true;

  static async open(opts: { port: number; ca: string; cert: ClientCert; servername?: string }): Promise<RawH2Connection> {
    const socket = await connectMtls({ ...opts, ALPNProtocols: ['h2'] });
    if (socket.alpnProtocol !== 'h2') throw new Error(`ALPN agreed on ${String(socket.alpnProtocol)}, not h2`);
    const connection = new RawH2Connection(socket);
    socket.write(Buffer.concat([PREFACE, emptySettings()]));
    return connection;
  }

  /** Writes `data`, waiting for the socket to drain; false once the gateway has closed it. */
  async write(data: Buffer): Promise<boolean> {
    if (this.socket.destroyed || this.socket.writableEnded) return false;
    if (this.socket.write(data)) return true;
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        this.socket.off('drain', onDrain).off('close', onClose);
        resolve(ok);
      };
      const onDrain = () => done(true);
      const onClose = () => done(false);
      this.socket.once('drain', onDrain).once('close', onClose);
    });
  }

  /** The GOAWAY the gateway sent: last stream id and error code. */
  get goaway(): { lastStreamId: number; code: number } | undefined {
    const f = this.frames.find((x) => x.type === FRAME.GOAWAY);
    return f && { lastStreamId: f.payload.readUInt32BE(0) & 0x7fffffff, code: f.payload.readUInt32BE(4) };
  }

  /** The RST_STREAM codes the gateway sent, by stream. */
  resets(): Map<number, number> {
    return new Map(this.frames.filter((f) => f.type === FRAME.RST_STREAM).map((f) => [f.streamId, f.payload.readUInt32BE(0)]));
  }

  /** Resolves when the gateway has closed the connection, or rejects after `ms`. */
  closed(ms: number): Promise<void> {
    return Promise.race([this.#closed, new Promise<void>((_, reject) => setTimeout(() => reject(new Error(`connection still open after ${ms} ms`)), ms))]);
  }

  close(): void {
    this.socket.destroy();
  }
}
