// One keep-alive HTTP/1.1 connection to an upstream endpoint, one request at a time: the request
// head written as one string, the body streamed with backpressure (chunked when its length is
// unknown), the response head parsed by Node's native llhttp (../http1/native-parser.ts) and
// handed to the exchange handler without building objects. A Content-Length body, the usual
// case, is counted off the socket reads here: llhttp would copy it into a new Buffer and call
// into JavaScript twice more (body, message end) for every response. Timeouts are deadlines that
// the pool checks on a coarse tick, not a timer per request. The response-head clock does not run
// while the request body waits for the client (the client connection times that), only while
// the upstream is what we wait for: a body it does not take, or a response after the request.
import { Buffer } from 'node:buffer'; // the global Buffer is a getter on globalThis: read on every use
import type { Socket } from 'node:net';
import { createParser, type NativeParser, watchMessageComplete } from '../http1/native-parser.js';
import { contentLength } from '../message/content-length.js';
import { SocketIo } from '../net/socket-io.js';
import type { UpstreamExchangeHandler, UpstreamRequest } from './upstream-exchange.js';
import { UpstreamProtocolError } from './upstream-exchange.js';
import type { SessionOwner, SingleSession } from './upstream-session.js';

const PARSER_RESOURCE = Object.freeze({ type: 'gatehouse.upstream' });
const CRLF = Buffer.from('\r\n', 'latin1');

export class UpstreamConnection implements SingleSession {
  readonly multiplexed = false as const;
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
  /** Bytes of a Content-Length body still to come, read past the parser; -1 when llhttp frames the body. */
  #bodyLeft = -1;
  #closed = false;
  /** Absolute coarse time after which the current phase has timed out; 0 when none applies. */
  #deadline = 0;
  #deadlineCode: 'GATEHOUSE_UPSTREAM_HEADERS_TIMEOUT' | 'GATEHOUSE_UPSTREAM_BODY_TIMEOUT' = 'GATEHOUSE_UPSTREAM_HEADERS_TIMEOUT';
  /** When the connection went idle (coarse ms), for the keep-alive idle timeout. */
  idleSince = 0;
  readonly #io: SocketIo;

  constructor(
    readonly socket: Socket,
    private readonly owner: SessionOwner,
    private readonly hostHeader: string,
  ) {
    this.#parser = createParser('response', PARSER_RESOURCE, {
      onHeaders: this.#onHeaderChunk,
      onHeadersComplete: this.#onHeadersComplete,
      onBody: this.#onBody,
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

    // The head in HTTP/1.1 text: the header list written as it is (the request path kept CR/LF out).
    let head = `${request.method} ${request.path} HTTP/1.1\r\n`;
    const headers = request.headers;
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]!}: ${headers[i + 1]!}\r\n`;
    if (request.authority === undefined) head += `host: ${this.hostHeader}\r\n`;
    this.#chunked = request.body !== null && !request.hasLength;
    if (this.#chunked) head += 'transfer-encoding: chunked\r\n';
    head += '\r\n';
    this.#setDeadline(request.body === null ? this.owner.headersMs : 0, 'GATEHOUSE_UPSTREAM_HEADERS_TIMEOUT');
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
    if (body.destroyed) {
      this.#fail(body.errored ?? new UpstreamProtocolError('GATEHOUSE_UPSTREAM_CLOSED', 'client request body ended early'));
      return;
    }
    this.#body = body;
    const onData = (chunk: Buffer) => {
      if (this.#body !== body || chunk.length === 0) return;
      const framed = this.#chunked ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`, 'latin1'), chunk, CRLF]) : chunk;
      if (!this.#io.write(framed)) {
        body.pause();
        this.#io.onDrain(this.#onDrain);
        this.#awaitHead(true); // the upstream is not taking the body
      }
    };
    const onEnd = () => {
      if (this.#body !== body) return;
      cleanup();
      if (this.#chunked) this.#io.write('0\r\n\r\n');
      this.#body = null;
      this.#requestDone = true;
      this.#awaitHead(true);
      if (this.#responseDone) this.#finish();
    };
    const onError = (err?: unknown) => {
      if (this.#body !== body) return;
      cleanup();
      // The client's body broke off: the upstream got a truncated request, so the connection goes.
      // Its error (a RequestBodyError: malformed, too slow, too large) tells how to answer the client.
      this.#fail(err instanceof Error ? err : new UpstreamProtocolError('GATEHOUSE_UPSTREAM_CLOSED', 'client request body ended early'));
    };
    const cleanup = () => {
      body.removeListener('data', onData);
      body.removeListener('end', onEnd);
      body.removeListener('error', onError);
      body.removeListener('close', onError);
    };
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
    // Destroyed without an error (nobody listened then), a body ends with 'close' alone.
    body.once('close', onError);
  }

  readonly #onDrain = (): void => {
    if (this.#body === null) return;
    this.#awaitHead(false); // the body waits for the client again
    this.#body.resume();
  };

  /** While no response head has come: whether its clock runs (the upstream is what we wait for). */
  #awaitHead(upstreamsTurn: boolean): void {
    if (this.#deadlineCode !== 'GATEHOUSE_UPSTREAM_HEADERS_TIMEOUT' || this.#responseDone) return;
    this.#setDeadline(upstreamsTurn ? this.owner.headersMs : 0, 'GATEHOUSE_UPSTREAM_HEADERS_TIMEOUT');
  }

  readonly #resume = (): void => {
    if (!this.#closed) this.#io.resume();
  };

  readonly #abort = (): void => {
    if (this.#handler === undefined) return;
    this.#handler = undefined;
    this.#bodyLeft = -1;
    this.#body = null;
    this.socket.destroy();
  };

  readonly #onSocketData = (chunk: Buffer): void => {
    if (this.#handler === undefined) {
      // Bytes from an upstream with no request outstanding: it cannot be trusted with the next one.
      this.socket.destroy();
      return;
    }
    if (this.#bodyLeft >= 0) {
      this.#countedBody(chunk);
    } else {
      const result = this.#parser.execute(chunk);
      if (typeof result !== 'number') {
        this.#fail(new UpstreamProtocolError('GATEHOUSE_UPSTREAM_BAD_RESPONSE', `invalid upstream response: ${result?.reason ?? result?.message}`));
        return;
      }
      // The parser stopped at the end of a head whose Content-Length body is counted here.
      if (this.#bodyLeft >= 0) this.#countedBody(chunk.subarray(result));
    }
    this.#handler?.onReadDone();
  };

  /** Body bytes of a Content-Length response (see #onHeadersComplete), as many as it has left. */
  #countedBody(bytes: Buffer): void {
    const handler = this.#handler;
    if (handler === undefined) return;
    const left = this.#bodyLeft;
    if (bytes.length > 0 && left > 0) {
      const body = bytes.length <= left ? bytes : bytes.subarray(0, left);
      this.#bodyLeft = left - body.length;
      this.#onBody(body);
    }
    if (this.#bodyLeft !== 0 || this.#handler !== handler) return;
    // More bytes than the response announced: no request is waiting for them, so the connection goes.
    if (bytes.length > left) this.#keepAlive = false;
    this.#bodyLeft = -1;
    this.#onMessageComplete();
  }

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
      watchMessageComplete(this.#parser, this.#onMessageComplete);
      return 0;
    }
    this.#keepAlive = shouldKeepAlive;
    this.#setDeadline(this.owner.bodyMs, 'GATEHOUSE_UPSTREAM_BODY_TIMEOUT');
    handler.onHeaders(statusCode, all, this.#resume, statusMessage);
    if (this.#handler !== handler) return 1; // the client went away meanwhile
    // A HEAD response (and 204/304) has no body whatever its headers say.
    const announced = this.#headOnly || statusCode === 204 || statusCode === 304 ? -1 : contentLength(all);
    const length = Number.isSafeInteger(announced) ? announced : -1; // beyond 2^53 bytes, llhttp counts
    if (length >= 0) {
      // 2 tells llhttp to stop at the end of the head as if the rest were another protocol; it is
      // ready for the next response afterwards, and execute() returns where the body begins.
      this.#bodyLeft = length;
      return 2;
    }
    // Bodiless, chunked or delimited by the close of the connection: llhttp frames the message.
    watchMessageComplete(this.#parser, this.#onMessageComplete);
    return this.#headOnly ? 1 : 0;
  };

  readonly #onBody = (chunk: Buffer): void => {
    const handler = this.#handler;
    if (handler === undefined) return;
    if (this.owner.bodyMs > 0) this.#deadline = this.owner.now + this.owner.bodyMs;
    if (!handler.onData(chunk)) this.#io.pause();
  };

  readonly #onMessageComplete = (): void => {
    watchMessageComplete(this.#parser, undefined);
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
    // A client that was backed up at the response's last bytes paused reading: the next exchange
    // (and the idle connection, which must see the upstream close) reads again.
    this.#io.resume();
    this.owner.released(this);
  }

  #fail(err: Error): void {
    const handler = this.#handler;
    this.#handler = undefined;
    this.#bodyLeft = -1;
    this.#body = null;
    this.#deadline = 0;
    this.socket.destroy();
    if (handler !== undefined && !this.#responseDone) handler.onError(err);
  }

  readonly #onSocketEnd = (): void => {
    // A response delimited by the close of the connection ends here.
    // A counted body short of its length is cut short; llhttp tells for any other framing.
    if (this.#handler !== undefined && (this.#bodyLeft > 0 || this.#parser.finish() instanceof Error)) {
      this.#fail(new UpstreamProtocolError('GATEHOUSE_UPSTREAM_BAD_RESPONSE', 'upstream response cut short'));
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
    this.#parser.close(); // safe here: 'close' comes after the stack that parsed has unwound
    this.owner.closed(this);
  };
}
