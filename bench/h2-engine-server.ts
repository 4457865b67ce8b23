// The smallest HTTP/2 server on the native engine (h2-engine.c) over SocketIo, for measuring the
// engine alone (h2-engine-probe.ts, against node:http2) and testing it without the gateway
// (test/h2-engine.test.ts): whole requests in, whole responses out. Each read goes to the engine in
// one call, whose events are dispatched here, and what the answers queued leaves in one write.
// Request bodies are taken whole: each stream's window is reopened (consume()) as its data arrives.
// The gateway's own session (gateway/http2/client-session.ts) streams bodies both ways.
import { Buffer } from 'node:buffer';
import type { TLSSocket } from 'node:tls';
import { SocketIo } from '../gateway/net/socket-io.js';
import { EVENT, headerFields, HEADERS_FLAG, nextEvent, SETTING, type EngineSession, type H2Engine, type H2EngineAddon } from '../gateway/http2/native/h2-engine.js';

/** RST_STREAM / GOAWAY codes used here (RFC 9113 7). */
const NO_ERROR = 0;

/** A request, whole: its stream, its header fields [name, value, ...] (pseudo-headers first), its body. */
export type NativeH2RequestHandler = (session: NativeH2ServerSession, streamId: number, headers: readonly string[], body: Buffer | undefined) => void;

export interface NativeH2ServerOptions {
  readonly maxConcurrentStreams: number;
  readonly maxHeaderListBytes: number;
}

/** A request whose head has arrived and whose body has not ended. */
interface OpenRequest {
  readonly headers: readonly string[];
  readonly chunks: Buffer[];
}

export class NativeH2ServerSession {
  readonly #io: SocketIo;
  readonly #addon: H2EngineAddon;
  readonly #session: EngineSession;
  readonly #open = new Map<number, OpenRequest>();
  /** Inside onData: answers made now leave with the read's flush. */
  #receiving = false;
  #flushQueued = false;
  #finished = false;
  /** A GOAWAY either way or a broken connection: the session may be over after the next flush. */
  #ending = false;

  constructor(
    socket: TLSSocket,
    private readonly engine: H2Engine,
    private readonly onRequest: NativeH2RequestHandler,
    options: NativeH2ServerOptions,
  ) {
    const addon = (this.#addon = engine.addon);
    this.#session = addon.createServer([
      SETTING.MAX_CONCURRENT_STREAMS, options.maxConcurrentStreams,
      SETTING.MAX_HEADER_LIST_SIZE, options.maxHeaderListBytes,
      SETTING.ENABLE_PUSH, 0,
    ]);
    socket.once('close', () => addon.destroy(this.#session));
    this.#io = new SocketIo(socket, { onData: (chunk) => this.#onData(chunk), onEnd: () => this.#io.end() });
    this.#flush(); // our SETTINGS: the server's connection preface
  }

  /** Answers a stream: the head [':status', '200', name, value, ...] and the whole body. */
  respond(streamId: number, headers: readonly string[], body: Buffer | undefined): void {
    this.#addon.respond(this.#session, streamId, headers, body, true);
    this.#afterSubmit();
  }

  /** Ends a stream with RST_STREAM `code`. */
  reset(streamId: number, code: number): void {
    this.#addon.reset(this.#session, streamId, code);
    this.#afterSubmit();
  }

  /** GOAWAY: the streams open now are finished, then the connection closes. */
  close(): void {
    this.#addon.goaway(this.#session, NO_ERROR);
    this.#ending = true;
    this.#afterSubmit();
  }

  #afterSubmit(): void {
    if (this.#receiving || this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(this.#flushLater);
  }

  readonly #flushLater = (): void => {
    this.#flushQueued = false;
    this.#flush();
  };

  #onData(chunk: Buffer): void {
    const text = this.engine.receive(this.#session, chunk);
    this.#receiving = true;
    try {
      this.#dispatch(this.engine.events, text ?? '', chunk);
    } finally {
      this.#receiving = false;
    }
    this.#flush();
  }

  /** The events of one read: `text` holds their header fields, `chunk` their body bytes. */
  #dispatch(events: Int32Array, text: string, chunk: Buffer): void {
    const end = 1 + events[0]!;
    let i = 1;
    while (i < end) {
      const kind = events[i]!;
      const streamId = events[i + 1]!;
      const at = i;
      i = nextEvent(events, i);
      if (kind === EVENT.HEADERS) {
        this.#onHeaders(streamId, events[at + 2]!, headerFields(events, at, text));
      } else if (kind === EVENT.DATA) {
        const offset = events[at + 2]!;
        const length = events[at + 3]!;
        // A copy: the read's bytes are the shared read buffer's. Kept whole, so the window reopens at once.
        this.#open.get(streamId)?.chunks.push(Buffer.from(chunk.subarray(offset, offset + length)));
        this.#addon.consume(this.#session, streamId, length);
      } else if (kind === EVENT.END_STREAM) {
        this.#complete(streamId);
      } else if (kind === EVENT.CLOSE) {
        this.#open.delete(streamId);
      } else {
        // GOAWAY (the session finishes once its streams have), ERROR (it is over: pending() says so).
        this.#ending = true;
      }
    }
  }

  #onHeaders(streamId: number, flags: number, headers: string[]): void {
    if (flags & HEADERS_FLAG.TOO_LARGE) {
      this.#open.delete(streamId);
      this.#addon.respond(this.#session, streamId, [':status', '431'], undefined, true);
    } else if (flags & HEADERS_FLAG.TRAILERS) {
      this.#complete(streamId); // a request's trailers end it (they are not passed on here)
    } else if (flags & HEADERS_FLAG.END_STREAM) {
      this.onRequest(this, streamId, headers, undefined);
    } else {
      this.#open.set(streamId, { headers, chunks: [] });
    }
  }

  #complete(streamId: number): void {
    const request = this.#open.get(streamId);
    if (request === undefined) return; // answered already (431)
    this.#open.delete(streamId);
    const { chunks } = request;
    this.onRequest(this, streamId, request.headers, chunks.length === 0 ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
  }

  #flush(): void {
    if (this.#finished) return;
    let full = false;
    // Until nghttp2 has nothing more (0) or the session is over (-1): bounded, as nothing is queued meanwhile.
    for (let out = this.#addon.pending(this.#session); out !== 0; out = this.#addon.pending(this.#session)) {
      if (out === -1) return this.#finish();
      // In the shared output buffer, a view will do: a TLS socket encrypts a write before it returns.
      if (!this.#io.write(this.engine.output.subarray(0, out))) full = true;
    }
    if (full) {
      // The socket is full: read nothing more (no more answers to queue) until it drains.
      this.#io.pause();
      this.#io.onDrain(() => this.#io.resume());
    }
  }

  /** The session is over: our side ends once what was written has left. */
  #finish(): void {
    this.#finished = true;
    this.#io.end();
  }
}
