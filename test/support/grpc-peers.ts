// Real gRPC peers for tests, on @grpc/grpc-js with raw Buffer messages (no protobuf): a server with
// mTLS offering one service in all four modes, told per test how to answer (delay, status,
// trailers, a reset mid-stream) and recording what it saw (metadata such as XFCC, the caller's
// certificate, the deadline, a cancel); and a client factory with mTLS and an SNI override. Also a
// bare HTTP/2 upstream that never answers, for deadlines no upstream enforces.
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { parseSubjectAltNames } from '../../gateway/identity/subject-alt-names.js';
import type { ClientCert } from './mtls-client.js';

export const ECHO_SERVICE = 'gatehouse.test.Echo';

/** The four methods of the test service, one per streaming mode. */
export const ECHO_PATHS = {
  unary: `/${ECHO_SERVICE}/Unary`,
  clientStream: `/${ECHO_SERVICE}/ClientStream`,
  serverStream: `/${ECHO_SERVICE}/ServerStream`,
  bidi: `/${ECHO_SERVICE}/Bidi`,
} as const;
export type EchoMode = keyof typeof ECHO_PATHS;

const raw = (message: Buffer): Buffer => message;

const method = (path: string, requestStream: boolean, responseStream: boolean) => ({
  path,
  requestStream,
  responseStream,
  requestSerialize: raw,
  requestDeserialize: raw,
  responseSerialize: raw,
  responseDeserialize: raw,
});

const ECHO_DEFINITION = {
  Unary: method(ECHO_PATHS.unary, false, false),
  ClientStream: method(ECHO_PATHS.clientStream, true, false),
  ServerStream: method(ECHO_PATHS.serverStream, false, true),
  Bidi: method(ECHO_PATHS.bidi, true, true),
} satisfies grpc.ServiceDefinition;

/**
 * How the server answers, for every call until changed. Replies: unary echoes the request; client
 * streaming answers the requests joined by '+'; server streaming sends `replies` messages
 * `<request>#<i>`; bidirectional echoes each request.
 */
export interface CallScript {
  /** Wait before each reply (and before the status of a call that sends none). */
  readonly delayMs?: number;
  /** End with this status rather than OK. */
  readonly status?: { readonly code: grpc.status; readonly details: string };
  /** Trailing metadata sent with the status, OK or not. */
  readonly trailers?: Record<string, string>;
  /** Server streaming: how many replies (default 3). */
  readonly replies?: number;
  /** Server streaming: replies of this many bytes instead of text (flow control, backpressure). */
  readonly replyBytes?: number;
  /** Reset the call's HTTP/2 stream (RST_STREAM) once this many replies are out, instead of ending with a status. */
  readonly resetAfterReplies?: number;
  /** The RST_STREAM error code; default CANCEL (8). */
  readonly resetCode?: number;
}

/** What the server saw of one call. */
export interface SeenCall {
  readonly path: string;
  /** `:authority` as it arrived. */
  readonly authority: string;
  /** Request metadata, first value of each (string) key. */
  readonly metadata: Record<string, string>;
  /** The URI SAN of the client certificate on the connection the call came on. */
  readonly peer: string | null;
  /** Milliseconds the call had left when it arrived (from grpc-timeout); undefined without a deadline. */
  readonly deadlineLeftMs: number | undefined;
  readonly requests: Buffer[];
  /**
   * How the call's stream ended for the server: 'finished' after the script's status, 'cancelled'
   * before it (a reset from the client or a proxy, or a deadline grpc-js enforced), 'reset' by the
   * script (resetAfterReplies).
   */
  readonly ended: Promise<'finished' | 'cancelled' | 'reset'>;
}

export interface TestGrpcServer {
  readonly port: number;
  readonly calls: SeenCall[];
  /** The script for calls from now on; `{}` answers at once with OK. */
  script: CallScript;
  /** Resolves with the `n`th call (1-based) once it arrived; rejects after `timeoutMs`. */
  call(n: number, timeoutMs?: number): Promise<SeenCall>;
  close(): Promise<void>;
}

/** Server identity and trust: the server's certificate (chain and key) and the CA its clients' certificates must chain to. */
export interface GrpcServerTls {
  readonly cert: ClientCert;
  readonly caPem: string;
}

export async function startTestGrpcServer(tls: GrpcServerTls): Promise<TestGrpcServer> {
  const calls: SeenCall[] = [];
  const waiters: (() => void)[] = [];
  const server = new grpc.Server();
  const state: TestGrpcServer = {
    port: 0,
    calls,
    script: {},
    async call(n, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (calls.length < n) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`the gRPC server saw ${calls.length} call(s) within ${timeoutMs} ms, expected ${n}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => (clearTimeout(timer), resolve()));
        });
      }
      return calls[n - 1]!;
    },
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())).then(() => server.forceShutdown()),
  };

  /** Records a call; the returned functions are how each handler reports its end. */
  const seen = (call: grpc.ServerUnaryCall<Buffer, Buffer> | grpc.ServerReadableStream<Buffer, Buffer> | grpc.ServerWritableStream<Buffer, Buffer> | grpc.ServerDuplexStream<Buffer, Buffer>) => {
    const stream = http2StreamOf(call);
    const deadline = call.getDeadline();
    const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
    const certificate = call.getAuthContext().sslPeerCertificate;
    let statusSent = false;
    let resetByUs = false;
    // Judged when the HTTP/2 stream closes, by how: a reset from the peer may follow a half-close
    // that already let the handler answer, so "the handler answered" alone proves nothing.
    const ended = new Promise<'finished' | 'cancelled' | 'reset'>((resolve) =>
      stream.once('close', () => resolve(resetByUs ? 'reset' : statusSent && stream.rstCode === http2.constants.NGHTTP2_NO_ERROR ? 'finished' : 'cancelled')),
    );
    const record: SeenCall = {
      path: call.getPath(),
      authority: call.getHost(),
      metadata: plain(call.metadata),
      peer: certificate ? (parseSubjectAltNames(certificate.subjectaltname).uris[0] ?? null) : null,
      deadlineLeftMs: Number.isFinite(deadlineMs) ? deadlineMs - Date.now() : undefined,
      requests: 'request' in call && call.request ? [call.request] : [],
      ended,
    };
    calls.push(record);
    waiters.splice(0).forEach((wake) => wake());
    return {
      record,
      script: state.script,
      isOver: () => stream.closed || stream.destroyed,
      /** Called as the handler sends the script's status. */
      finished: () => (statusSent = true),
      reset: (code: number | undefined) => {
        resetByUs = true;
        stream.close(code ?? http2.constants.NGHTTP2_CANCEL);
      },
    };
  };

  const trailersOf = (script: CallScript) => metadataOf(script.trailers ?? {});
  const statusError = (script: CallScript): Partial<grpc.StatusObject> | undefined =>
    script.status && { code: script.status.code, details: script.status.details, metadata: trailersOf(script) };

  server.addService(ECHO_DEFINITION, {
    Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      const s = seen(call);
      void replyOnce(s, callback, () => call.request);
    },
    ClientStream: (call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      const s = seen(call);
      call.on('data', (message: Buffer) => s.record.requests.push(message));
      call.on('end', () => void replyOnce(s, callback, () => Buffer.from(s.record.requests.map(String).join('+'))));
    },
    ServerStream: async (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const s = seen(call);
      const { replies = 3, replyBytes } = s.script;
      for (let i = 0; i < replies; i++) {
        if (s.script.resetAfterReplies === i) return s.reset(s.script.resetCode);
        await pause(s.script.delayMs, s.isOver);
        if (s.isOver()) return;
        const reply = replyBytes === undefined ? Buffer.from(`${call.request}#${i}`) : Buffer.alloc(replyBytes, i % 256);
        // Backpressure: wait for the write to be taken before the next one.
        await new Promise<void>((resolve) => call.write(reply, () => resolve()));
      }
      if (s.script.resetAfterReplies === replies) return s.reset(s.script.resetCode);
      endStream(call, s);
    },
    Bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      const s = seen(call);
      // Replies go out in order, each after its delay, while requests keep arriving.
      let chain = Promise.resolve();
      call.on('data', (message: Buffer) => {
        s.record.requests.push(message);
        chain = chain.then(async () => {
          await pause(s.script.delayMs, s.isOver);
          if (s.isOver()) return;
          call.write(message);
          if (s.record.requests.length === s.script.resetAfterReplies) s.reset(s.script.resetCode);
        });
      });
      call.on('end', () => void chain.then(() => !s.isOver() && endStream(call, s)));
    },
  });

  /** Unary and client streaming: after the script's delay, one reply with its trailers, or its status, or a reset. */
  async function replyOnce(s: ReturnType<typeof seen>, callback: grpc.sendUnaryData<Buffer>, reply: () => Buffer): Promise<void> {
    await pause(s.script.delayMs, s.isOver);
    if (s.isOver()) return;
    if (s.script.resetAfterReplies === 0) return s.reset(s.script.resetCode);
    const error = statusError(s.script);
    s.finished();
    if (error) callback(error);
    else callback(null, reply(), trailersOf(s.script));
  }

  /** Ends a streaming response with the script's status and trailers. */
  function endStream(call: grpc.ServerWritableStream<Buffer, Buffer> | grpc.ServerDuplexStream<Buffer, Buffer>, s: ReturnType<typeof seen>): void {
    const error = statusError(s.script);
    s.finished();
    if (error) call.emit('error', error);
    else call.end(trailersOf(s.script));
  }

  const credentials = grpc.ServerCredentials.createSsl(Buffer.from(tls.caPem), [{ cert_chain: Buffer.from(tls.cert.chainPem), private_key: Buffer.from(tls.cert.keyPem) }], true);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p))));
  return Object.assign(state, { port });
}

/**
 * grpc-js offers a server no way to reset a call's stream (RST_STREAM), which is what a crashing
 * or aborting server sends: reach it through the handler call's private `call.stream` (the
 * BaseServerInterceptingCall of grpc-js 1.x when no interceptors are installed). The harness test
 * of resets fails loudly if an update moves it.
 */
function http2StreamOf(call: object): http2.ServerHttp2Stream {
  const stream = (call as { call?: { stream?: Partial<http2.ServerHttp2Stream> } }).call?.stream;
  if (typeof stream?.close !== 'function' || typeof stream.respond !== 'function') {
    throw new Error('grpc-js moved the HTTP/2 stream of a server call (expected call.call.stream): update http2StreamOf');
  }
  return stream as http2.ServerHttp2Stream;
}

/** Waits `ms` (nothing when undefined), in slices, returning early once `over()` says the call ended. */
async function pause(ms: number | undefined, over: () => boolean): Promise<void> {
  if (!ms) return;
  const until = Date.now() + ms;
  while (!over() && Date.now() < until) await new Promise((r) => setTimeout(r, Math.min(20, until - Date.now())));
}

function metadataOf(entries: Record<string, string>): grpc.Metadata {
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(entries)) metadata.set(key, value);
  return metadata;
}

// ---- the client ----

export interface GrpcClientTarget {
  readonly port: number;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Trust bundle for the server's certificate. */
  readonly caPem: string;
  /** The client certificate; none: the handshake goes without one. */
  readonly cert?: ClientCert;
  /** SNI and the name the server certificate is checked against; default localhost. */
  readonly servername?: string;
  /** `:authority`; default the servername. */
  readonly authority?: string;
}

export interface CallOpts {
  /** The call's deadline from now: grpc-js sends grpc-timeout and also ends the call itself when it passes. */
  readonly deadlineMs?: number;
  readonly metadata?: Record<string, string>;
  /** Called with each reply as it arrives (streaming replies). */
  readonly onReply?: (reply: Buffer, index: number) => void;
}

/** How a call ended, as the client saw it. */
export interface CallOutcome {
  readonly code: grpc.status;
  readonly details: string;
  readonly replies: Buffer[];
  /** Initial (response header) metadata. */
  readonly headers: Record<string, string>;
  /** Trailing metadata (custom trailers; grpc-status and grpc-message are `code` and `details`). */
  readonly trailers: Record<string, string>;
  /** Milliseconds from the call's start to its status. */
  readonly elapsedMs: number;
}

export interface StartedCall<C> {
  readonly call: C;
  readonly outcome: Promise<CallOutcome>;
}

export interface TestGrpcClient {
  readonly raw: grpc.Client;
  unary(request: string | Buffer, opts?: CallOpts): StartedCall<grpc.ClientUnaryCall>;
  /** Writes `requests` and half-closes, unless `keepOpen` (the test writes, ends or cancels). */
  clientStream(requests: (string | Buffer)[], opts?: CallOpts & { keepOpen?: boolean }): StartedCall<grpc.ClientWritableStream<Buffer>>;
  serverStream(request: string | Buffer, opts?: CallOpts): StartedCall<grpc.ClientReadableStream<Buffer>>;
  bidi(requests: (string | Buffer)[], opts?: CallOpts & { keepOpen?: boolean }): StartedCall<grpc.ClientDuplexStream<Buffer, Buffer>>;
  /** Any method (the gateway's routes, the demo's health service) with one request message. */
  unaryAt(path: string, request: Buffer, opts?: CallOpts): StartedCall<grpc.ClientUnaryCall>;
  close(): void;
}

/** A client with its own connection (no subchannel shared with other clients: identities never mix). */
export function grpcClient(target: GrpcClientTarget): TestGrpcClient {
  const servername = target.servername ?? 'localhost';
  const credentials = grpc.credentials.createSsl(Buffer.from(target.caPem), target.cert && Buffer.from(target.cert.keyPem), target.cert && Buffer.from(target.cert.chainPem));
  const client = new grpc.Client(`${target.host ?? '127.0.0.1'}:${target.port}`, credentials, {
    'grpc.ssl_target_name_override': servername,
    'grpc.default_authority': target.authority ?? servername,
    'grpc.use_local_subchannel_pool': 1,
  });
  const optionsOf = (opts: CallOpts): grpc.CallOptions => (opts.deadlineMs === undefined ? {} : { deadline: Date.now() + opts.deadlineMs });
  const bytes = (m: string | Buffer) => (typeof m === 'string' ? Buffer.from(m) : m);

  /** Collects replies, header and trailing metadata of any call into its outcome. */
  function observe<C extends grpc.ClientUnaryCall | grpc.ClientWritableStream<Buffer> | grpc.ClientReadableStream<Buffer> | grpc.ClientDuplexStream<Buffer, Buffer>>(
    call: C,
    opts: CallOpts,
    replies: Buffer[],
  ): StartedCall<C> {
    const started = Date.now();
    let headers: Record<string, string> = {};
    call.on('metadata', (m: grpc.Metadata) => (headers = plain(m)));
    if ('read' in call) {
      call.on('data', (reply: Buffer) => {
        replies.push(reply);
        opts.onReply?.(reply, replies.length - 1);
      });
      // A streaming call errors with its non-OK status; the 'status' event below reports it.
      call.on('error', () => {});
    }
    const outcome = new Promise<CallOutcome>((resolve) =>
      call.on('status', (status: grpc.StatusObject) =>
        // The unary callback (which adds its reply) runs before 'status' in grpc-js; a tick settles the order anyway.
        setImmediate(() => resolve({ code: status.code, details: status.details, replies, headers, trailers: plain(status.metadata), elapsedMs: Date.now() - started })),
      ),
    );
    return { call, outcome };
  }

  const unaryAt = (path: string, request: Buffer, opts: CallOpts = {}) => {
    const replies: Buffer[] = [];
    const call = client.makeUnaryRequest(path, raw, raw, request, metadataOf(opts.metadata ?? {}), optionsOf(opts), (_err, reply) => reply && replies.push(reply));
    return observe(call, opts, replies);
  };
  return {
    raw: client,
    unary: (request, opts = {}) => unaryAt(ECHO_PATHS.unary, bytes(request), opts),
    unaryAt,
    clientStream(requests, opts = {}) {
      const replies: Buffer[] = [];
      const call = client.makeClientStreamRequest(ECHO_PATHS.clientStream, raw, raw, metadataOf(opts.metadata ?? {}), optionsOf(opts), (_err, reply) => reply && replies.push(reply));
      const started = observe(call, opts, replies);
      for (const request of requests) call.write(bytes(request));
      if (!opts.keepOpen) call.end();
      return started;
    },
    serverStream(request, opts = {}) {
      const call = client.makeServerStreamRequest(ECHO_PATHS.serverStream, raw, raw, bytes(request), metadataOf(opts.metadata ?? {}), optionsOf(opts));
      return observe(call, opts, []);
    },
    bidi(requests, opts = {}) {
      const call = client.makeBidiStreamRequest(ECHO_PATHS.bidi, raw, raw, metadataOf(opts.metadata ?? {}), optionsOf(opts));
      const started = observe(call, opts, []);
      for (const request of requests) call.write(bytes(request));
      if (!opts.keepOpen) call.end();
      return started;
    },
    close: () => client.close(),
  };
}

function plain(metadata: grpc.Metadata): Record<string, string> {
  return Object.fromEntries(Object.entries(metadata.getMap()).flatMap(([k, v]) => (typeof v === 'string' ? [[k, v]] : [])));
}

// ---- an upstream that never answers ----

export interface StalledStream {
  readonly headers: http2.IncomingHttpHeaders;
  /** Resolves with the stream's RST_STREAM code once it is closed (by the peer: the gateway). */
  readonly closed: Promise<number>;
}

export interface StallingUpstream {
  readonly port: number;
  readonly streams: StalledStream[];
  close(): Promise<void>;
}

/**
 * An HTTP/2 server (mTLS, client certificate required) that takes every stream and never answers:
 * it enforces no grpc-timeout, so a deadline that ends such a call was enforced by someone else.
 */
export async function startStallingUpstream(tls: GrpcServerTls): Promise<StallingUpstream> {
  const streams: StalledStream[] = [];
  const sockets = new Set<TLSSocket>();
  const server = http2.createSecureServer({ cert: tls.cert.chainPem, key: tls.cert.keyPem, ca: tls.caPem, requestCert: true, rejectUnauthorized: true });
  server.on('secureConnection', (socket: TLSSocket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    stream.resume();
    streams.push({ headers, closed: new Promise((resolve) => stream.once('close', () => resolve(stream.rstCode ?? 0))) });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    streams,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}
