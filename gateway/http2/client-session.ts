// A client's HTTP/2 connection (ALPN h2) after the TLS handshake, served by node:http2 (nghttp2)
// on the TLS socket itself: performServerHandshake makes the session on the terminated socket (no
// second TLS layer; no http2 server object per listener fed with 'connection', which measured the
// same CPU per connection, 0.49 ms with its client, and brings an ALPN fallback to bypass), and each stream becomes a
// DownstreamRequest and a StreamResponse for the one request handler, as an HTTP/1.1 request does;
// so every rule of the request path (path, Host/:authority against SNI, route, authorization,
// identity headers, XFCC) holds per stream, and a refusal resets nothing but its own stream.
//
// nghttp2 enforces the concurrent stream limit, the header list size, CONTINUATION floods and
// floods of frames it must answer; the floods it cannot see are counted in flood-guard.ts. Either
// way the connection is closed with GOAWAY and the reason is counted (options.onClosed). Without
// streams for timeouts.idle (or before the first one, timeouts.request_headers) the connection is
// closed with GOAWAY; drain() does the same once its streams have ended.
import http2, { constants, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { unwatchDeadline, watchDeadline, type HasDeadline } from '../session/connection-deadlines.js';
import { log } from '../log.js';
import type { Http2CloseReason } from '../reasons.js';
import type { ConnectionContext } from '../session/connection-context.js';
import type { DownstreamRequest, RequestBodyError } from '../session/downstream-request.js';
import type { DownstreamSession } from '../session/downstream-session.js';
import { sendError } from '../session/error-response.js';
import { FloodGuard } from './flood-guard.js';
import { closeReasonOf } from './session-errors.js';
import type { Http2SessionOptions } from './session-options.js';
import { StreamBody, type BodyOwner } from './stream-body.js';
import { readStreamHead, type StreamHead, type StreamRefusal } from './stream-head.js';
import { StreamResponse } from './stream-response.js';

/** How long a connection we closed may wait for the client to close its side. */
const LINGER_MS = 5_000;
/** How long a connection closed for a flood may take to write its GOAWAY before it is cut. */
const FLOOD_LINGER_MS = 1_000;

export class Http2ClientSession implements DownstreamSession, HasDeadline, BodyOwner {
  readonly #session: ServerHttp2Session;
  readonly #guard = new FloodGuard();
  readonly #remote: string;
  /** Streams open now. */
  #open = 0;
  /** GOAWAY sent (drain, idle): the connection ends with its last stream. */
  #closing = false;
  #closedFor: Http2CloseReason | undefined;
  deadline: number;

  constructor(
    readonly socket: TLSSocket,
    /** The connection's facts (SNI, ALPN, peer identity), passed on with each request. */
    readonly context: ConnectionContext,
    private readonly options: Http2SessionOptions,
  ) {
    this.#remote = socket.remoteAddress ?? '';
    const session = (this.#session = http2.performServerHandshake(socket, options.node));
    session.on('stream', this.#onStream);
    session.on('error', this.#onError);
    session.on('ping', this.#onPing);
    session.on('remoteSettings', this.#onSettings);
    session.once('close', this.#onClose);
    this.deadline = options.headersMs > 0 ? Date.now() + options.headersMs : 0;
    watchDeadline(this);
  }

  /** Stops serving now: every stream is cut. */
  destroy(): void {
    this.#session.destroy();
    this.socket.destroy();
  }

  /** GOAWAY now; the connection closes when the streams it carries have ended. */
  drain(): void {
    if (this.#closing || this.#session.destroyed) return;
    this.#closing = true;
    // A graceful close: node:http2 writes what it has queued (the GOAWAY) before it closes.
    this.#session.close();
    if (this.#open === 0) this.deadline = Date.now() + LINGER_MS;
  }

  /** Idle for too long, or closing for too long (the client did not close its side, or a flood's streams). */
  expire(): void {
    this.deadline = 0;
    if (this.#closing) this.destroy();
    else if (this.#open === 0) this.drain();
  }

  readonly #onStream = (stream: ServerHttp2Stream, _headers: unknown, _flags: number, rawHeaders: string[]): void => {
    stream.on('error', noop); // a reset or a write after it: 'close' follows and cleans up
    const opened = Date.now();
    this.#guard.streamOpened();
    this.#open++;
    if (!this.#closing) this.deadline = 0;
    const head = readStreamHead(rawHeaders, this.options.maxHeaderBytes);
    const res = new StreamResponse(stream, head.grpc, head.method === 'HEAD', head.trailers);
    const body = head.refusal !== undefined || stream.endAfterHeaders ? null : new StreamBody(stream, head.contentLength, this.options.bodyMs, res, this, head.expectContinue);
    stream.once('close', () => this.#streamClosed(res, body, opened));
    // Reset before it could be served: its 'close' still counts it.
    if (stream.destroyed || stream.closed) return;
    if (head.refusal !== undefined) return this.#refuse(res, head.refusal, head);
    const req: DownstreamRequest = { method: head.method, url: head.url, rawHeaders: head.rawHeaders, remoteAddress: this.#remote, connection: this.context, body };
    const timeoutMs = head.timeoutMs;
    if (timeoutMs !== undefined) res.setDeadline(timeoutMs, () => this.#deadlineExceeded(req, timeoutMs));
    this.options.handler(req, res);
  };

  #streamClosed(res: StreamResponse, body: StreamBody | null, opened: number): void {
    this.#open--;
    // The Error only when someone listens: its stack trace costs more than the rest of a close.
    if (body !== null && !body.complete && !body.destroyed) body.destroy(body.listenerCount('error') > 0 ? new Error('client reset the stream') : undefined);
    const cut = res.streamClosed();
    if (cut && this.#closedFor === undefined && !this.#session.destroyed) {
      const flood = this.#guard.streamReset(Date.now() - opened);
      if (flood !== undefined) return this.#closeFor(flood);
    }
    if (this.#open > 0 || this.#session.destroyed) return;
    if (!this.#closing) this.deadline = Date.now() + this.options.idleMs;
    else if (this.deadline === 0) this.deadline = Date.now() + LINGER_MS;
  }

  /** BodyOwner: a request body that cannot be completed, answered by its reader or here. */
  bodyFailed(body: StreamBody, err: RequestBodyError): void {
    if (body.listenerCount('error') > 0) {
      body.destroy(err);
      return;
    }
    body.destroy();
    if (!body.response.headersSent) this.options.onRefused(err.status, err.reason);
    sendError(body.response, err.status, err.reason, err.message);
  }

  #refuse(res: StreamResponse, refusal: StreamRefusal, head: StreamHead): void {
    log.info('request_refused', { listener: this.options.listener, reason: refusal.reason, rule: refusal.rule, method: head.method, path: head.url, identity: this.context.identity?.spiffeId ?? null });
    this.options.onRefused(refusal.status, refusal.reason);
    sendError(res, refusal.status, refusal.reason, refusal.message, { rule: refusal.rule });
  }

  #deadlineExceeded(req: DownstreamRequest, timeoutMs: number): void {
    this.options.onRefused(504, 'grpc_deadline_exceeded');
    log.info('request_refused', { listener: this.options.listener, reason: 'grpc_deadline_exceeded', grpc_timeout_ms: timeoutMs, path: req.url, identity: this.context.identity?.spiffeId ?? null });
  }

  readonly #onPing = (): void => {
    const flood = this.#guard.ping(Date.now());
    if (flood !== undefined) this.#closeFor(flood);
  };

  readonly #onSettings = (): void => {
    const flood = this.#guard.settings(Date.now());
    if (flood !== undefined) this.#closeFor(flood);
  };

  /**
   * Closes the connection for what the client sent: counted and logged, GOAWAY ENHANCE_YOUR_CALM,
   * no new stream, and its streams cut FLOOD_LINGER_MS later at most. A graceful close, because
   * session.destroy() drops what is still queued whenever a write is in progress, the GOAWAY with
   * it, and the client would not learn why. Against a client that floods faster than it reads,
   * nghttp2's own bound may still end the session before the GOAWAY leaves (node:http2 makes the
   * same best effort).
   */
  #closeFor(reason: Http2CloseReason): void {
    if (this.#closedFor !== undefined || this.#session.destroyed) return;
    this.#closedFor = reason;
    this.options.onClosed(reason, this.#closeFields());
    const session = this.#session;
    // Its PINGs and SETTINGS no longer call into JavaScript.
    session.off('ping', this.#onPing).off('remoteSettings', this.#onSettings);
    session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM);
    this.#closing = true;
    session.close();
    this.deadline = Date.now() + FLOOD_LINGER_MS;
  }

  /** nghttp2 (or node:http2) ended the session: counted when it was for the client's frames. */
  readonly #onError = (err: Error): void => {
    if (this.#closedFor !== undefined) return;
    const reason = closeReasonOf(err, this.#guard);
    if (reason === undefined) return;
    this.#closedFor = reason;
    this.options.onClosed(reason, { ...this.#closeFields(), error: err.message });
  };

  #closeFields(): Record<string, unknown> {
    return { remote: this.#remote, identity: this.context.identity?.spiffeId ?? null, open_streams: this.#open };
  }

  readonly #onClose = (): void => {
    unwatchDeadline(this);
    this.deadline = 0;
  };
}

function noop(): void {}
