// A client's HTTP/2 connection (ALPN h2) after the TLS handshake, served by the native engine
// (native/h2-engine.c: nghttp2 driven from our addon) over SocketIo on the TLS socket's handle:
// each read goes to the engine in one call, its events (complete header blocks, body chunks, ends,
// closes, WRITABLE) are dispatched here, and what the answers queued leaves in one write per
// flush. node:http2's machinery (an Http2Stream Duplex per stream, header objects, a callback into
// JavaScript per frame) measured most of an HTTP/2 request's CPU. Each stream becomes a
// DownstreamRequest and a StreamResponse for the one request handler, as an HTTP/1.1 request
// does; so every rule of the request path (path, Host/:authority against SNI, route,
// authorization, identity headers, XFCC) holds per stream, and a refusal resets nothing but its
// own stream.
//
// Flow control is ours: a request body's window reopens as its reader takes it (stream-body.ts),
// a response holds its writer back once the engine holds SEND_HIGH_WATER_BYTES for it
// (stream-response.ts), and while the socket is full nothing more is taken from the engine and
// nothing more is read. nghttp2 enforces the concurrent stream limit, CONTINUATION floods and
// floods of frames it must answer; the floods it cannot see are counted in flood-guard.ts from the
// engine's counters. Either way the connection is closed with GOAWAY and the reason is counted
// (options.onClosed). Without streams for timeouts.idle (or before the first one,
// timeouts.request_headers) the connection is closed with GOAWAY; drain() does the same once its
// streams have ended.
import { Buffer } from 'node:buffer'; // the global Buffer is a getter on globalThis: read on every use
import type { TLSSocket } from 'node:tls';
import { log } from '../log.js';
import { SocketIo } from '../net/socket-io.js';
import type { Http2CloseReason } from '../reasons.js';
import { unwatchDeadline, watchDeadline, type HasDeadline } from '../session/connection-deadlines.js';
import type { ConnectionContext } from '../session/connection-context.js';
import type { DownstreamRequest, RequestBodyError } from '../session/downstream-request.js';
import type { DownstreamSession } from '../session/downstream-session.js';
import { sendError } from '../session/error-response.js';
import { FloodGuard } from './flood-guard.js';
import { COUNTER, EVENT, headerFields, HEADERS_FLAG, nextEvent, type EngineSession, type H2Engine, type H2EngineAddon } from './native/h2-engine.js';
import { closeReasonOf, MAX_INVALID_FRAMES } from './session-errors.js';
import type { Http2SessionOptions } from './session-options.js';
import { StreamBody, type BodyOwner, type BodySource } from './stream-body.js';
import { headerListTooLarge, readStreamHead, type StreamHead, type StreamRefusal } from './stream-head.js';
import { H2_CODE, StreamResponse, type ResponseSink } from './stream-response.js';

/** How long a connection we closed may wait for the client to close its side. */
const LINGER_MS = 5_000;
/** How long a connection closed for a flood may take to write its GOAWAY before it is cut. */
const FLOOD_LINGER_MS = 1_000;
const CONTINUE_HEAD: readonly string[] = Object.freeze([':status', '100']);

/** One open stream: its response, its body (null without one), when it opened. */
interface OpenStream {
  readonly response: StreamResponse;
  readonly body: StreamBody | null;
  readonly opened: number;
}

export class Http2ClientSession implements DownstreamSession, HasDeadline, BodyOwner, BodySource, ResponseSink {
  readonly #engine: H2Engine;
  readonly #addon: H2EngineAddon;
  readonly #session: EngineSession;
  readonly #io: SocketIo;
  readonly #guard = new FloodGuard();
  readonly #remote: string;
  readonly #streams = new Map<number, OpenStream>();
  /** The engine's counters after the last read (pings, settings, invalid frames are told apart by their growth). */
  readonly #counters = new Float64Array(COUNTER.COUNT);
  #pings = 0;
  #settings = 0;
  /** Inside a dispatch: answers queued now leave with its flush. */
  #dispatching = false;
  #flushQueued = false;
  /** The socket is full: nothing more is taken from the engine until it drains. */
  #blocked = false;
  /** The engine is done (pending() said so) or the socket closed. */
  #finished = false;
  /** GOAWAY sent (drain, idle, flood) or the client's FIN: the connection ends with its last stream. */
  #closing = false;
  #closedFor: Http2CloseReason | undefined;
  /** After an engine error: once what is queued is written, our side ends (the engine reads nothing more). */
  #endAfterFlush = false;
  /** The client sent FIN: our side ends with the last stream. */
  #readEnded = false;
  deadline: number;

  constructor(
    readonly socket: TLSSocket,
    /** The connection's facts (SNI, ALPN, peer identity), passed on with each request. */
    readonly context: ConnectionContext,
    private readonly options: Http2SessionOptions,
    engine: H2Engine,
  ) {
    this.#engine = engine;
    const addon = (this.#addon = engine.addon);
    this.#remote = socket.remoteAddress ?? '';
    this.#session = addon.createServer(options.settings);
    socket.on('error', noop); // resets and the like: 'close' follows and cleans up
    socket.once('close', this.#onSocketClose);
    this.#io = new SocketIo(socket, { onData: (chunk) => this.#onData(chunk), onEnd: this.#onEnd });
    this.deadline = options.headersMs > 0 ? Date.now() + options.headersMs : 0;
    watchDeadline(this);
    this.#flush(); // our SETTINGS: the server's connection preface
  }

  /** Stops serving now: every stream is cut. */
  destroy(): void {
    this.socket.destroy();
  }

  /** GOAWAY now; the connection closes when the streams it carries have ended. */
  drain(): void {
    if (this.#closing || this.#finished) return;
    this.#closing = true;
    this.#addon.goaway(this.#session, H2_CODE.NO_ERROR);
    this.#submitted();
    if (this.#streams.size === 0) this.deadline = Date.now() + LINGER_MS;
  }

  /** Idle for too long, or closing for too long (the client did not close its side, or a flood's streams). */
  expire(): void {
    this.deadline = 0;
    if (this.#closing) this.destroy();
    else if (this.#streams.size === 0) this.drain();
  }

  // ---- ResponseSink and BodySource: the engine's calls for one stream ----------------------------

  respond(streamId: number, head: readonly string[], body: Buffer | undefined, endStream: boolean): number {
    const result = this.#addon.respond(this.#session, streamId, head, body, endStream);
    this.#submitted();
    if (endStream || result < 0) this.#responseOver(streamId);
    return result;
  }

  sendData(streamId: number, bytes: Buffer | undefined, endStream: boolean): number {
    const result = this.#addon.sendData(this.#session, streamId, bytes ?? EMPTY, endStream);
    this.#submitted();
    if (endStream || result < 0) this.#responseOver(streamId);
    return result;
  }

  sendTrailers(streamId: number, trailers: readonly string[]): number {
    const result = this.#addon.sendTrailers(this.#session, streamId, trailers);
    this.#submitted();
    this.#responseOver(streamId);
    return result;
  }

  reset(streamId: number, code: number): void {
    this.#addon.reset(this.#session, streamId, code);
    this.#submitted();
  }

  consume(streamId: number, bytes: number): void {
    this.#addon.consume(this.#session, streamId, bytes);
    this.#submitted(); // a WINDOW_UPDATE may be due
  }

  sendContinue(streamId: number): void {
    this.#addon.informational(this.#session, streamId, CONTINUE_HEAD);
    this.#submitted();
  }

  /** The response has ended: a body still coming is read by nobody (an upstream exchange is over). */
  #responseOver(streamId: number): void {
    const body = this.#streams.get(streamId)?.body;
    if (body != null && !body.complete) body.discard();
  }

  // ---- reading: one engine call per read, then its events ---------------------------------------

  #onData(chunk: Buffer): void {
    if (this.#finished) return;
    const text = this.#engine.receive(this.#session, chunk);
    this.#checkCounters();
    this.#dispatch(text ?? '', chunk);
    this.#flush();
  }

  /** PINGs and SETTINGS the read brought, for the flood guard; invalid frames past node:http2's bound. */
  #checkCounters(): void {
    const counters = this.#counters;
    this.#addon.counters(this.#session, counters);
    if (this.#closedFor !== undefined) return;
    const now = Date.now();
    let flood: Http2CloseReason | undefined;
    for (const pings = counters[COUNTER.PINGS]!; this.#pings < pings && flood === undefined; this.#pings++) flood = this.#guard.ping(now);
    for (const settings = counters[COUNTER.SETTINGS]!; this.#settings < settings && flood === undefined; this.#settings++) flood = this.#guard.settings(now);
    if (flood === undefined && counters[COUNTER.INVALID]! > MAX_INVALID_FRAMES) flood = 'invalid_frames';
    if (flood !== undefined) this.#closeFor(flood);
  }

  /** The events in the engine's shared array: `text` holds their header fields, `chunk` their body bytes. */
  #dispatch(text: string, chunk: Buffer | undefined): void {
    const events = this.#engine.events;
    const end = 1 + events[0]!;
    this.#dispatching = true;
    try {
      let i = 1;
      while (i < end) {
        const kind = events[i]!;
        const streamId = events[i + 1]!;
        const at = i;
        i = nextEvent(events, i);
        if (kind === EVENT.HEADERS) {
          const flags = events[at + 2]!;
          const headers = headerFields(events, at, text);
          if (flags & HEADERS_FLAG.TRAILERS) this.#bodyEnded(streamId); // a request's trailers end it (they are not passed on)
          else this.#onStream(streamId, flags, headers);
        } else if (kind === EVENT.DATA) {
          const offset = events[at + 2]!;
          const length = events[at + 3]!;
          const body = this.#streams.get(streamId)?.body;
          // A copy: the read's bytes are the shared read buffer's.
          if (body != null && chunk !== undefined) body.receive(Buffer.from(chunk.subarray(offset, offset + length)));
          else this.consume(streamId, length); // nobody reads it (refused, answered): dropped
        } else {
          const value = events[at + 2]!;
          if (kind === EVENT.END_STREAM) this.#bodyEnded(streamId);
          else if (kind === EVENT.CLOSE) this.#streamClosed(streamId);
          else if (kind === EVENT.WRITABLE) this.#streams.get(streamId)?.response.writable();
          else if (kind === EVENT.GOAWAY) this.#closing = true; // the client opens no more streams: the connection ends with the last
          else if (kind === EVENT.ERROR) this.#engineFailed(value);
        }
      }
    } finally {
      this.#dispatching = false;
    }
  }

  #onStream(streamId: number, flags: number, rawHeaders: string[]): void {
    const opened = Date.now();
    this.#guard.streamOpened();
    if (!this.#closing) this.deadline = 0;
    const head = flags & HEADERS_FLAG.TOO_LARGE ? headerListTooLarge((flags & HEADERS_FLAG.GRPC) !== 0) : readStreamHead(rawHeaders, this.options.maxHeaderBytes);
    const res = new StreamResponse(this, streamId, head.grpc, head.method === 'HEAD', head.trailers);
    const body = head.refusal !== undefined || flags & HEADERS_FLAG.END_STREAM ? null : new StreamBody(this, streamId, head.contentLength, this.options.bodyMs, res, this, head.expectContinue);
    this.#streams.set(streamId, { response: res, body, opened });
    if (head.refusal !== undefined) return this.#refuse(res, head.refusal, head);
    const req: DownstreamRequest = { method: head.method, url: head.url, rawHeaders: head.rawHeaders, remoteAddress: this.#remote, connection: this.context, body };
    const timeoutMs = head.timeoutMs;
    if (timeoutMs !== undefined) res.setDeadline(timeoutMs, () => this.#deadlineExceeded(req, timeoutMs));
    this.options.handler(req, res);
  }

  #bodyEnded(streamId: number): void {
    this.#streams.get(streamId)?.body?.receiveEnd();
  }

  #streamClosed(streamId: number): void {
    const stream = this.#streams.get(streamId);
    if (stream === undefined) return; // reset by the engine before it was seen (a header list over the limit)
    this.#streams.delete(streamId);
    this.#cutStream(stream);
    const cut = stream.response.streamClosed();
    if (cut && this.#closedFor === undefined && !this.#finished) {
      const flood = this.#guard.streamReset(Date.now() - stream.opened);
      if (flood !== undefined) return this.#closeFor(flood);
    }
    if (this.#streams.size > 0 || this.#finished) return;
    if (this.#readEnded) return this.#finish();
    if (!this.#closing) this.deadline = Date.now() + this.options.idleMs;
    else if (this.deadline === 0) this.deadline = Date.now() + LINGER_MS;
  }

  /** A body the stream's close cut short fails its reader. */
  #cutStream(stream: OpenStream): void {
    const body = stream.body;
    // The Error only when someone listens: its stack trace costs more than the rest of a close.
    if (body !== null && !body.complete && !body.destroyed) body.destroy(body.listenerCount('error') > 0 ? new Error('client reset the stream') : undefined);
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

  /**
   * Closes the connection for what the client sent: counted and logged, GOAWAY ENHANCE_YOUR_CALM,
   * no new stream, and its streams cut FLOOD_LINGER_MS later at most.
   */
  #closeFor(reason: Http2CloseReason): void {
    if (this.#closedFor !== undefined || this.#finished) return;
    this.#closedFor = reason;
    this.options.onClosed(reason, this.#closeFields());
    this.#addon.goaway(this.#session, H2_CODE.ENHANCE_YOUR_CALM);
    this.#closing = true;
    this.#submitted();
    this.deadline = Date.now() + FLOOD_LINGER_MS;
  }

  /** nghttp2 ended the session for the client's frames (its GOAWAY is queued): counted, then closed once written. */
  #engineFailed(code: number): void {
    this.#closing = true;
    this.deadline = Date.now() + FLOOD_LINGER_MS;
    if (this.#closedFor === undefined) {
      const reason = (this.#closedFor = closeReasonOf(code, this.#guard));
      this.options.onClosed(reason, { ...this.#closeFields(), error: `nghttp2 error ${code}` });
    }
    this.#endAfterFlush = true;
    this.#submitted();
  }

  #closeFields(): Record<string, unknown> {
    return { remote: this.#remote, identity: this.context.identity?.spiffeId ?? null, open_streams: this.#streams.size };
  }

  /** The client sent FIN: nothing more comes; the streams open now are answered, then our side ends. */
  readonly #onEnd = (): void => {
    this.#closing = true;
    this.#readEnded = true;
    if (this.#streams.size === 0) this.#finish();
  };

  // ---- writing: what the engine queued, in one write per flush ----------------------------------

  /** Something was queued in the engine: flushed after the dispatch in progress, or in a microtask. */
  #submitted(): void {
    if (this.#dispatching || this.#flushQueued || this.#finished) return;
    this.#flushQueued = true;
    queueMicrotask(this.#flushLater);
  }

  readonly #flushLater = (): void => {
    this.#flushQueued = false;
    this.#flush();
  };

  /**
   * Writes what the engine has queued, until it has nothing more or the socket is full; then
   * dispatches what writing produced (closes, WRITABLE), whose answers are flushed in turn.
   */
  #flush(): void {
    const addon = this.#addon;
    const output = this.#engine.output;
    // Bounded: each round writes or ends; answers to a round's events make the next.
    for (let round = 0; round < 64 && !this.#finished && !this.#blocked; round++) {
      let wrote = false;
      for (let out = addon.pending(this.#session); out !== 0; out = addon.pending(this.#session)) {
        if (out === -1) return this.#finish();
        wrote = true;
        // In the shared output buffer, a view will do: a TLS socket encrypts a write before it returns.
        if (!this.#io.write(output.subarray(0, out))) {
          this.#socketFull();
          break;
        }
      }
      if (!wrote || this.#engine.takeEvents(this.#session) === 0) break;
      this.#dispatch('', undefined);
    }
    if (this.#endAfterFlush && !this.#blocked) this.#finish();
  }

  /** The socket is full: take nothing more from the engine and read nothing more until it drains. */
  #socketFull(): void {
    this.#blocked = true;
    this.#io.pause();
    this.#io.onDrain(this.#socketDrained);
  }

  readonly #socketDrained = (): void => {
    this.#blocked = false;
    this.#io.resume();
    this.#flush();
  };

  /** The session is over: our side ends once what was written has left. */
  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#io.end();
  }

  readonly #onSocketClose = (): void => {
    this.#finished = true;
    unwatchDeadline(this);
    this.deadline = 0;
    for (const stream of this.#streams.values()) {
      this.#cutStream(stream);
      stream.response.streamClosed();
    }
    this.#streams.clear();
    this.#addon.destroy(this.#session);
  };
}

const EMPTY = Buffer.alloc(0);

function noop(): void {}
