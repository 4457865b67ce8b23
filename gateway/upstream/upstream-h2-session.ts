// An HTTP/2 session to an upstream endpoint, in the native engine's client role (h2-engine.c) on
// the connector's socket through SocketIo: already TLS-verified with our client certificate and
// the upstream's identity checked, or h2c by prior knowledge. Each read goes to the engine in one
// call; its events (response heads, body chunks, ends, closes, SETTINGS, GOAWAY) are dispatched to
// the streams here; what the streams queued leaves in one write per flush. The session is usable
// once the upstream's first SETTINGS have come; it takes streams up to the smaller of our cap and
// the upstream's SETTINGS_MAX_CONCURRENT_STREAMS, and tells its pool each time one closes. After a
// GOAWAY it takes no new stream and lets those in flight finish; a stream the upstream did not
// process (above the GOAWAY's last stream, or REFUSED_STREAM) goes back to the pool to be sent
// again when it has no body.
import { Buffer } from 'node:buffer';
import type { Socket } from 'node:net';
import { EVENT, headerFields, HEADERS_FLAG, nextEvent, SETTING, h2Engine, type EngineSession, type H2Engine, type H2EngineAddon } from '../http2/native/h2-engine.js';
import { SocketIo } from '../net/socket-io.js';
import { h2RequestHeaders } from './h2-request-head.js';
import { UpstreamConnectResetError, UpstreamConnectTimeoutError } from './upstream-connector.js';
import { UpstreamProtocolError, type UpstreamExchangeHandler, type UpstreamRequest } from './upstream-exchange.js';
import { H2_ERROR, UpstreamH2Stream, type StreamSession } from './upstream-h2-stream.js';
import type { MultiplexedSession, MultiplexedSessionOwner } from './upstream-session.js';
import type { SessionOpened, SessionOptions } from './open-upstream-session.js';

/** nghttp2's error for arguments it refuses (nghttp2.h). */
const NGHTTP2_ERR_INVALID_ARGUMENT = -501;
/** Response header lists beyond this are refused (node:http2's default limit, which we had). */
const MAX_HEADER_LIST_BYTES = 64 * 1024;
/** Our SETTINGS: no server push, and the header list limit. */
const LOCAL_SETTINGS: readonly number[] = Object.freeze([SETTING.ENABLE_PUSH, 0, SETTING.MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST_BYTES]);

export class UpstreamH2Session implements MultiplexedSession, StreamSession {
  readonly multiplexed = true as const;
  idleSince = 0;
  readonly #io: SocketIo;
  readonly #engine: H2Engine;
  readonly #addon: H2EngineAddon;
  readonly #session: EngineSession;
  /** The output buffer is the engine's, shared: a TCP handle may still point at it after write() returns. */
  readonly #copyOutput: boolean;
  readonly #scheme: 'https' | 'http';
  readonly #authority: string;
  readonly #maxStreams: number;
  /** Streams allowed at once: our cap, or fewer if the upstream's SETTINGS say so. */
  #limit = 0;
  readonly #streams = new Map<number, UpstreamH2Stream>();
  /** Set by GOAWAY: streams above it were not processed. */
  #lastStreamId = -1;
  #opened = false;
  /** nghttp2 took no new stream: like after a GOAWAY, the session finishes its streams and closes. */
  #exhausted = false;
  #closed = false;
  /** Until the first SETTINGS: called once with the session or why not. */
  #pendingOpen: SessionOpened | undefined;
  #setupTimer: NodeJS.Timeout | undefined;
  #socketError: Error | undefined;
  /** Inside a read's dispatch: what the streams queue leaves with the read's flush. */
  #receiving = false;
  #flushQueued = false;
  /** The socket is full: nothing more is framed until it drains. */
  #blocked = false;
  #finished = false;
  /** Streams that got a head or data in the read being dispatched: told when it is done. */
  readonly #touched: UpstreamH2Stream[] = [];

  /** Opens the session on `socket`; `opened` gets it once the upstream's SETTINGS came, or why not. */
  static open(socket: Socket, owner: MultiplexedSessionOwner, options: SessionOptions, opened: SessionOpened): void {
    if (h2Engine === undefined) {
      socket.destroy();
      opened(new Error(`upstream ${options.hostHeader}: HTTP/2 upstreams need the native HTTP/2 engine, which was not built (npm run build: a C compiler and libnghttp2-dev)`), null);
      return;
    }
    new UpstreamH2Session(socket, h2Engine, owner, options, opened);
  }

  private constructor(
    readonly socket: Socket,
    engine: H2Engine,
    readonly owner: MultiplexedSessionOwner,
    options: SessionOptions,
    opened: SessionOpened,
  ) {
    const encrypted = 'encrypted' in socket;
    this.#engine = engine;
    const addon = (this.#addon = engine.addon);
    this.#copyOutput = !encrypted;
    this.#scheme = encrypted ? 'https' : 'http';
    this.#authority = options.hostHeader;
    this.#maxStreams = options.maxStreams;
    this.#session = addon.createClient(LOCAL_SETTINGS);
    this.#pendingOpen = opened;
    this.#setupTimer = setTimeout(() => this.#failSetup(undefined, true, options.setupMs), options.setupMs);
    this.#setupTimer.unref();
    socket.on('error', this.#onSocketError);
    socket.once('close', () => this.#onSocketClose(options.setupMs));
    this.#io = new SocketIo(socket, { onData: this.#onData, onEnd: this.#onEnd });
    this.#flush(); // the connection preface and our SETTINGS
  }

  get hasRoom(): boolean {
    return this.#streams.size < this.#limit && this.#lastStreamId === -1 && !this.#exhausted && !this.#closed && !this.#finished;
  }

  get streams(): number {
    return this.#streams.size;
  }

  run(request: UpstreamRequest, handler: UpstreamExchangeHandler): void {
    const exchange = new UpstreamH2Stream(this, request, handler);
    handler.onConnect(exchange.abort);
    if (exchange.cancelled) return; // aborted synchronously
    if (this.#closed) {
      handler.onError(this.#closedError());
      return;
    }
    const hasBody = request.body !== null;
    const id = this.#addon.request(this.#session, h2RequestHeaders(request, this.#scheme, this.#authority), undefined, !hasBody);
    if (id === NGHTTP2_ERR_INVALID_ARGUMENT) {
      // A head HTTP/2 cannot carry (a field the engine refuses): nothing was sent.
      handler.onError(new Error(`request head not sendable over HTTP/2 to ${this.#authority} (nghttp2 error ${id})`));
      return;
    }
    if (id < 0) {
      // nghttp2 takes no new stream (its stream ids ran out, or the session is failing): nothing
      // was sent, so the request goes to another session, and this one takes no more.
      this.#exhausted = true;
      this.owner.goingAway(this);
      this.owner.refused(request, handler, new UpstreamProtocolError('GATEHOUSE_UPSTREAM_REFUSED', `upstream session took no new stream (nghttp2 error ${id})`));
      return;
    }
    this.#streams.set(id, exchange);
    exchange.start(id);
    this.submitted();
  }

  checkDeadline(now: number): void {
    for (const stream of this.#streams.values()) stream.checkDeadline(now);
  }

  close(): void {
    if (!this.#closed && !this.#finished) {
      // A GOAWAY first, as node:http2 sent (written at once: the connection is idle or given up), then the socket.
      this.#finished = true;
      this.#addon.goaway(this.#session, H2_ERROR.NO_ERROR);
      if (!this.#blocked) this.#writePending();
    }
    this.socket.destroy();
  }

  // ---- what streams call --------------------------------------------------------------------

  get engine(): H2EngineAddon {
    return this.#addon;
  }

  get session(): EngineSession {
    return this.#session;
  }

  /** A stream queued frames: they leave with the read being handled, or in a microtask. */
  submitted(): void {
    if (this.#receiving || this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(this.#flushLater);
  }

  unprocessed(id: number, code: number): boolean {
    if (code === H2_ERROR.REFUSED_STREAM) return true;
    return this.#lastStreamId !== -1 && id > this.#lastStreamId;
  }

  streamClosed(exchange: UpstreamH2Stream, handler: UpstreamExchangeHandler | undefined, failure: Error | undefined, refused: boolean): void {
    this.#streams.delete(exchange.id);
    this.owner.released(this);
    if (this.#exhausted && this.#streams.size === 0) this.close();
    if (handler === undefined || failure === undefined) return;
    // Sent again only without a body: one that was read cannot be sent whole again.
    if (refused && exchange.request.body === null) this.owner.refused(exchange.request, handler, failure);
    else handler.onError(failure);
  }

  // ---- the connection ------------------------------------------------------------------------

  readonly #onData = (chunk: Buffer): void => {
    const engine = this.#engine;
    const text = engine.receive(this.#session, chunk);
    this.#receiving = true;
    try {
      this.#dispatch(engine.events, text ?? '', chunk);
      // Body bytes that came in the same read as a head join it in one write to the client.
      const touched = this.#touched;
      for (let i = 0; i < touched.length; i++) touched[i]!.readDone();
      touched.length = 0;
    } finally {
      this.#receiving = false;
    }
    this.#flush();
  };

  /** The events of one read (or of a flush: closes only): `text` holds their header fields, `chunk` their body bytes. */
  #dispatch(events: Int32Array, text: string, chunk: Buffer): void {
    const end = 1 + events[0]!;
    let i = 1;
    while (i < end) {
      const kind = events[i]!;
      const id = events[i + 1]!;
      const at = i;
      i = nextEvent(events, i);
      if (kind === EVENT.HEADERS) {
        const flags = events[at + 2]!;
        const stream = this.#streams.get(id);
        // 1xx heads are not passed on; the final head follows.
        if (stream !== undefined && (flags & HEADERS_FLAG.INFORMATIONAL) === 0) {
          stream.onHeaders(flags, headerFields(events, at, text));
          this.#touch(stream);
        }
      } else if (kind === EVENT.DATA) {
        const stream = this.#streams.get(id);
        if (stream !== undefined) {
          const offset = events[at + 2]!;
          // A view of the read: whoever keeps it past this call copies it (isReadBufferView).
          stream.onData(chunk.subarray(offset, offset + events[at + 3]!));
          this.#touch(stream);
        }
      } else if (kind === EVENT.END_STREAM) {
        this.#streams.get(id)?.onEnd();
      } else if (kind === EVENT.CLOSE) {
        this.#streams.get(id)?.onClose(events[at + 2]!);
      } else if (kind === EVENT.WRITABLE) {
        this.#streams.get(id)?.onWritable();
      } else if (kind === EVENT.SETTINGS) {
        this.#onSettings(events[at + 2]!);
      } else if (kind === EVENT.GOAWAY) {
        this.#onGoaway(id);
      } else {
        // ERROR: the upstream broke the protocol; nghttp2 queued a GOAWAY, pending() says it is over.
        this.#socketError ??= new UpstreamProtocolError('GATEHOUSE_UPSTREAM_BAD_RESPONSE', `upstream ${this.#authority} broke the HTTP/2 protocol (nghttp2 error ${events[at + 2]!})`);
      }
    }
  }

  #touch(stream: UpstreamH2Stream): void {
    if (stream.touched) return;
    stream.touched = true;
    this.#touched.push(stream);
  }

  #onSettings(maxConcurrentStreams: number): void {
    const had = this.hasRoom;
    this.#limit = Math.min(this.#maxStreams, maxConcurrentStreams);
    if (!this.#opened) {
      this.#opened = true;
      clearTimeout(this.#setupTimer);
      const opened = this.#pendingOpen!;
      this.#pendingOpen = undefined;
      opened(null, this);
    } else if (!had && this.hasRoom) {
      this.owner.released(this);
    }
  }

  #onGoaway(lastStreamId: number): void {
    // Repeated GOAWAYs may lower the last stream, never raise it.
    const first = this.#lastStreamId === -1;
    this.#lastStreamId = first ? lastStreamId : Math.min(this.#lastStreamId, lastStreamId);
    // The engine ends the session once its streams are done (pending() returns -1).
    if (first && this.#opened) this.owner.goingAway(this);
  }

  readonly #flushLater = (): void => {
    this.#flushQueued = false;
    this.#flush();
  };

  /** Writes what the engine framed; then the closes that framing caused (a reset sent, a request refused after a GOAWAY). */
  #flush(): void {
    if (this.#finished || this.#closed || this.#blocked) return;
    const over = this.#writePending();
    if (this.#engine.takeEvents(this.#session) > 0) {
      this.#receiving = true;
      try {
        this.#dispatch(this.#engine.events, '', EMPTY);
      } finally {
        this.#receiving = false;
      }
      if (!over) this.submitted(); // what those events led to (more body, a request run in a freed stream)
    }
    if (over) this.#finish();
  }

  /** Writes frames until nghttp2 has no more or the socket is full; true when the session is over. */
  #writePending(): boolean {
    const addon = this.#addon;
    const output = this.#engine.output;
    // Until nghttp2 has nothing more (0) or the session is over (-1): bounded, as nothing is queued meanwhile.
    for (let out = addon.pending(this.#session); out !== 0; out = addon.pending(this.#session)) {
      if (out === -1) return true;
      // In the shared output buffer: a TLS socket encrypts a write before it returns, a TCP one may not.
      const bytes = this.#copyOutput ? Buffer.from(output.subarray(0, out)) : output.subarray(0, out);
      if (!this.#io.write(bytes)) {
        // The socket is full: frame nothing more (bodies wait in the engine) until it drains.
        this.#blocked = true;
        this.#io.onDrain(this.#onDrain);
        break;
      }
    }
    return false;
  }

  /**
   * The engine is done with the session (GOAWAY both ways and no stream left, or the upstream
   * broke the protocol): streams still open fail now, as the upstream may keep the socket open.
   */
  #finish(): void {
    this.#finished = true;
    this.#io.end();
    if (this.#streams.size === 0) return;
    // nghttp2 ends a session with streams open only when the upstream broke the protocol (a peer's
    // GOAWAY lets the streams it names finish first).
    const failure = this.#socketError ?? new UpstreamProtocolError('GATEHOUSE_UPSTREAM_BAD_RESPONSE', `upstream ${this.#authority} broke the HTTP/2 protocol: nghttp2 ended the session`);
    for (const stream of [...this.#streams.values()]) stream.onSessionClosed(failure);
    this.#streams.clear();
    this.owner.released(this);
  }

  readonly #onDrain = (): void => {
    this.#blocked = false;
    this.#flush();
  };

  readonly #onEnd = (): void => {
    // The upstream closed its side: no response can come any more.
    this.socket.destroy();
  };

  readonly #onSocketError = (err: Error): void => {
    this.#socketError ??= err;
  };

  #onSocketClose(setupMs: number): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#addon.destroy(this.#session);
    if (!this.#opened) {
      this.#failSetup(this.#socketError, false, setupMs);
      return;
    }
    const failure = this.#closedError();
    for (const stream of [...this.#streams.values()]) stream.onSessionClosed(failure);
    this.#streams.clear();
    this.owner.closed(this);
  }

  #closedError(): Error {
    return this.#socketError ?? new UpstreamProtocolError('GATEHOUSE_UPSTREAM_CLOSED', `upstream ${this.#authority} closed the HTTP/2 connection`);
  }

  #failSetup(cause: Error | undefined, timedOut: boolean, setupMs: number): void {
    const opened = this.#pendingOpen;
    if (opened === undefined) return;
    this.#pendingOpen = undefined;
    clearTimeout(this.#setupTimer);
    this.socket.destroy();
    opened(setupError(this.#authority, this.#scheme === 'https', cause, timedOut, setupMs), null);
  }
}

const EMPTY = Buffer.alloc(0);

/** Why a connection did not become an HTTP/2 session: in plaintext, the upstream does not speak h2c. */
function setupError(authority: string, encrypted: boolean, cause: Error | undefined, timedOut: boolean, setupMs: number): Error {
  const what = timedOut ? `no HTTP/2 SETTINGS within ${setupMs}ms` : `closed before its HTTP/2 SETTINGS${cause ? ` (${cause.message})` : ''}`;
  if (!encrypted) return new UpstreamProtocolError('GATEHOUSE_UPSTREAM_PROTOCOL_MISMATCH', `upstream ${authority} ${what}: it does not speak h2c (protocol: h2 without tls)`);
  return timedOut ? new UpstreamConnectTimeoutError(`upstream ${authority}: ${what}`) : new UpstreamConnectResetError(`upstream ${authority} ${what}`);
}
