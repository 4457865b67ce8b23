// The gRPC harness itself, client straight to server with no gateway between: what the
// through-the-gateway tests rely on (grpc-call-scenarios.ts: four streaming modes, trailers,
// statuses, deadlines, cancellation both ways, the records the server keeps) must hold here
// first, with real mTLS; and the harness's own pieces (the stalling upstream, mTLS, names).
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { callGrpc } from '../gateway/demo/grpc-call.js';
import { GRPC_STATUS } from '../gateway/demo/grpc-wire.js';
import { grpcCallScenarios, nextCalls } from './support/grpc-call-scenarios.js';
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

grpcCallScenarios(() => ({ client, server, serverSeesPeer: id('frontend') }), { slackMs: SLACK_MS, resets: 'exact' });

describe('the stalling upstream', () => {
  it('enforces nothing: a grpc-timeout with no client timer is left to whoever is between', async () => {
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
    const calls = nextCalls(server);
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
