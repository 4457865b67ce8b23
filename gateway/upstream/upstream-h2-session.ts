// An HTTP/2 session to an upstream endpoint (node:http2 on the connector's socket: already
// TLS-verified with our client certificate and the upstream's identity checked, or h2c by prior
// knowledge), carrying many exchanges as streams. It is usable once the upstream's first SETTINGS
// have come; it takes streams up to the smaller of our cap and the upstream's
// SETTINGS_MAX_CONCURRENT_STREAMS, and tells its pool each time one closes. After a GOAWAY it
// takes no new stream and lets those in flight finish; a stream the upstream did not process
// (above the GOAWAY's last stream, or REFUSED_STREAM) goes back to the pool to be sent again when
// it has no body.
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type Settings } from 'node:http2';
import type { Socket } from 'node:net';
import { h2RequestHeaders } from './h2-request-head.js';
import { UpstreamConnectResetError, UpstreamConnectTimeoutError } from './upstream-connector.js';
import { UpstreamProtocolError, type UpstreamExchangeHandler, type UpstreamRequest } from './upstream-exchange.js';
import { UpstreamH2Stream, type StreamSession } from './upstream-h2-stream.js';
import type { MultiplexedSession, MultiplexedSessionOwner } from './upstream-session.js';
import type { SessionOpened, SessionOptions } from './open-upstream-session.js';

const { NGHTTP2_REFUSED_STREAM } = http2.constants;
/** We never accept server push. */
const LOCAL_SETTINGS: Settings = Object.freeze({ enablePush: false });

export class UpstreamH2Session implements MultiplexedSession, StreamSession {
  readonly multiplexed = true as const;
  idleSince = 0;
  readonly #session: ClientHttp2Session;
  readonly #scheme: 'https' | 'http';
  readonly #authority: string;
  readonly #maxStreams: number;
  /** Streams allowed at once: our cap, or fewer if the upstream's SETTINGS say so. */
  #limit = 0;
  readonly #streams = new Set<UpstreamH2Stream>();
  /** Set by GOAWAY: streams above it were not processed. */
  #lastStreamId = -1;
  #opened = false;

  /** Opens the session on `socket`; `opened` gets it once the upstream's SETTINGS came, or why not. */
  static open(socket: Socket, owner: MultiplexedSessionOwner, options: SessionOptions, opened: SessionOpened): void {
    new UpstreamH2Session(socket, owner, options, opened);
  }

  private constructor(
    socket: Socket,
    readonly owner: MultiplexedSessionOwner,
    options: SessionOptions,
    opened: SessionOpened,
  ) {
    const encrypted = 'encrypted' in socket;
    this.#scheme = encrypted ? 'https' : 'http';
    this.#authority = options.hostHeader;
    this.#maxStreams = options.maxStreams;
    const session = (this.#session = http2.connect(`${this.#scheme}://${options.hostHeader}`, { createConnection: () => socket, settings: LOCAL_SETTINGS }));

    // Until the first SETTINGS: a failure is the connection's, reported to whoever opened it.
    let settled = false;
    const fail = (cause: Error | undefined, timedOut: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      opened(setupError(this.#authority, encrypted, cause, timedOut, options.setupMs), null);
    };
    const timer = setTimeout(() => fail(undefined, true), options.setupMs);
    timer.unref();
    let lastError: Error | undefined;
    session.on('error', (err: Error) => {
      lastError = err;
      fail(err, false);
    });
    session.once('close', () => {
      if (!this.#opened) fail(lastError, false);
      else owner.closed(this);
    });
    session.on('goaway', this.#onGoaway);
    session.once('remoteSettings', (settings: Settings) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      this.#opened = true;
      this.#setLimit(settings);
      session.on('remoteSettings', this.#onRemoteSettings);
      opened(null, this);
    });
  }

  get hasRoom(): boolean {
    const session = this.#session;
    return this.#streams.size < this.#limit && this.#lastStreamId === -1 && !session.closed && !session.destroyed;
  }

  get streams(): number {
    return this.#streams.size;
  }

  run(request: UpstreamRequest, handler: UpstreamExchangeHandler): void {
    const exchange = new UpstreamH2Stream(this, request, handler);
    handler.onConnect(exchange.abort);
    if (exchange.cancelled) return; // aborted synchronously
    let stream: ClientHttp2Stream;
    try {
      stream = this.#session.request(h2RequestHeaders(request, this.#scheme, this.#authority) as http2.OutgoingHttpHeaders, { endStream: request.body === null });
    } catch (err) {
      // A head node:http2 will not send (its header checks), or a session that just failed.
      handler.onError(err as Error);
      return;
    }
    this.#streams.add(exchange);
    exchange.start(stream);
  }

  checkDeadline(now: number): void {
    for (const stream of this.#streams) stream.checkDeadline(now);
  }

  close(): void {
    this.#session.destroy();
  }

  unprocessed(stream: ClientHttp2Stream): boolean {
    if (stream.rstCode === NGHTTP2_REFUSED_STREAM) return true;
    return this.#lastStreamId !== -1 && (stream.id === undefined || stream.id > this.#lastStreamId);
  }

  streamClosed(exchange: UpstreamH2Stream, handler: UpstreamExchangeHandler | undefined, failure: Error | undefined, refused: boolean): void {
    this.#streams.delete(exchange);
    this.owner.released(this);
    if (handler === undefined || failure === undefined) return;
    // Sent again only without a body: one that was read cannot be sent whole again.
    if (refused && exchange.request.body === null) this.owner.refused(exchange.request, handler, failure);
    else handler.onError(failure);
  }

  #setLimit(settings: Settings): void {
    this.#limit = Math.min(this.#maxStreams, settings.maxConcurrentStreams ?? this.#maxStreams);
  }

  readonly #onRemoteSettings = (settings: Settings): void => {
    const had = this.hasRoom;
    this.#setLimit(settings);
    if (!had && this.hasRoom) this.owner.released(this);
  };

  readonly #onGoaway = (_code: number, lastStreamId: number): void => {
    // Repeated GOAWAYs may lower the last stream, never raise it.
    const first = this.#lastStreamId === -1;
    this.#lastStreamId = first ? lastStreamId : Math.min(this.#lastStreamId, lastStreamId);
    // node:http2 closes the session once its streams are done (at once after a GOAWAY with an error).
    if (first && this.#opened) this.owner.goingAway(this);
  };
}

/** Why a connection did not become an HTTP/2 session: in plaintext, the upstream does not speak h2c. */
function setupError(authority: string, encrypted: boolean, cause: Error | undefined, timedOut: boolean, setupMs: number): Error {
  const what = timedOut ? `no HTTP/2 SETTINGS within ${setupMs}ms` : `closed before its HTTP/2 SETTINGS${cause ? ` (${cause.message})` : ''}`;
  if (!encrypted) return new UpstreamProtocolError('GATEHOUSE_UPSTREAM_PROTOCOL_MISMATCH', `upstream ${authority} ${what}: it does not speak h2c (protocol: h2 without tls)`);
  return timedOut ? new UpstreamConnectTimeoutError(`upstream ${authority}: ${what}`) : new UpstreamConnectResetError(`upstream ${authority} ${what}`);
}
