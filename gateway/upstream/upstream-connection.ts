// One keep-alive HTTP/1.1 connection to an upstream endpoint, one request at a time: the request
// head written as one string, the body streamed with backpressure (chunked when its length is
// unknown), the response parsed by Node's native llhttp (../http1/native-parser.ts) and
// handed to the exchange handler without building objects. Timeouts are deadlines that the pool
// checks on a coarse tick, not a timer per request.
import type { Socket } from 'node:net';
import { createParser, type NativeParser } from '../http1/native-parser.js';
import { SocketIo } from '../net/socket-io.js';
import type { UpstreamExchangeHandler, UpstreamRequest } from './upstream-exchange.js';
import { UpstreamProtocolError } from './upstream-exchange.js';

const PARSER_RESOURCE = Object.freeze({ type: 'gatehouse.upstream' });
const CRLF = Buffer.from('\r\n', 'latin1');

/** What a connection needs from its pool. */
export interface ConnectionOwner {
  /** Coarse clock (ms), advanced by the pool's tick. */
  readonly now: number;
  readonly headersMs: number;
  readonly bodyMs: number;
  /** The exchange finished and the connection can take another request. */
  released(conn: UpstreamConnection): void;
  /** The socket is gone. */
  closed(conn: UpstreamConnection): void;
}

export class UpstreamConnection {
  readonly #parser: NativeParser;
  #handler: UpstreamExchangeHandler | undefined;
  #body: UpstreamRequest['body'] = null;
  #chunked = false;
  #requestDone = true;
  #responseDone = true;
  #headOnly = false;
  #informational = false;
  #keepAlive = true;
  #partialHeaders: string[] | undefined;
  #closed = false;
  /** Absolute coarse time after which the current phase has timed out; 0 when none applies. */
  #deadline = 0;
  #deadlineCode: 'GATEHOUSE_UPSTREAM_HEADERS_TIMEOUT' | 'GATEHOUSE_UPSTREAM_BODY_TIMEOUT' = 'GATEHOUSE_UPSTREAM_HEADERS_TIMEOUT';
  /** When the connection went idle (coarse ms), for the keep-alive idle timeout. */
  idleSince = 0;
  readonly #io: SocketIo;

  constructor(
    readonly socket: Socket,
    private readonly owner: ConnectionOwner,
    private readonly hostHeader: string,
  ) {
    this.#parser = createParser('response', PARSER_RESOURCE, {
      onHeaders: this.#onHeaderChunk,
      onHeadersComplete: this.#onHeadersComplete,
      onBody: this.#onBody,
      onMessageComplete: this.#onMessageComplete,
    });
    this.#io = new SocketIo(socket, { onData: this.#onSocketData, onEnd: this.#onSocketEnd });
    socket.on('error', this.#onSocketError);
    socket.on('close', this.#onSocketClose);
  }

  get busy(): boolean {
    return this.#handler !== undefined;
  }

  /** Sends `request` on this (idle) connection. */
  run(request: UpstreamRequest, handler: UpstreamExchangeHandler): void {
    this.#handler = handler;
    this.#requestDone = request.body === null;
    this.#responseDone = false;
    this.#headOnly = request.method === 'HEAD';
    this.#informational = false;
    handler.onConnect(this.#abort);
    if (this.#handler !== handler) return; // aborted synchronously

    let head = `${request.method} ${request.path} HTTP/1.1\r\n${request.headerLines}`;
    if (!request.hasHost) head += `host: ${this.hostHeader}\r\n`;
    this.#chunked = request.body !== null && !request.hasLength;
    if (this.#chunked) head += 'transfer-encoding: chunked\r\n';
    head += '\r\n';
    this.#setDeadline(this.owner.headersMs, 'GATEHOUSE_UPSTREAM_HEADERS_TIMEOUT');
    this.#io.write(head);
    if (request.body !== null) this.#streamBody(request.body);
  }

  /** Called by the pool's tick with the current coarse time. */
  checkDeadline(now: number): void {
    if (this.#deadline !== 0 && now >= this.#deadline && this.#handler !== undefined) {
      const phase = this.#deadlineCode === 'GATEHOUSE_UPSTREAM_HEADERS_TIMEOUT' ? 'response headers' : 'response body';
      this.#fail(new UpstreamProtocolError(this.#deadlineCode, `upstream ${phase} timed out`));
    }
  }

  /** Closes the connection (idle timeout, retirement, shutdown). */
  close(): void {
    this.socket.destroy();
  }

  #setDeadline(ms: number, code: 'GATEHOUSE_UPSTREAM_HEADERS_TIMEOUT' | 'GATEHOUSE_UPSTREAM_BODY_TIMEOUT'): void {
    // A disabled (0) timeout never fires; the pool's tick may run up to one tick late.
    this.#deadline = ms > 0 ? this.owner.now + ms : 0;
    this.#deadlineCode = code;
  }

  #streamBody(body: NonNullable<UpstreamRequest['body']>): void {
    this.#body = body;
    const onData = (chunk: Buffer) => {
      if (this.#body !== body || chunk.length === 0) return;
      const framed = this.#chunked ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`, 'latin1'), chunk, CRLF]) : chunk;
      if (!this.#io.write(framed)) {
        body.pause();
        this.#io.onDrain(this.#onDrain);
      }
    };
    const onEnd = () => {
      if (this.#body !== body) return;
      cleanup();
      if (this.#chunked) this.#io.write('0\r\n\r\n');
      this.#body = null;
      this.#requestDone = true;
      if (this.#responseDone) this.#finish();
    };
    const onError = () => {
      if (this.#body !== body) return;
      cleanup();
      // The client's body broke off: the upstream got a truncated request, so the connection goes.
      this.#fail(new UpstreamProtocolError('GATEHOUSE_UPSTREAM_CLOSED', 'client request body ended early'));
    };
    const cleanup = () => {
      body.removeListener('data', onData);
      body.removeListener('end', onEnd);
      body.removeListener('error', onError);
      body.removeListener('aborted', onError);
    };
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
    body.once('aborted', onError);
  }

  readonly #onDrain = (): void => {
    this.#body?.resume();
  };

  readonly #resume = (): void => {
    if (!this.#closed) this.#io.resume();
  };

  readonly #abort = (): void => {
    if (this.#handler === undefined) return;
    this.#handler = undefined;
    this.#body = null;
    this.socket.destroy();
  };

  readonly #onSocketData = (chunk: Buffer): void => {
    if (this.#handler === undefined) {
      // Bytes from an upstream with no request outstanding: it cannot be trusted with the next one.
      this.socket.destroy();
      return;
    }
    const result = this.#parser.execute(chunk);
    if (result instanceof Error) {
      this.#fail(new UpstreamProtocolError('GATEHOUSE_UPSTREAM_BAD_RESPONSE', `invalid upstream response: ${(result as Error & { reason?: string }).reason ?? result.message}`));
      return;
    }
    this.#handler?.onReadDone();
  };

  readonly #onHeaderChunk = (headers: string[]): void => {
    // More than 32 header pairs arrive in pieces before onHeadersComplete.
    this.#partialHeaders = this.#partialHeaders === undefined ? headers : this.#partialHeaders.concat(headers);
  };

  readonly #onHeadersComplete = (
    _major: number,
    _minor: number,
    headers: string[] | undefined,
    _method: unknown,
    _url: unknown,
    statusCode: number,
    statusMessage: string,
    upgrade: boolean,
    shouldKeepAlive: boolean,
  ): number => {
    const handler = this.#handler;
    if (handler === undefined) return 1;
    const all = this.#partialHeaders === undefined ? (headers ?? []) : headers === undefined ? this.#partialHeaders : this.#partialHeaders.concat(headers);
    this.#partialHeaders = undefined;
    if (upgrade || statusCode === 101) {
      // We never ask for an upgrade (Upgrade and Connection are dropped from the request).
      queueMicrotask(() => this.#fail(new UpstreamProtocolError('GATEHOUSE_UPSTREAM_BAD_RESPONSE', 'upstream switched protocols unasked')));
      return 1;
    }
    if (statusCode < 200) {
      this.#informational = true; // 1xx: Node's server sends its own 100-continue
      return 0;
    }
    this.#keepAlive = shouldKeepAlive;
    this.#setDeadline(this.owner.bodyMs, 'GATEHOUSE_UPSTREAM_BODY_TIMEOUT');
    handler.onHeaders(statusCode, all, this.#resume, statusMessage);
    // A HEAD response (and 204/304, which llhttp knows) has no body whatever its headers say.
    return this.#headOnly ? 1 : 0;
  };

  readonly #onBody = (chunk: Buffer): void => {
    const handler = this.#handler;
    if (handler === undefined) return;
    if (this.owner.bodyMs > 0) this.#deadline = this.owner.now + this.owner.bodyMs;
    if (!handler.onData(chunk)) this.#io.pause();
  };

  readonly #onMessageComplete = (): void => {
    if (this.#informational) {
      this.#informational = false;
      return;
    }
    const handler = this.#handler;
    if (handler === undefined) return;
    this.#responseDone = true;
    this.#deadline = 0;
    handler.onComplete();
    if (this.#requestDone) this.#finish();
    // Otherwise the upstream answered before the whole body was sent: finish when it has been.
  };

  #finish(): void {
    this.#handler = undefined;
    if (!this.#keepAlive || this.#closed) {
      this.socket.destroy();
      return;
    }
    this.owner.released(this);
  }

  #fail(err: Error): void {
    const handler = this.#handler;
    this.#handler = undefined;
    this.#body = null;
    this.#deadline = 0;
    this.socket.destroy();
    if (handler !== undefined && !this.#responseDone) handler.onError(err);
  }

  readonly #onSocketEnd = (): void => {
    // A response delimited by the close of the connection ends here.
    if (this.#handler !== undefined) {
      const result = this.#parser.finish();
      if (result instanceof Error) this.#fail(new UpstreamProtocolError('GATEHOUSE_UPSTREAM_BAD_RESPONSE', 'upstream response cut short'));
    }
    this.#keepAlive = false;
    this.socket.destroy();
  };

  #socketError: Error | undefined;
  readonly #onSocketError = (err: Error): void => {
    this.#socketError = err;
  };

  readonly #onSocketClose = (): void => {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#handler !== undefined && !this.#responseDone) {
      this.#fail(this.#socketError ?? new UpstreamProtocolError('GATEHOUSE_UPSTREAM_CLOSED', 'upstream closed the connection'));
    }
    this.#handler = undefined;
    this.#body = null;
    this.#parser.remove();
    this.#parser.free();
    this.owner.closed(this);
  };
}
