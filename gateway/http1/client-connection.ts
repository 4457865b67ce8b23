// A client's HTTP/1.1 connection after the TLS handshake (or plaintext on PERMISSIVE listeners),
// served without node:http: llhttp parses straight from socket reads into flat header lists, one
// request is answered at a time (pipelined ones wait, parsed, with the socket paused), and the
// request-head, request-body and keep-alive timeouts are deadlines swept by one interval. A head
// goes to the handler at the end of the read that carried it, so that whatever else that read
// holds (a malformed body, a refused request behind it) is known before anything is forwarded.
// Node's http server spends about as much CPU per request as the TLS record work itself; this
// keeps only what a proxy needs.
import { Buffer } from 'node:buffer'; // the global Buffer is a getter on globalThis: read on every use
import type { Socket } from 'node:net';
import { isReadBufferView, SocketIo } from '../net/socket-io.js';
import { isContentLength, parseContentLength } from '../message/content-length.js';
import { RequestBody, type BodySource } from './client-request.js';
import { ClientResponse, type ResponseOwner } from './client-response.js';
import { unwatchDeadline, watchDeadline, type HasDeadline } from '../session/connection-deadlines.js';
import { RequestBodyError, type DownstreamRequest, type RequestHandler } from '../session/downstream-request.js';
import { sendError } from '../session/error-response.js';
import { PLAINTEXT_CONNECTION, type ConnectionContext } from '../session/connection-context.js';
import type { DownstreamSession } from '../session/downstream-session.js';
import { createParser, METHODS, type NativeParser, type ParseError, watchMessageBegin, watchMessageComplete } from './native-parser.js';

export interface ClientConnectionOptions {
  readonly handler: RequestHandler;
  /** From connection to the end of the first request head, and from a head's first byte to its end. */
  readonly headersMs: number;
  /** Keep-alive: between the end of a response and the first byte of the next request. */
  readonly idleMs: number;
  /** Between body bytes while the body's reader waits for them (absent or 0: no limit). */
  readonly bodyMs?: number;
  /** A request refused before reaching the handler (malformed, too large, too slow), for metrics. */
  readonly onRefused?: (status: number, reason: string) => void;
}

interface Exchange {
  readonly req: DownstreamRequest;
  readonly res: ClientResponse;
  readonly body: RequestBody | null;
  readonly expectContinue: boolean;
}

/** An answer the connection gives itself, without a handler. */
interface Refusal {
  readonly status: number;
  readonly reason: string;
  readonly message: string;
}

const VERSION_REFUSED: Refusal = { status: 505, reason: 'http_version_not_supported', message: 'this listener serves HTTP/1.1 and HTTP/1.0 only' };
const CONNECT_REFUSED: Refusal = { status: 405, reason: 'method_not_allowed', message: 'CONNECT is not supported' };

const PARSER_RESOURCE = Object.freeze({ type: 'gatehouse.client' });
/** How long a connection we ended may wait for the client to close its side. */
const LINGER_MS = 5_000;
/** A connection that carried a request this recently when a drain began is not idle yet (drain()). */
const DRAIN_GRACE_MS = 1_000;
const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
const CR = 13;
const LF = 10;

const enum Wait {
  None,
  /** For a request head: the first one, or one whose first bytes arrived. */
  Head,
  /** For the body of the request being answered, while its reader waits for it. */
  Body,
  /** Keep-alive idle between requests. */
  Idle,
  /** We ended our side; the client should close. */
  Linger,
}

export class ClientConnection implements DownstreamSession, ResponseOwner, BodySource, HasDeadline {
  /** Made at the first bytes: an idle connection that never sends a request costs no parser. */
  #parser: NativeParser | undefined;
  readonly #remote: string;
  /** The exchange being answered; pipelined requests wait in #queue. */
  #current: Exchange | undefined;
  /** #current's head came in the read being parsed: the handler gets it at the end of that read. */
  #startPending = false;
  /** A request refused behind those still to answer: said after them, then the connection closes. */
  #lastWords: Refusal | undefined;
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
  /** The gateway stops (drain): the next response says `connection: close`, and is the last. */
  #draining = false;
  #closed = false;
  #wait = Wait.Head;
  deadline: number;
  readonly io: SocketIo;

  constructor(
    readonly socket: Socket,
    private readonly options: ClientConnectionOptions,
    /** The connection's facts (SNI, ALPN, peer identity), passed on with each request. */
    readonly context: ConnectionContext = PLAINTEXT_CONNECTION,
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

  /**
   * The gateway stops: a response in flight (or to a request on its way) is the last, announced
   * with `connection: close`. A connection waiting for a request ends now if it has been quiet for
   * DRAIN_GRACE_MS; one that answered (or was opened) more recently is given the rest of that time:
   * its client is likely sending the next request, and a close crossing it would fail the request
   * (the race every keep-alive close has). Its next request is answered with `connection: close`,
   * or the deadline sweep ends it when the grace is over.
   */
  drain(): void {
    if (this.#draining || this.#closed || this.#closing) return;
    this.#draining = true;
    if (this.#headStarted || this.#current !== undefined) return;
    const waitMs = this.#wait === Wait.Idle ? this.options.idleMs : this.#wait === Wait.Head ? this.options.headersMs : 0;
    const graceEnds = this.deadline !== 0 && waitMs > 0 ? this.deadline - waitMs + DRAIN_GRACE_MS : 0;
    // Quiet long enough: after one turn of the event loop, so that a request already in the
    // socket's buffer is read and answered rather than cut.
    if (graceEnds <= Date.now()) setImmediate(() => this.#endIfQuiet());
    else this.deadline = graceEnds;
  }

  #endIfQuiet(): void {
    if (!this.#closed && !this.#closing && !this.#headStarted && this.#current === undefined) this.#endConnection();
  }

  expire(): void {
    const wait = this.#wait;
    this.deadline = 0;
    if (wait === Wait.Body) {
      const reading = this.#reading;
      if (reading !== undefined && reading === this.#current) this.#failBody(reading, new RequestBodyError(408, 'request_body_timeout', 'request body not received in time'));
    } else if (wait === Wait.Head && this.#headStarted && this.#current === undefined) {
      this.#refuse(408, 'request_timeout', 'request head not received in time');
    } else if (wait === Wait.Idle || wait === Wait.Head) {
      this.#endConnection();
    } else if (wait === Wait.Linger) {
      this.socket.destroy();
    }
  }

  // --- parser callbacks -------------------------------------------------------------------------

  readonly #onData = (chunk: Buffer): void => {
    // No further request is taken; only the rest of a body the upstream may still be reading is.
    if (this.#lastWords !== undefined || (this.#closing && this.#reading === undefined)) return;
    if (this.#wait === Wait.Body) this.deadline = Date.now() + this.options.bodyMs!;
    // Bytes outside a request body begin a head (a lone CRLF between requests does not). llhttp's
    // message-begin callback would tell, at the cost of a call into JavaScript for every request.
    if (!this.#headStarted && this.#reading === undefined && (chunk.length > 2 || (chunk[0] !== CR && chunk[0] !== LF))) this.#headStarted = true;
    let data = chunk;
    for (;;) {
      const parsed = (this.#parser ??= this.#createParser()).execute(data);
      if (typeof parsed !== 'number') {
        this.#protocolError(parsed);
        break;
      }
      // llhttp stops after a request that asked for an upgrade; it is served as a plain request
      // (Upgrade is hop-by-hop and dropped), so parsing goes on with the bytes after it.
      if (this.#closed || this.#closing || this.#lastWords !== undefined) break;
      if (parsed === 0 || parsed >= data.length) break;
      data = data.subarray(parsed);
    }
    if (this.#startPending) {
      this.#startPending = false;
      if (!this.#closed) this.#start(this.#current!);
    }
    if (this.#closed || this.#closing || this.#lastWords !== undefined) return;
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
    // A body failed earlier in this read: nothing after it is taken (2: llhttp stops here).
    if (this.#closing || this.#lastWords !== undefined) return 2;
    const raw = this.#partialHeaders === undefined ? (headers ?? []) : headers === undefined ? this.#partialHeaders : this.#partialHeaders.concat(headers);
    const target = this.#partialUrl === '' ? (url ?? '') : this.#partialUrl + (url ?? '');
    this.#partialHeaders = undefined;
    this.#partialUrl = '';
    this.#headStarted = false;
    this.#setWait(Wait.None, 0);

    /** The announced body length; -1: chunked. */
    let length = 0;
    let codings: string | undefined;
    let expectContinue = false;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      const n = name.length;
      if (isContentLength(name)) length = parseContentLength(raw[i + 1]!);
      else if (n === 17 && name.toLowerCase() === 'transfer-encoding') codings = codings === undefined ? raw[i + 1]! : `${codings}, ${raw[i + 1]!}`;
      else if (n === 6 && name.toLowerCase() === 'expect') expectContinue = raw[i + 1]!.toLowerCase() === '100-continue';
    }
    if (codings !== undefined) length = -1; // llhttp (strict) refused it beside a Content-Length
    const methodName = METHODS[method] ?? 'GET';
    if (versionMajor !== 1 || methodName === 'CONNECT' || (codings !== undefined && (codings.length !== 7 || codings.toLowerCase() !== 'chunked'))) {
      // A tunnel's bytes after its head would be opaque; a version or coding we do not speak, unframed.
      this.#refuseParsed(versionMajor !== 1 ? VERSION_REFUSED : methodName === 'CONNECT' ? CONNECT_REFUSED : transferCodingRefusal(codings!));
      return 2;
    }
    const body = length !== 0 ? new RequestBody(this, length) : null;
    const http10 = versionMajor === 1 && versionMinor === 0;
    const exchange: Exchange = {
      req: { method: methodName, url: target, rawHeaders: raw, remoteAddress: this.#remote, connection: this.context, body },
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
    if (this.#current === undefined) {
      this.#current = exchange;
      this.#startPending = true;
    } else {
      this.#queue.push(exchange);
      this.#updateFlow();
    }
    return 0;
  };

  readonly #onBody = (chunk: Buffer): void => {
    const body = this.#reading?.body;
    if (body == null || body.destroyed) return;
    // Only a chunked body can get here (a declared length over the limit was refused at its head).
    if ((body.received += chunk.length) > body.maxBytes) {
      this.#failBody(this.#reading!, new RequestBodyError(413, 'request_body_too_large', `request body is larger than ${body.maxBytes} bytes`));
      return;
    }
    if (!body.push(isReadBufferView(chunk) ? Buffer.from(chunk) : chunk)) {
      this.#bodyFull = true;
      if (this.#wait === Wait.Body) this.#setWait(Wait.None, 0); // we stopped reading: not the client's delay
      this.#updateFlow();
    }
  };

  readonly #onMessageComplete = (): void => {
    const exchange = this.#reading;
    watchMessageComplete(this.#parser!, undefined);
    if (exchange === undefined) return;
    this.#reading = undefined;
    if (this.#wait === Wait.Body) this.#setWait(Wait.None, 0);
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
    if (current === undefined || current.body !== body) return;
    if (first && current.expectContinue && !current.res.headersSent) this.io.write(CONTINUE);
    if (this.#reading !== current) return;
    // The reader waits for the client from now: its silence is timed.
    const bodyMs = this.options.bodyMs ?? 0;
    if (this.#wait !== Wait.Body && bodyMs > 0) this.#setWait(Wait.Body, bodyMs);
    if (this.#bodyFull) {
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
    if (!reusable || bodyLeft || this.#clientEnded || this.#closing || this.#draining) {
      this.#endConnection();
      return;
    }
    const next = this.#queue.shift();
    if (next !== undefined) {
      this.#updateFlow();
      this.#start(next);
      return;
    }
    const lastWords = this.#lastWords;
    if (lastWords !== undefined) {
      this.#lastWords = undefined;
      this.#refuse(lastWords.status, lastWords.reason, lastWords.message);
      this.#updateFlow(); // reading again lets the client's close be seen while we linger
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
    return this.#closing || this.#draining || this.#clientEnded || (current?.body != null && !current.body.complete && !current.body.started);
  }

  // --- flow and closing -------------------------------------------------------------------------

  /** Reading pauses while pipelined requests (or a refusal) wait or a body's consumer is full. */
  #updateFlow(): void {
    const pause = this.#queue.length > 0 || this.#bodyFull || this.#lastWords !== undefined;
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
    if (this.#closing) {
      this.socket.destroy(); // answered already: a body's rest after an early response was bad
      return;
    }
    const code = err.code ?? '';
    const reading = this.#reading;
    if (reading !== undefined) {
      // The bad bytes were (the framing of) a request body.
      this.#reading = undefined;
      if (reading === this.#current && !this.#startPending) {
        this.#failBody(reading, new RequestBodyError(400, 'bad_request', `malformed request body: ${err.reason ?? code}`));
        return;
      }
      // Not handed to anyone yet: it is refused in its place, and nothing of it goes upstream.
      reading.body!.destroy();
      if (reading !== this.#current) this.#queue.pop(); // the last one parsed
      else {
        this.#current = undefined;
        this.#startPending = false;
      }
    }
    if (code === 'HPE_HEADER_OVERFLOW') this.#refuseParsed({ status: 431, reason: 'request_header_too_large', message: 'request head exceeds the size limit' });
    else this.#refuseParsed({ status: 400, reason: 'bad_request', message: `malformed HTTP/1.1 request: ${err.reason ?? code}` });
  }

  /** Refuses the request just parsed: now, or after the responses to those before it. */
  #refuseParsed(refusal: Refusal): void {
    if (this.#current === undefined) this.#refuse(refusal.status, refusal.reason, refusal.message);
    else {
      this.#lastWords = refusal;
      this.#updateFlow();
    }
  }

  /**
   * The body of the request being answered cannot be completed. Its reader (the upstream
   * exchange) abandons what it forwarded and answers the error's status, or cuts a response that
   * has begun; a body nobody reads is answered here. Either way no further request is taken.
   */
  #failBody(exchange: Exchange, err: RequestBodyError): void {
    const body = exchange.body!;
    this.#reading = undefined;
    this.#closing = true;
    this.#setWait(Wait.Linger, LINGER_MS); // the answer is on its way; then the client should close
    if (body.listenerCount('error') > 0) {
      body.destroy(err);
      return;
    }
    body.destroy();
    if (!exchange.res.headersSent) this.options.onRefused?.(err.status, err.reason);
    sendError(exchange.res, err.status, err.reason, err.message);
  }

  /** Answers without a handler (bad or late request head) and closes. */
  #refuse(status: number, reason: string, message: string): void {
    this.#closing = true;
    this.options.onRefused?.(status, reason);
    const res = new ClientResponse(this, { head: false, http10: false, keepAlive: false });
    this.#current = { req: { method: '', url: '', rawHeaders: [], remoteAddress: this.#remote, connection: this.context, body: null }, res, body: null, expectContinue: false };
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
    const reading = this.#reading;
    if (reading !== undefined && reading === this.#current && !this.#closing) {
      this.#failBody(reading, new RequestBodyError(400, 'bad_request', 'the client ended the connection before the end of the request body'));
    } else if (this.#current === undefined && this.#queue.length === 0) this.#endConnection();
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

/** A request Transfer-Encoding other than chunked alone: unframed (400), or a coding we do not decode (501). */
function transferCodingRefusal(codings: string): Refusal {
  return /(?:^|,)[ \t]*chunked[ \t]*$/i.test(codings)
    ? { status: 501, reason: 'unsupported_transfer_coding', message: `transfer coding not supported: ${codings} (only chunked)` }
    : { status: 400, reason: 'bad_request', message: `Transfer-Encoding must end with chunked (RFC 9112 6.3), got: ${codings}` };
}

/** Whether `chunk` ends with the empty line that ends a head (strict llhttp takes CRLF only). */
function endsWithEmptyLine(chunk: Buffer): boolean {
  const n = chunk.length;
  return n >= 4 && chunk[n - 1] === LF && chunk[n - 2] === CR && chunk[n - 3] === LF && chunk[n - 4] === CR;
}
