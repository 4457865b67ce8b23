// The response to one client request, written straight to the client socket: the head is held
// until the first body bytes (or the end) so that head and body leave in one write, and the
// framing follows the headers given (Content-Length as is; otherwise chunked for HTTP/1.1 clients
// or close-delimited for HTTP/1.0). Hop-by-hop headers are the caller's to remove.
import { Buffer } from 'node:buffer'; // the global Buffer is a getter on globalThis: read on every use
import type { SocketIo } from '../net/socket-io.js';
import { isContentLength } from '../message/content-length.js';
import type { DownstreamResponse } from '../session/downstream-response.js';
import { httpDate } from './http-date.js';

/** What a response needs from its connection. */
export interface ResponseOwner {
  readonly io: SocketIo;
  /** The connection must close after the response being written, whatever the client asked. */
  readonly mustClose: boolean;
  /** The response has been written completely; `reusable`: the connection may carry the next one. */
  finished(reusable: boolean): void;
}

export interface ResponseOptions {
  /** The request's method is HEAD: the response has no body whatever its headers say. */
  readonly head: boolean;
  /** HTTP/1.0 client: no chunked framing; keep-alive only when it asked for it. */
  readonly http10: boolean;
  /** The client asked to keep the connection (llhttp's should_keep_alive). */
  readonly keepAlive: boolean;
}

const enum Framing {
  None,
  Length,
  Chunked,
  Close,
}

const CHUNK_END = Buffer.from('\r\n', 'latin1');
const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');

export class ClientResponse implements DownstreamResponse {
  /** gRPC needs HTTP/2. */
  readonly grpc = false;
  #head: string | undefined;
  #headersSent = false;
  #framing = Framing.None;
  #reusable = false;
  #ended = false;
  #closed = false;
  #onClose: (() => void) | undefined;

  constructor(
    private readonly owner: ResponseOwner,
    private readonly options: ResponseOptions,
  ) {}

  get headersSent(): boolean {
    return this.#headersSent;
  }

  /** The client connection is gone: nothing written now reaches anyone. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Sets the head (flat [name, value, …] list); it leaves with the first body bytes or the end. */
  writeHead(status: number, statusText: string, headers: readonly string[]): void {
    if (this.#headersSent) throw new Error('response head already written');
    this.#headersSent = true;
    let lines = `HTTP/1.1 ${status} ${statusText}\r\n`;
    let hasLength = false;
    let hasDate = false;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      if (isContentLength(name)) hasLength = true;
      else if (name.length === 4 && name.toLowerCase() === 'date') hasDate = true;
      lines += `${name}: ${headers[i + 1]!}\r\n`;
    }
    if (!hasDate) lines += `date: ${httpDate()}\r\n`;
    const bodiless = this.options.head || status === 204 || status === 304;
    if (bodiless) this.#framing = Framing.None;
    else if (hasLength) this.#framing = Framing.Length;
    else if (!this.options.http10) {
      this.#framing = Framing.Chunked;
      lines += 'transfer-encoding: chunked\r\n';
    } else this.#framing = Framing.Close;
    this.#reusable = this.options.keepAlive && !this.owner.mustClose && this.#framing !== Framing.Close;
    if (!this.#reusable) lines += 'connection: close\r\n';
    else if (this.options.http10) lines += 'connection: keep-alive\r\n';
    this.#head = lines + '\r\n';
  }

  /** Sends a head set by writeHead now, rather than with the first body bytes. */
  flushHead(): void {
    const head = this.#head;
    if (head === undefined || this.#closed) return;
    this.#head = undefined;
    this.owner.io.write(head);
  }

  /** Writes body bytes; false when the socket's buffer is full (wait for onDrain). */
  write(chunk: Buffer): boolean {
    if (this.#closed || this.#ended) return false;
    return this.owner.io.write(this.#frame(chunk, false));
  }

  /** Ends the response, with `chunk` as its last body bytes; `trailers` go in a chunked body's last chunk (else nowhere). */
  end(chunk?: Buffer, trailers?: readonly string[]): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#closed) return;
    if (!this.#headersSent) this.writeHead(200, 'OK', ['content-length', '0']);
    const last = this.#frame(chunk, true, trailers);
    if (last.length > 0) this.owner.io.write(last);
    this.owner.finished(this.#reusable);
  }

  /** Cuts the client connection: the only honest signal left once a response has started. */
  destroy(err?: Error): void {
    this.#ended = true;
    this.owner.io.socket.destroy(err);
  }

  onDrain(listener: () => void): void {
    this.owner.io.onDrain(listener);
  }

  /** Called once if the connection closes before this response has ended. */
  onClose(listener: () => void): void {
    this.#onClose = listener;
  }

  /** The connection closed (called by the connection). */
  connectionClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#ended) this.#onClose?.();
  }

  /** Head (if still held) and body bytes as the framing wants them, as one buffer: one socket write. */
  #frame(chunk: Buffer | undefined, last: boolean, trailers?: readonly string[]): Buffer {
    const head = this.#head;
    this.#head = undefined;
    let body: Buffer | undefined = chunk !== undefined && chunk.length > 0 && this.#framing !== Framing.None ? chunk : undefined;
    if (this.#framing === Framing.Chunked) {
      const parts: Buffer[] = [];
      if (body !== undefined) parts.push(Buffer.from(`${body.length.toString(16)}\r\n`, 'latin1'), body, CHUNK_END);
      if (last) parts.push(trailers === undefined || trailers.length === 0 ? LAST_CHUNK : lastChunkWith(trailers));
      body = parts.length === 0 ? undefined : parts.length === 1 ? parts[0] : Buffer.concat(parts);
    }
    if (head === undefined) return body ?? EMPTY;
    if (body === undefined) return Buffer.from(head, 'latin1');
    const out = Buffer.allocUnsafe(head.length + body.length);
    out.write(head, 0, 'latin1');
    body.copy(out, head.length);
    return out;
  }
}

const EMPTY = Buffer.alloc(0);

/** The last chunk with a trailer section (RFC 9112 §7.1.2). */
function lastChunkWith(trailers: readonly string[]): Buffer {
  let text = '0\r\n';
  for (let i = 0; i < trailers.length; i += 2) text += `${trailers[i]!}: ${trailers[i + 1]!}\r\n`;
  return Buffer.from(text + '\r\n', 'latin1');
}
