// The gateway's own answers to gRPC requests, read by a real gRPC client (@grpc/grpc-js over mTLS):
// HTTP 200 and trailers-only, with the gRPC status a gRPC client acts on and the gateway's reason
// in its details — PERMISSION_DENIED for an identity the route does not allow, UNIMPLEMENTED where
// no route matches, UNAVAILABLE for an upstream that is down, DEADLINE_EXCEEDED when the request's
// grpc-timeout passes (the upstream request cancelled) or the upstream does not answer in time —
// and on the wire: one HEADERS frame ending the stream, or trailers after a response that began.
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Upstream } from '../gateway/config/types.js';
import { startDemoUpstream, type DemoUpstream } from '../gateway/demo/demo-upstream.js';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { allow, gatewayConfig, terminateRoute } from './support/gateway-config.js';
import { h2Connect, offeringH2 } from './support/h2-client.js';
import { FLAG, FRAME, frame, headerBlock, RawH2Connection } from './support/h2-frames.js';
import { metricValue, waitFor } from './support/lifecycle-harness.js';
import { listenerPort, ProxyCerts } from './support/proxy-parties.js';
import { holdRefusedPort, type RefusedPort } from './support/refused-port.js';
import { startScriptedTlsUpstream, type ScriptedTlsUpstream } from './support/scripted-tls-upstream.js';
import { id } from './support/test-pki.js';

let certs: ProxyCerts;
let gateway: RunningGateway;
let port: number;
let echo: DemoUpstream;
let scripted: ScriptedTlsUpstream;
let down: RefusedPort;
let client: grpc.Client;

/** A gRPC message frame (uncompressed, 4-byte length, then the bytes). */
const message = (text: string) => {
  const payload = Buffer.from(text);
  const out = Buffer.alloc(5 + payload.length);
  out.writeUInt32BE(payload.length, 1);
  payload.copy(out, 5);
  return out;
};

beforeAll(async () => {
  certs = await ProxyCerts.issue();
  const { pki, origin } = certs;
  echo = await startDemoUpstream({ certPem: origin.chainPem, keyPem: origin.keyPem, caPem: pki.ca.rootPem });
  scripted = await startScriptedTlsUpstream(origin, pki.ca.rootPem, ({ socket, path }) => {
    // Begins a gRPC response (one message) and then says nothing more.
    if (path.startsWith('/begun.')) {
      const m = message('first');
      socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ntransfer-encoding: chunked\r\n\r\n${m.length.toString(16)}\r\n`);
      socket.write(Buffer.concat([m, Buffer.from('\r\n')]));
    }
    // /slow. and /silent. requests are never answered.
  });
  const frontend = allow(id('frontend'));
  const listener = offeringH2(
    certs.listener([
      terminateRoute('denied', 'echo', allow(id('someone-else')), { match: { pathPrefix: '/denied.' } }),
      terminateRoute('down', 'down', frontend, { match: { pathPrefix: '/down.' } }),
      terminateRoute('slow', 'scripted', frontend, { match: { pathPrefix: '/slow.' } }),
      terminateRoute('begun', 'scripted', frontend, { match: { pathPrefix: '/begun.' } }),
      terminateRoute('silent', 'silent', frontend, { match: { pathPrefix: '/silent.' } }),
    ]),
  );
  // protocol auto: gRPC may go to them (an http1 upstream refuses gRPC: grpc_needs_http2); these
  // HTTP/1.1 servers agree http/1.1, which is what these refusals are about.
  const auto = (upstream: Upstream): Upstream => ({ ...upstream, protocol: 'auto' });
  const silent = auto(certs.upstream('silent', scripted.port));
  gateway = await startGateway(
    gatewayConfig(
      [listener],
      [
        auto(certs.upstream('echo', echo.port)),
        auto(certs.upstream('down', (down = await holdRefusedPort()).port)),
        auto(certs.upstream('scripted', scripted.port)),
        // An upstream that takes too long for the gateway's own headers timeout.
        { ...silent, timeouts: { ...silent.timeouts, headersMs: 400 } },
      ],
    ),
  );
  port = listenerPort(gateway);
  client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(pki.ca.rootPem), Buffer.from(certs.frontend.keyPem), Buffer.from(certs.frontend.chainPem)), {
    'grpc.ssl_target_name_override': 'localhost',
    'grpc.default_authority': 'localhost',
  });
});

afterAll(async () => {
  client?.close();
  await gateway?.close();
  await echo?.close();
  await scripted?.close();
  await down?.close();
  certs?.pki.cleanup();
});

/** A unary call of `method` with an empty message; resolves with the status the client read. */
function unary(method: string, metadata = new grpc.Metadata()): Promise<{ code: number; details: string }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(method, (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), metadata, {}, (err) => resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '' }));
  });
}

describe('gRPC requests the gateway refuses, as a gRPC client reads them', () => {
  it('PERMISSION_DENIED (7) for an identity the route does not allow, the reason in the details', async () => {
    const before = await metricValue('gatehouse_http_refusals_total', { listener: 'public', route: 'denied', reason: 'not_allowed' });
    expect(await unary('/denied.Service/Call')).toEqual({ code: grpc.status.PERMISSION_DENIED, details: 'not_allowed: caller is not allowed on this route' });
    expect(await metricValue('gatehouse_http_refusals_total', { listener: 'public', route: 'denied', reason: 'not_allowed' })).toBe(before + 1);
  });

  it('UNIMPLEMENTED (12) where no route matches', async () => {
    expect(await unary('/nothing.Service/Call')).toEqual({ code: grpc.status.UNIMPLEMENTED, details: 'no_route: no route for localhost/nothing.Service/Call' });
  });

  it('UNAVAILABLE (14) when the upstream is down', async () => {
    const r = await unary('/down.Service/Call');
    expect(r.code).toBe(grpc.status.UNAVAILABLE);
    expect(r.details).toBe("upstream_unavailable: upstream 'down' failed: upstream_unavailable");
  });

  it('DEADLINE_EXCEEDED (4) when the upstream does not answer within its headers timeout', async () => {
    const r = await unary('/silent.Service/Call');
    expect(r.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(r.details).toBe("upstream_headers_timeout: upstream 'silent' failed: upstream_headers_timeout");
  });

  it('DEADLINE_EXCEEDED (4) when the grpc-timeout passes, and the upstream request is cancelled', async () => {
    const before = scripted.requests.length;
    const refusals = await metricValue('gatehouse_http_refusals_total', { listener: 'public', reason: 'grpc_deadline_exceeded' });
    // The timeout as metadata (no client deadline): the answer is the gateway's, not the client's own timer.
    const metadata = new grpc.Metadata();
    metadata.set('grpc-timeout', '300m');
    const started = Date.now();
    const r = await unary('/slow.Service/Call', metadata);
    expect(r).toEqual({ code: grpc.status.DEADLINE_EXCEEDED, details: "grpc_deadline_exceeded: the request's grpc-timeout (300 ms) passed before its response ended" });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    const request = scripted.requests[before]!;
    expect(request.head).toMatch(/^grpc-timeout: 300m$/m);
    // At once, not at the upstream's own 5 s headers timeout.
    await waitFor('the upstream request cancelled', () => request.socket.destroyed || request.socket.readableEnded, 2000);
    expect(await metricValue('gatehouse_http_refusals_total', { listener: 'public', reason: 'grpc_deadline_exceeded' })).toBe(refusals + 1);
  });

  it('DEADLINE_EXCEEDED (4) in the trailers of a response that had begun when the grpc-timeout passed', async () => {
    const metadata = new grpc.Metadata();
    metadata.set('grpc-timeout', '400m');
    const call = client.makeServerStreamRequest('/begun.Service/Watch', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), metadata);
    const messages: string[] = [];
    call.on('data', (m: Buffer) => messages.push(m.toString()));
    call.on('error', () => {});
    const status = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    expect(messages).toEqual(['first']);
    expect(status.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(status.details).toBe("grpc_deadline_exceeded: the request's grpc-timeout (400 ms) passed before its response ended");
  });

  it('refuses a malformed grpc-timeout: INTERNAL (13), reason bad_request', async () => {
    const session = await h2Connect({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend });
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/slow.Service/Call', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '1x' });
      stream.end(message(''));
      const head = await new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once('response', resolve));
      expect(head[':status']).toBe(200);
      expect(head['grpc-status']).toBe('13');
      expect(head['grpc-message']).toBe('bad_request: grpc-timeout must be 1 to 8 digits and a unit (H, M, S, m, u, n)');
    } finally {
      session.close();
    }
  });
});

describe('gRPC refusals on the wire', () => {
  it('are trailers-only: one HEADERS frame with END_STREAM carrying content-type, grpc-status and a percent-encoded grpc-message', async () => {
    const raw = await RawH2Connection.open({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend });
    try {
      const headers = headerBlock([
        [':method', 'POST'],
        [':scheme', 'https'],
        [':path', '/nothing.Service/Call'],
        [':authority', 'localhost'],
        ['content-type', 'application/grpc'],
        ['te', 'trailers'],
      ]);
      await raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, headers));
      await raw.write(frame(FRAME.DATA, FLAG.END_STREAM, 1, message('')));
      await waitFor('the answer', () => raw.frames.some((f) => f.streamId === 1 && (f.flags & FLAG.END_STREAM) !== 0));
      const onStream = raw.frames.filter((f) => f.streamId === 1);
      expect(onStream.map((f) => [f.type, f.flags])).toEqual([[FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM]]);
    } finally {
      raw.close();
    }
    // The same refusal as node:http2 decodes it: a '%' in the message is percent-encoded.
    const session = await h2Connect({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend });
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/nothing.S%C3%A9rvice/100%25', 'content-type': 'application/grpc+proto', te: 'trailers' });
      stream.end(message(''));
      const head = await new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once('response', resolve));
      expect(head).toMatchObject({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12' });
      expect(head['grpc-message']).toBe('no_route: no route for localhost/nothing.S%25C3%25A9rvice/100%2525');
      expect(decodeURIComponent(head['grpc-message'] as string)).toBe('no_route: no route for localhost/nothing.S%C3%A9rvice/100%25');
    } finally {
      session.close();
    }
  });

  it('a gRPC header list over limits.max_header_bytes (before the client acknowledged it) is refused trailers-only too', async () => {
    const raw = await RawH2Connection.open({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend });
    raw.ackSettings = false;
    try {
      const headers = headerBlock([
        [':method', 'POST'],
        [':scheme', 'https'],
        [':path', '/big.Service/Call'],
        [':authority', 'localhost'],
        ['x-filler', 'f'.repeat(20_000)],
        ['content-type', 'application/grpc'],
        ['te', 'trailers'],
      ]);
      // Over two frames: a frame carries at most 16 KiB.
      await raw.write(Buffer.concat([frame(FRAME.HEADERS, FLAG.END_STREAM, 1, headers.subarray(0, 15_000)), frame(FRAME.CONTINUATION, FLAG.END_HEADERS, 1, headers.subarray(15_000))]));
      await waitFor('the answer', () => raw.frames.some((f) => f.streamId === 1 && (f.flags & FLAG.END_STREAM) !== 0));
      // One HEADERS frame ending the stream, no body: a gRPC status, not a JSON 431.
      expect(raw.frames.filter((f) => f.streamId === 1).map((f) => [f.type, f.flags])).toEqual([[FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM]]);
    } finally {
      raw.close();
    }
  });
});
