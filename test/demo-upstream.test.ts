// The demo upstream as a user meets it (directly, without the gateway): it requires mTLS, speaks
// HTTP/1.1 or HTTP/2 as the client picks by ALPN and answers JSON of the request; over HTTP/2 it
// is a gRPC server with the standard health service (Check SERVING, Watch, UNIMPLEMENTED for
// anything else, trailers-only as gRPC servers answer). Judged by real clients: curl, @grpc/grpc-js,
// node:http2, and the `gatehouse grpc-health` command. Also the hand-written wire format, unit by unit.
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoUpstream, type DemoUpstream } from '../gateway/demo/demo-upstream.js';
import { callGrpc } from '../gateway/demo/grpc-call.js';
import { decodeGrpcMessageText, encodeGrpcMessage, encodeGrpcMessageText, GRPC_STATUS, GrpcFramingError, GrpcMessageReader, isGrpcContentType } from '../gateway/demo/grpc-wire.js';
import { decodeHealthCheckRequest, decodeHealthCheckResponse, encodeHealthCheckRequest, encodeHealthCheckResponse, HEALTH_CHECK_PATH, HEALTH_WATCH_PATH, SERVING_STATUS } from '../gateway/demo/health-messages.js';
import { CLI, runCommand } from './support/gatehouse-cli.js';
import { grpcClient, type TestGrpcClient } from './support/grpc-peers.js';
import { request } from './support/mtls-client.js';
import { ProxyCerts } from './support/proxy-parties.js';
import { id } from './support/test-pki.js';

let certs: ProxyCerts;
let demo: DemoUpstream;
let client: TestGrpcClient;
let session: http2.ClientHttp2Session;

/** An HTTP/2 session to the demo upstream with the `frontend` certificate, once connected. */
async function h2Session(): Promise<http2.ClientHttp2Session> {
  const s = http2.connect(`https://localhost:${demo.port}`, { host: '127.0.0.1', servername: 'localhost', ca: certs.pki.ca.rootPem, cert: certs.frontend.chainPem, key: certs.frontend.keyPem });
  await new Promise((resolve, reject) => s.once('connect', resolve).once('error', reject));
  return s;
}

beforeAll(async () => {
  certs = await ProxyCerts.issue({ origin: 'echo' });
  demo = await startDemoUpstream({ certPem: certs.origin.chainPem, keyPem: certs.origin.keyPem, caPem: certs.pki.ca.rootPem });
  client = grpcClient({ port: demo.port, caPem: certs.pki.ca.rootPem, cert: certs.frontend });
  session = await h2Session();
});

afterAll(async () => {
  client?.close();
  session?.close();
  await demo?.close();
  certs?.pki.cleanup();
});

const run = (command: string, args: string[]) => runCommand([command, ...args]);

const curlTls = () => ['--cacert', certs.pki.caFile, '--cert', certs.frontend.certFile, '--key', certs.frontend.keyFile];

describe('the demo upstream speaks HTTP/1.1 and HTTP/2, chosen by ALPN, and requires mTLS', () => {
  it('answers an HTTP/1.1 client with JSON of its request and the identity of its certificate', async () => {
    const res = await request({ port: demo.port, ca: certs.pki.ca.rootPem, cert: certs.frontend, path: '/one?x=1' });
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ method: 'GET', path: '/one?x=1', httpVersion: '1.1', peer: id('frontend') });
    expect(demo.received.at(-1)).toMatchObject({ httpVersion: '1.1', peer: id('frontend') });
  });

  it('answers curl --http2 with a client certificate over HTTP/2, pseudo-headers shown', async () => {
    const result = await run('curl', ['-sS', '--http2', ...curlTls(), '--resolve', `localhost:${demo.port}:127.0.0.1`, '-w', '\n%{http_version}', `https://localhost:${demo.port}/two`]);
    expect(result.stderr).toBe('');
    const [json, version] = [result.stdout.slice(0, result.stdout.lastIndexOf('\n')), result.stdout.slice(result.stdout.lastIndexOf('\n') + 1)];
    expect(version).toBe('2');
    const seen = JSON.parse(json);
    expect(seen).toMatchObject({ method: 'GET', path: '/two', httpVersion: '2.0', peer: id('frontend') });
    expect(seen.headers[':authority']).toBe(`localhost:${demo.port}`);
  });

  it('refuses an HTTP/2 client without a certificate during the handshake', async () => {
    const before = demo.received.length;
    const result = await run('curl', ['-sS', '--http2', '--cacert', certs.pki.caFile, '--resolve', `localhost:${demo.port}:127.0.0.1`, `https://localhost:${demo.port}/`]);
    // curl's words vary with the moment the alert arrives (certificate required, getpeername failed).
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(demo.received.length).toBe(before);
  });

  it('drops every open connection on closeAllConnections, HTTP/2 sessions included, and keeps listening', async () => {
    const accepted = demo.connections.total;
    const h2 = await h2Session();
    h2.on('error', () => {});
    const closed = new Promise((resolve) => h2.once('close', resolve));
    // The client's handshake completes first (TLS 1.3): wait for the server to count the connection.
    for (let i = 0; i < 100 && demo.connections.total === accepted; i++) await new Promise((r) => setTimeout(r, 10));
    demo.closeAllConnections();
    await closed;
    expect((await request({ port: demo.port, ca: certs.pki.ca.rootPem, cert: certs.frontend })).status).toBe(200);
    session = await h2Session(); // the shared one was dropped too
  });
});

describe('the demo upstream serves the standard gRPC health service', () => {
  it('answers Check with SERVING (HealthCheckResponse bytes 08 01) and status OK, to a grpc-js client', async () => {
    const { outcome } = client.unaryAt(HEALTH_CHECK_PATH, encodeHealthCheckRequest(''));
    const result = await outcome;
    expect(result.code).toBe(grpc.status.OK);
    expect(result.replies.map((r) => r.toString('hex'))).toEqual(['0801']);
    expect(demo.received.at(-1)).toMatchObject({ method: 'POST', path: HEALTH_CHECK_PATH, httpVersion: '2.0', peer: id('frontend') });
  });

  it('answers Check for a service it does not know with NOT_FOUND, as the health protocol says', async () => {
    const result = await client.unaryAt(HEALTH_CHECK_PATH, encodeHealthCheckRequest('payments.v1.Ledger')).outcome;
    expect(result.code).toBe(grpc.status.NOT_FOUND);
    expect(result.details).toBe("unknown service 'payments.v1.Ledger'");
  });

  it('answers any other method UNIMPLEMENTED, trailers-only: HTTP 200 and one HEADERS frame that ends the stream', async () => {
    expect((await client.unaryAt('/grpc.health.v1.Health/List', encodeHealthCheckRequest('')).outcome).code).toBe(grpc.status.UNIMPLEMENTED);
    const wire = await callGrpc(session, '/payments.v1.Ledger/Get', [Buffer.from('x')]);
    expect(wire).toMatchObject({ httpStatus: 200, trailersOnly: true, grpcStatus: GRPC_STATUS.UNIMPLEMENTED, messages: [], rstCode: undefined });
    expect(wire.grpcMessage).toMatch(/^unknown method \/payments\.v1\.Ledger\/Get/);
    expect(wire.headers['content-type']).toBe('application/grpc');
  });

  it('answers Check with one message and the status in trailers (not trailers-only)', async () => {
    const wire = await callGrpc(session, HEALTH_CHECK_PATH, [encodeHealthCheckRequest('')]);
    expect(wire).toMatchObject({ httpStatus: 200, trailersOnly: false, grpcStatus: GRPC_STATUS.OK, rstCode: undefined });
    expect(wire.messages.map((m) => m.toString('hex'))).toEqual(['0801']);
    expect(wire.trailers['grpc-status']).toBe('0');
  });

  it('keeps a Watch open after its first message (SERVING) until the client cancels it', async () => {
    const wire = await callGrpc(session, HEALTH_WATCH_PATH, [encodeHealthCheckRequest('')], { timeoutMs: 400 });
    expect(wire.messages.map((m) => decodeHealthCheckResponse(m))).toEqual([{ status: SERVING_STATUS.SERVING }]);
    expect(wire.grpcStatus).toBeUndefined();
    expect(wire.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
  });

  it('answers a request that is not a HealthCheckRequest INTERNAL, and a compressed one UNIMPLEMENTED', async () => {
    const truncated = await callGrpc(session, HEALTH_CHECK_PATH, [Buffer.from([0x0a, 0x05, 0x61])]);
    expect(truncated).toMatchObject({ grpcStatus: GRPC_STATUS.INTERNAL, grpcMessage: 'the request is not a HealthCheckRequest' });
    const two = await callGrpc(session, HEALTH_CHECK_PATH, [Buffer.alloc(0), Buffer.alloc(0)]);
    expect(two.grpcStatus).toBe(GRPC_STATUS.INTERNAL);
    // Flag 1: compressed, which nobody was offered (no grpc-accept-encoding).
    const compressed = session.request({ ':method': 'POST', ':path': HEALTH_CHECK_PATH, 'content-type': 'application/grpc' });
    compressed.end(Buffer.from([1, 0, 0, 0, 0]));
    const headers = await new Promise<http2.IncomingHttpHeaders>((resolve) => compressed.once('response', resolve));
    compressed.resume();
    expect(headers['grpc-status']).toBe(String(GRPC_STATUS.UNIMPLEMENTED));
  });
});

describe('gatehouse grpc-health (the health check a user runs, no gRPC client to install)', () => {
  const tlsArgs = () => ['--cacert', certs.pki.caFile, '--cert', certs.frontend.certFile, '--key', certs.frontend.keyFile, '--servername', 'localhost'];

  it('prints SERVING and exits 0 against the demo upstream', async () => {
    const result = await run(process.execPath, [CLI, 'grpc-health', '--address', `127.0.0.1:${demo.port}`, ...tlsArgs()]);
    expect(result).toMatchObject({ code: 0, stdout: 'SERVING\n', stderr: '' });
  });

  it('prints the gRPC status of a method the server lacks and exits 1', async () => {
    const result = await run(process.execPath, [CLI, 'grpc-health', '--address', `127.0.0.1:${demo.port}`, '--method', '/grpc.health.v1.Health/List', ...tlsArgs()]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^grpc-status 12 UNIMPLEMENTED: unknown method \/grpc\.health\.v1\.Health\/List/);
  });

  it('says so when the server does not offer HTTP/2 (ALPN http/1.1 only), exit 1', async () => {
    const h1 = https.createServer({ cert: certs.origin.chainPem, key: certs.origin.keyPem, ALPNProtocols: ['http/1.1'] }, (_req, res) => res.end());
    await new Promise<void>((resolve) => h1.listen(0, '127.0.0.1', resolve));
    try {
      const result = await run(process.execPath, [CLI, 'grpc-health', '--address', `127.0.0.1:${(h1.address() as AddressInfo).port}`, ...tlsArgs()]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/the server does not offer HTTP\/2: no ALPN h2/);
    } finally {
      h1.close();
    }
  });

  it('refuses bad usage with exit 2 and the reason', async () => {
    const result = await run(process.execPath, [CLI, 'grpc-health', '--address', 'localhost']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--address: 'localhost' has no port/);
  });
});

describe('the gRPC wire format, by hand', () => {
  it('frames a message as flag 0, a big-endian length and the bytes', () => {
    expect(encodeGrpcMessage(Buffer.from([0x08, 0x01])).toString('hex')).toBe('00000000020801');
  });

  it('reads the same messages however the bytes are split into chunks', () => {
    const wire = Buffer.concat([encodeGrpcMessage(Buffer.from('first')), encodeGrpcMessage(Buffer.alloc(0)), encodeGrpcMessage(Buffer.from('third'))]);
    for (let cut = 0; cut <= wire.length; cut++) {
      for (const size of [1, 2, 7]) {
        const reader = new GrpcMessageReader(100);
        const chunks = [wire.subarray(0, cut), ...Array.from({ length: Math.ceil((wire.length - cut) / size) }, (_, i) => wire.subarray(cut + i * size, cut + (i + 1) * size))];
        const messages = chunks.flatMap((c) => reader.push(c)).map(String);
        expect(messages, `cut at ${cut}, chunks of ${size}`).toEqual(['first', '', 'third']);
        expect(reader.truncated).toBe(false);
      }
    }
    const partial = new GrpcMessageReader(100);
    expect(partial.push(wire.subarray(0, 7))).toEqual([]);
    expect(partial.truncated).toBe(true);
  });

  it('refuses a compressed message (UNIMPLEMENTED) and one over the size limit (RESOURCE_EXHAUSTED)', () => {
    const refusal = (bytes: Buffer) => {
      try {
        new GrpcMessageReader(4).push(bytes);
      } catch (err) {
        return err instanceof GrpcFramingError ? err.status : -1;
      }
      return undefined;
    };
    expect(refusal(Buffer.from([1, 0, 0, 0, 1, 0]))).toBe(GRPC_STATUS.UNIMPLEMENTED);
    expect(refusal(Buffer.from([0, 0, 0, 0, 5]))).toBe(GRPC_STATUS.RESOURCE_EXHAUSTED);
    expect(refusal(Buffer.from([0, 0, 0, 0, 4, 1, 2, 3, 4]))).toBeUndefined();
  });

  it('encodes the health messages as protobuf does, defaults left out', () => {
    expect(encodeHealthCheckResponse(SERVING_STATUS.SERVING).toString('hex')).toBe('0801');
    expect(encodeHealthCheckResponse(SERVING_STATUS.UNKNOWN).toString('hex')).toBe('');
    expect(encodeHealthCheckRequest('svc').toString('hex')).toBe('0a03737663');
    expect(encodeHealthCheckRequest('').length).toBe(0);
    expect(encodeHealthCheckRequest('é'.repeat(100)).subarray(0, 3).toString('hex')).toBe('0ac801'); // a two-byte varint length
  });

  it('decodes them skipping unknown fields of every wire type, and refuses what does not parse', () => {
    const unknownFields = Buffer.from('10ff01' + '190102030405060708' + '2a027878' + '2d01020304', 'hex'); // 2: varint, 3: fixed64, 5: bytes, 5: fixed32
    expect(decodeHealthCheckRequest(Buffer.concat([unknownFields, Buffer.from('0a03737663', 'hex')]))).toEqual({ service: 'svc' });
    expect(decodeHealthCheckResponse(Buffer.concat([Buffer.from('0802', 'hex'), unknownFields]))).toEqual({ status: SERVING_STATUS.NOT_SERVING });
    expect(decodeHealthCheckRequest(Buffer.alloc(0))).toEqual({ service: '' });
    expect(decodeHealthCheckResponse(Buffer.from('0896', 'hex'))).toBeUndefined(); // varint cut short
    expect(decodeHealthCheckRequest(Buffer.from('0a0561', 'hex'))).toBeUndefined(); // length past the end
    expect(decodeHealthCheckRequest(Buffer.from('0801', 'hex'))).toBeUndefined(); // field 1 as a varint, not a string
    expect(decodeHealthCheckResponse(Buffer.from('1b', 'hex'))).toBeUndefined(); // a group (wire type 3)
  });

  it('percent-encodes grpc-message (UTF-8, non-printables and %) and decodes it back', () => {
    expect(encodeGrpcMessageText('denied: 100% sure\nnaïve')).toBe('denied: 100%25 sure%0Ana%C3%AFve');
    expect(decodeGrpcMessageText('denied: 100%25 sure%0Ana%C3%AFve')).toBe('denied: 100% sure\nnaïve');
    expect(decodeGrpcMessageText('50% off %zz')).toBe('50% off %zz');
  });

  it('knows gRPC content types from their look-alikes', () => {
    for (const yes of ['application/grpc', 'application/grpc+proto', 'application/grpc;charset=utf-8']) expect(isGrpcContentType(yes), yes).toBe(true);
    for (const no of [undefined, 'application/grpc-web', 'application/grpcx', 'application/json', 'text/plain']) expect(isGrpcContentType(no), String(no)).toBe(false);
  });
});
