// A client's HTTP/1.1 connection after the TLS handshake (or plaintext on PERMISSIVE listeners),
// served without node:http: llhttp parses straight from socket reads into flat header lists, one
// request is answered at a time (pipelined ones wait, parsed, with the socket paused), and the
// request-head and keep-alive timeouts are deadlines swept by one interval. Node's http server
// spends about as much CPU per request as the TLS record work itself; this keeps only what a
// proxy needs.
import { Buffer } from 'node:buffer'; // the global Buffer is a getter on globalThis: read on every use
import type { Socket } from 'node:net';
import { isReadBufferView, SocketIo } from '../net/socket-io.js';
import type { ClientRequest } from './client-request.js';
import { RequestBody, type BodySource } from './client-request.js';
import { ClientResponse, type ResponseOwner } from './client-response.js';
import { unwatchDeadline, watchDeadline, type HasDeadline } from './connection-deadlines.js';
import { sendError } from './error-response.js';
import { createParser, METHODS, type NativeParser, type ParseError, watchMessageBegin, watchMessageComplete } from './native-parser.js';

export type RequestHandler = (req: ClientRequest, res: ClientResponse) => void;

export interface ClientConnectionOptions {
  readonly handler: RequestHandler;
  /** From connection to the end of the first request head, and from a head's first byte to its end. */
  readonly headersMs: number;
  /** Keep-alive: between the end of a response and the first byte of the next request. */
  readonly idleMs: number;
  /** A request refused before reaching the handler (malformed, too large, too slow), for metrics. */
  readonly onRefused?: (status: number, reason: string) => void;
}

interface Exchange {
  readonly req: ClientRequest;
  readonly res: ClientResponse;
  readonly body: RequestBody | null;
  readonly expectContinue: boolean;
}

const PARSER_RESOURCE = Object.freeze({ type: 'gatehouse.client' });
/** How long a connection we ended may wait for the client to close its side. */
const LINGER_MS = 5_000;
const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
const CR = 13;
const LF = 10;

const enum Wait {
  None,
  /** For a request head: the first one, or one whose first bytes arrived. */
  Head,
  /** Keep-alive idle between requests. */
  Idle,
  /** We ended our side; the client should close. */
  Linger,
}

export class ClientConnection implements ResponseOwner, BodySource, HasDeadline {
  /** Made at the first bytes: an idle connection that never sends a request costs no parser. */
  #parser: NativeParser | undefined;
  readonly #remote: string;
  /** The exchange being answered; pipelined requests wait in #queue. */
  #current: Exchange | undefined;
  readonly #queue: Exchange[] = [];
  /** The exchange whose body the parser is reading. */
  #reading: Exchange | undefined;
  #partialHeaders: string[] | undefined;
  #partialUrl = '';
  #headStarted = false;
  /** The last thing parsed in the current read was a head without a body. */
  #headEnded = false;
  #bodyFull = false;
  #paused = false;
  #clientEnded = false;
  #closing = false;
  #closed = false;
  #wait = Wait.Head;
  deadline: number;
  readonly io: SocketIo;

  constructor(
    readonly socket: Socket,
    private readonly options: ClientConnectionOptions,
  ) {
    this.#remote = socket.remoteAddress ?? '';
    this.deadline = options.headersMs > 0 ? Date.now() + options.headersMs : 0;
    watchDeadline(this);
    this.io = new SocketIo(socket, { onData: this.#onData, onEnd: this.#onEnd });
    socket.on('error', noop); // resets and the like: 'close' follows and cleans up
    socket.on('close', this.#onClose);
  }

  /** Stops the connection now (shutdown, revocation): in-flight requests are cut. */
  destroy(): void {
    this.socket.destroy();
  }

  expire(): void {
    const wait = this.#wait;
    this.deadline = 0;
    if (wait === Wait.Head && this.#headStarted && this.#current === undefined) {
      this.#refuse(408, 'request_timeout', 'request head not received in time');
    } else if (wait === Wait.Idle || wait === Wait.Head) {
      this.#endConnection();
    } else if (wait === Wait.Linger) {
      this.socket.destroy();
    }
  }

  // --- parser callbacks -------------------------------------------------------------------------

  readonly #onData = (chunk: Buffer): void => {
    // Bytes outside a request body begin a head (a lone CRLF between requests does not). llhttp's
    // message-begin callback would tell, at the cost of a call into JavaScript for every request.
    if (!this.#headStarted && this.#reading === undefined && (chunk.length > 2 || (chunk[0] !== CR && chunk[0] !== LF))) this.#headStarted = true;
    let data = chunk;
    for (;;) {
      const parsed = (this.#parser ??= this.#createParser()).execute(data);
      if (typeof parsed !== 'number') return this.#protocolError(parsed);
      // llhttp stops after a request that asked for an upgrade; it is served as a plain request
      // (Upgrade is hop-by-hop and dropped), so parsing goes on with the bytes after it.
      if (this.#closed || this.#closing) return;
      if (parsed === 0 || parsed >= data.length) break;
      data = data.subarray(parsed);
    }
    // The last thing parsed was a bodiless head: another began after it unless the read ended with it.
    if (this.#headEnded) {
      this.#headEnded = false;
      this.#headStarted = !endsWithEmptyLine(chunk);
    }
    if (this.#headStarted && this.#wait === Wait.Idle) this.#setWait(Wait.Head, this.options.headersMs);
  };

  #createParser(): NativeParser {
    return createParser('request', PARSER_RESOURCE, {
      onHeaders: this.#onHeaderChunk,
      onHeadersComplete: this.#onHeadersComplete,
      onBody: this.#onBody,
    });
  }

  /** Watched only after a head with a body: where the body ends, a read may go on with the next head. */
  readonly #onMessageBegin = (): void => {
    watchMessageBegin(this.#parser!, undefined);
    this.#headStarted = true; // its clock is started at the end of the read (#onData)
  };

  readonly #onHeaderChunk = (headers: string[], url: string): void => {
    // Heads with more than 32 headers (or split across reads) arrive in pieces.
    this.#partialHeaders = this.#partialHeaders === undefined ? headers : this.#partialHeaders.concat(headers);
    this.#partialUrl += url;
  };

  readonly #onHeadersComplete = (
    versionMajor: number,
    versionMinor: number,
    headers: string[] | undefined,
    method: number,
    url: string | undefined,
    _statusCode: unknown,
    _statusMessage: unknown,
    _upgrade: boolean,
    shouldKeepAlive: boolean,
  ): number => {
    const raw = this.#partialHeaders === undefined ? (headers ?? []) : headers === undefined ? this.#partialHeaders : this.#partialHeaders.concat(headers);
    const target = this.#partialUrl === '' ? (url ?? '') : this.#partialUrl + (url ?? '');
    this.#partialHeaders = undefined;
    this.#partialUrl = '';
    this.#headStarted = false;
    this.#setWait(Wait.None, 0);

    let hasBody = false;
    let expectContinue = false;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      const n = name.length;
      if (n === 14 && name.toLowerCase() === 'content-length') hasBody = raw[i + 1] !== '0';
      else if (n === 17 && name.toLowerCase() === 'transfer-encoding') hasBody = true;
      else if (n === 6 && name.toLowerCase() === 'expect') expectContinue = raw[i + 1]!.toLowerCase() === '100-continue';
    }
    const methodName = METHODS[method] ?? 'GET';
    const body = hasBody ? new RequestBody(this) : null;
    const http10 = versionMajor === 1 && versionMinor === 0;
    const exchange: Exchange = {
      req: { method: methodName, url: target, rawHeaders: raw, remoteAddress: this.#remote, socket: this.socket, body },
      res: new ClientResponse(this, { head: methodName === 'HEAD', http10, keepAlive: shouldKeepAlive }),
      body,
      expectContinue: expectContinue && !http10,
    };
    this.#headEnded = body === null;
    if (body !== null) {
      this.#reading = exchange;
      watchMessageComplete(this.#parser!, this.#onMessageComplete); // only a body's end needs telling
      watchMessageBegin(this.#parser!, this.#onMessageBegin);
    }
    if (methodName === 'CONNECT') {
      // A tunnel request: everything after its head would be opaque bytes. Not a proxy we offer.
      this.#closing = true;
      if (this.#current === undefined) this.#refuse(405, 'method_not_allowed', 'CONNECT is not supported');
      else this.socket.destroy();
      return 0;
    }
    if (this.#current === undefined) this.#start(exchange);
    else {
      this.#queue.push(exchange);
      this.#updateFlow();
    }
    return 0;
  };

  readonly #onBody = (chunk: Buffer): void => {
    const body = this.#reading?.body;
    if (body == null || body.destroyed) return;
    if (!body.push(isReadBufferView(chunk) ? Buffer.from(chunk) : chunk)) {
      this.#bodyFull = true;
      this.#updateFlow();
    }
  };

  readonly #onMessageComplete = (): void => {
    const exchange = this.#reading;
    watchMessageComplete(this.#parser!, undefined);
    if (exchange === undefined) return;
    this.#reading = undefined;
    const body = exchange.body!;
    body.complete = true;
    if (!body.destroyed) body.push(null);
    if (this.#bodyFull) {
      this.#bodyFull = false;
      this.#updateFlow();
    }
  };

  // --- exchanges --------------------------------------------------------------------------------

  #start(exchange: Exchange): void {
    this.#current = exchange;
    this.options.handler(exchange.req, exchange.res);
  }

  /** BodySource: the upstream side wants (more of) the current request's body. */
  wantMore(body: RequestBody, first: boolean): void {
    const current = this.#current;
    if (first && current !== undefined && current.body === body && current.expectContinue && !current.res.headersSent) {
      this.io.write(CONTINUE);
    }
    if (this.#bodyFull && this.#reading?.body === body) {
      this.#bodyFull = false;
      this.#updateFlow();
    }
  }

  /** ResponseOwner: the current response has been written completely. */
  finished(reusable: boolean): void {
    const done = this.#current;
    this.#current = undefined;
    if (this.#closed) return;
    // The rest of an unread request body would be parsed as the next request's bytes: close instead.
    const bodyLeft = done?.body != null && !done.body.complete;
    if (!reusable || bodyLeft || this.#clientEnded || this.#closing) {
      this.#endConnection();
      return;
    }
    const next = this.#queue.shift();
    if (next !== undefined) {
      this.#updateFlow();
      this.#start(next);
      return;
    }
    // The next head may have begun while this request was served (pipelining): its clock starts now.
    if (this.#headStarted) this.#setWait(Wait.Head, this.options.headersMs);
    else this.#setWait(Wait.Idle, this.options.idleMs);
    this.#updateFlow();
  }

  /** ResponseOwner: whether the response being written must announce `connection: close`. */
  get mustClose(): boolean {
    const current = this.#current;
    return this.#closing || this.#clientEnded || (current?.body != null && !current.body.complete && !current.body.started);
  }

  // --- flow and closing -------------------------------------------------------------------------

  /** Reading pauses while pipelined requests wait or a body's consumer is full. */
  #updateFlow(): void {
    const pause = this.#queue.length > 0 || this.#bodyFull;
    if (pause === this.#paused || this.#closed) return;
    this.#paused = pause;
    if (pause) this.io.pause();
    else this.io.resume();
  }

  #setWait(wait: Wait, ms: number): void {
    this.#wait = wait;
    this.deadline = wait === Wait.None || ms <= 0 ? 0 : Date.now() + ms;
  }

  #protocolError(err: ParseError): void {
    const code = err.code ?? '';
    if (this.#current !== undefined || this.#closing) {
      this.socket.destroy();
      return;
    }
    if (code === 'HPE_HEADER_OVERFLOW') this.#refuse(431, 'request_header_too_large', 'request head exceeds the size limit');
    else this.#refuse(400, 'bad_request', `malformed HTTP/1.1 request: ${err.reason ?? code}`);
  }

  /** Answers without a handler (bad or late request head) and closes. */
  #refuse(status: number, reason: string, message: string): void {
    this.#closing = true;
    this.options.onRefused?.(status, reason);
    const res = new ClientResponse(this, { head: false, http10: false, keepAlive: false });
    this.#current = { req: { method: '', url: '', rawHeaders: [], remoteAddress: this.#remote, socket: this.socket, body: null }, res, body: null, expectContinue: false };
    sendError(res, status, reason, message);
  }

  #endConnection(): void {
    this.#closing = true;
    this.#setWait(Wait.Linger, LINGER_MS);
    if (!this.io.writableEnded) this.io.end();
  }

  readonly #onEnd = (): void => {
    // The client will send no more: answer what is in flight, then close.
    this.#clientEnded = true;
    if (this.#current === undefined && this.#queue.length === 0) this.#endConnection();
  };

  readonly #onClose = (): void => {
    if (this.#closed) return;
    this.#closed = true;
    unwatchDeadline(this);
    for (const exchange of [this.#current, ...this.#queue, this.#reading]) {
      if (exchange === undefined) continue;
      const body = exchange.body;
      // The Error only when someone listens: its stack trace costs more than the rest of a close.
      if (body !== null && !body.complete && !body.destroyed) body.destroy(body.listenerCount('error') > 0 ? new Error('client connection closed') : undefined);
      exchange.res.connectionClosed();
    }
    this.#current = undefined;
    this.#queue.length = 0;
    this.#reading = undefined;
    this.#parser?.remove();
    this.#parser?.close(); // safe here: 'close' comes after the stack that parsed has unwound
    this.#parser = undefined;
  };
}

function noop(): void {}

/** Whether `chunk` ends with the empty line that ends a head (strict llhttp takes CRLF only). */
function endsWithEmptyLine(chunk: Buffer): boolean {
  const n = chunk.length;
  return n >= 4 && chunk[n - 1] === LF && chunk[n - 2] === CR && chunk[n - 3] === LF && chunk[n - 4] === CR;
}
