// The gRPC harness itself, client straight to server with no gateway between: what the
// through-the-gateway tests rely on (four streaming modes, trailers, statuses, deadlines,
// cancellation both ways, the records the server keeps) must hold here first, with real mTLS.
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { callGrpc } from '../gateway/demo/grpc-call.js';
import { GRPC_STATUS } from '../gateway/demo/grpc-wire.js';
import { ECHO_PATHS, grpcClient, startStallingUpstream, startTestGrpcServer, type StallingUpstream, type TestGrpcClient, type TestGrpcServer } from './support/grpc-peers.js';
import { ProxyCerts } from './support/proxy-parties.js';
import { id } from './support/test-pki.js';

/** What scheduling on a busy 2-core machine may add to a deadline or a cancel. */
const SLACK_MS = 1000;

let certs: ProxyCerts;
let server: TestGrpcServer;
let client: TestGrpcClient;
let stalling: StallingUpstream;

beforeAll(async () => {
  certs = await ProxyCerts.issue();
  const tls = { cert: certs.origin, caPem: certs.pki.ca.rootPem };
  server = await startTestGrpcServer(tls);
  stalling = await startStallingUpstream(tls);
  client = grpcClient({ port: server.port, caPem: certs.pki.ca.rootPem, cert: certs.frontend });
});

afterEach(() => {
  server.script = {};
});

afterAll(async () => {
  client?.close();
  await server?.close();
  await stalling?.close();
  certs?.pki.cleanup();
});

/** The calls the server saw from now on: `next()` resolves with the next one. */
function nextCalls() {
  let n = server.calls.length;
  return { next: () => server.call(++n) };
}

describe('the four streaming modes, with trailers, over mTLS', () => {
  const TRAILERS = { 'x-checksum': 'c0ffee', 'x-mode-note': 'sent with the status' };

  it('unary: the reply echoes the request; header metadata, custom trailers and the caller identity are seen', async () => {
    server.script = { trailers: TRAILERS };
    const calls = nextCalls();
    const result = await client.unary('ping', { metadata: { 'x-request-note': 'hello' } }).outcome;
    expect(result).toMatchObject({ code: grpc.status.OK, trailers: TRAILERS });
    expect(result.replies.map(String)).toEqual(['ping']);
    const seen = await calls.next();
    expect(seen).toMatchObject({ path: ECHO_PATHS.unary, peer: id('frontend'), deadlineLeftMs: undefined });
    expect(seen.metadata['x-request-note']).toBe('hello');
    expect(await seen.ended).toBe('finished');
  });

  it('client streaming: every request arrives, one reply joins them', async () => {
    server.script = { trailers: TRAILERS };
    const calls = nextCalls();
    const result = await client.clientStream(['a', 'b', 'c']).outcome;
    expect(result).toMatchObject({ code: grpc.status.OK, trailers: TRAILERS });
    expect(result.replies.map(String)).toEqual(['a+b+c']);
    expect((await calls.next()).requests.map(String)).toEqual(['a', 'b', 'c']);
  });

  it('server streaming: the replies arrive in order, then the trailers', async () => {
    server.script = { replies: 4, trailers: TRAILERS };
    const result = await client.serverStream('tick').outcome;
    expect(result).toMatchObject({ code: grpc.status.OK, trailers: TRAILERS });
    expect(result.replies.map(String)).toEqual(['tick#0', 'tick#1', 'tick#2', 'tick#3']);
  });

  it('server streaming: 2 MiB in 256 KiB replies, far past the HTTP/2 windows, arrives whole', async () => {
    server.script = { replies: 8, replyBytes: 256 * 1024 };
    const result = await client.serverStream('bulk').outcome;
    expect(result.code).toBe(grpc.status.OK);
    expect(result.replies.map((r) => [r.length, r[0], r.at(-1)])).toEqual(Array.from({ length: 8 }, (_, i) => [256 * 1024, i, i]));
  });

  it('bidirectional: each request is echoed while the call is open, then the trailers', async () => {
    server.script = { trailers: TRAILERS };
    const replies: string[] = [];
    const { call, outcome } = client.bidi([], { keepOpen: true, onReply: (r) => replies.push(String(r)) });
    for (const message of ['one', 'two', 'three']) {
      call.write(Buffer.from(message));
      // The echo comes back before the next request is sent: the call is really bidirectional.
      for (let i = 0; i < 200 && replies.at(-1) !== message; i++) await new Promise((r) => setTimeout(r, 10));
      expect(replies.at(-1)).toBe(message);
    }
    call.end();
    expect(await outcome).toMatchObject({ code: grpc.status.OK, trailers: TRAILERS });
  });

  it.each(['unary', 'clientStream', 'serverStream', 'bidi'] as const)('%s: a status with its message and custom trailers reaches the client intact', async (mode) => {
    server.script = { status: { code: grpc.status.FAILED_PRECONDITION, details: 'ledger closed: 100% booked, naïve retry refused' }, trailers: { 'x-retry-after': '30' } };
    const started = mode === 'unary' ? client.unary('x') : mode === 'serverStream' ? client.serverStream('x') : client[mode](['x']);
    const result = await started.outcome;
    expect(result).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: 'ledger closed: 100% booked, naïve retry refused' });
    expect(result.trailers['x-retry-after']).toBe('30');
  });
});

describe('deadlines', () => {
  it('a slow server: the client gets DEADLINE_EXCEEDED within the deadline plus slack, the server saw the deadline and the cancel', async () => {
    server.script = { delayMs: 5000 };
    const calls = nextCalls();
    const result = await client.unary('slow', { deadlineMs: 300 }).outcome;
    expect(result.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(result.elapsedMs).toBeGreaterThanOrEqual(250);
    expect(result.elapsedMs).toBeLessThan(300 + SLACK_MS);
    const seen = await calls.next();
    expect(seen.deadlineLeftMs).toBeGreaterThan(0);
    expect(seen.deadlineLeftMs).toBeLessThanOrEqual(300);
    expect(await seen.ended).toBe('cancelled');
  });

  it('a server stream cut by its deadline keeps the replies that came before it', async () => {
    server.script = { replies: 50, delayMs: 100 };
    const result = await client.serverStream('slow', { deadlineMs: 450 }).outcome;
    expect(result.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(result.replies.length).toBeGreaterThanOrEqual(1);
    expect(result.replies.length).toBeLessThan(50);
  });

  it('the stalling upstream enforces nothing: a grpc-timeout with no client timer is left to whoever is between', async () => {
    const session = http2.connect(`https://localhost:${stalling.port}`, { host: '127.0.0.1', servername: 'localhost', ca: certs.pki.ca.rootPem, cert: certs.frontend.chainPem, key: certs.frontend.keyPem });
    try {
      const started = Date.now();
      const result = await callGrpc(session, ECHO_PATHS.unary, [Buffer.from('x')], { headers: { 'grpc-timeout': '100m' }, timeoutMs: 600 });
      // Nobody answered at 100 ms: our own give-up at 600 ms reset the stream.
      expect(Date.now() - started).toBeGreaterThanOrEqual(550);
      expect(result).toMatchObject({ grpcStatus: undefined, rstCode: http2.constants.NGHTTP2_CANCEL });
      const stalled = stalling.streams.at(-1)!;
      expect(stalled.headers['grpc-timeout']).toBe('100m');
      expect(await stalled.closed).toBe(http2.constants.NGHTTP2_CANCEL);
    } finally {
      session.close();
    }
  });
});

describe('cancellation, both ways', () => {
  it('the client cancels a server stream mid-way: the client sees CANCELLED, the server sees the call cancelled', async () => {
    server.script = { replies: 100, delayMs: 50 };
    const calls = nextCalls();
    const started = client.serverStream('long', { onReply: (_r, i) => i === 1 && started.call.cancel() });
    const result = await started.outcome;
    expect(result.code).toBe(grpc.status.CANCELLED);
    expect(result.replies.length).toBeGreaterThanOrEqual(2);
    expect(result.replies.length).toBeLessThan(100);
    expect(await (await calls.next()).ended).toBe('cancelled');
  });

  it('the client cancels a client stream before half-closing: the server sees the call cancelled', async () => {
    const calls = nextCalls();
    const { call, outcome } = client.clientStream(['first'], { keepOpen: true });
    const seen = await calls.next();
    for (let i = 0; i < 200 && seen.requests.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(seen.requests.map(String)).toEqual(['first']);
    call.cancel();
    expect((await outcome).code).toBe(grpc.status.CANCELLED);
    expect(await seen.ended).toBe('cancelled');
  });

  it('the server resets a server stream (RST_STREAM CANCEL) after one reply: the client keeps that reply and sees CANCELLED', async () => {
    server.script = { replies: 5, resetAfterReplies: 1 };
    const calls = nextCalls();
    const result = await client.serverStream('doomed').outcome;
    // grpc-js words a received RST_STREAM CANCEL 'Call cancelled' (its own cancel: 'Cancelled on client').
    expect(result).toMatchObject({ code: grpc.status.CANCELLED, details: 'Call cancelled' });
    expect(result.replies.map(String)).toEqual(['doomed#0']);
    expect(await (await calls.next()).ended).toBe('reset');
  });

  it('the server resets a bidirectional call with INTERNAL_ERROR after two echoes: the client sees INTERNAL', async () => {
    server.script = { resetAfterReplies: 2, resetCode: http2.constants.NGHTTP2_INTERNAL_ERROR };
    const result = await client.bidi(['a', 'b', 'c']).outcome;
    expect(result.code).toBe(grpc.status.INTERNAL);
    expect(result.details).toMatch(/RST_STREAM with code 2/);
    expect(result.replies.map(String)).toEqual(['a', 'b']);
  });

  it('the server resets a unary call before replying', async () => {
    server.script = { resetAfterReplies: 0 };
    const result = await client.unary('x', { deadlineMs: 5000 }).outcome;
    expect(result).toMatchObject({ code: grpc.status.CANCELLED, replies: [] });
  });
});

describe('mTLS and names', () => {
  it('a client without a certificate is refused at the handshake: UNAVAILABLE, and the server sees no call', async () => {
    const before = server.calls.length;
    const anonymous = grpcClient({ port: server.port, caPem: certs.pki.ca.rootPem });
    try {
      const result = await anonymous.unary('x', { deadlineMs: 5000 }).outcome;
      expect(result.code).toBe(grpc.status.UNAVAILABLE);
      expect(server.calls.length).toBe(before);
    } finally {
      anonymous.close();
    }
  });

  it('the servername override, not the :authority, is what the server certificate is checked against', async () => {
    const calls = nextCalls();
    const rightName = grpcClient({ port: server.port, caPem: certs.pki.ca.rootPem, cert: certs.frontend, servername: 'localhost', authority: 'api.test:443' });
    const wrongName = grpcClient({ port: server.port, caPem: certs.pki.ca.rootPem, cert: certs.frontend, servername: 'elsewhere.test', authority: 'localhost' });
    try {
      expect((await rightName.unary('x', { deadlineMs: 5000 }).outcome).code).toBe(grpc.status.OK);
      expect((await calls.next()).authority).toBe('api.test:443');
      expect((await wrongName.unary('x', { deadlineMs: 5000 }).outcome).code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      rightName.close();
      wrongName.close();
    }
  });

  it('a method the server lacks: UNIMPLEMENTED, trailers-only on the wire', async () => {
    expect((await client.unaryAt('/gatehouse.test.Echo/Missing', Buffer.from('x')).outcome).code).toBe(grpc.status.UNIMPLEMENTED);
    const session = http2.connect(`https://localhost:${server.port}`, { host: '127.0.0.1', servername: 'localhost', ca: certs.pki.ca.rootPem, cert: certs.frontend.chainPem, key: certs.frontend.keyPem });
    try {
      expect(await callGrpc(session, '/gatehouse.test.Echo/Missing', [Buffer.from('x')])).toMatchObject({ httpStatus: 200, trailersOnly: true, grpcStatus: GRPC_STATUS.UNIMPLEMENTED });
    } finally {
      session.close();
    }
  });
});
