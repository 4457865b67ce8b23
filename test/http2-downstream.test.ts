// HTTP/2 clients through a terminate listener (ALPN h2), judged over real mTLS on loopback by what
// curl, node:http2 and the upstreams actually see: many streams on one connection, the request
// path's rules per stream (421, 403 beside a stream that is served), an HTTP/2 client translated to
// an HTTP/1.1 upstream (identity headers, XFCC, bodies both ways, backpressure), a client's reset
// cancelling its upstream request, the answers the gateway gives malformed streams itself, and
// drain and idle closes with GOAWAY.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoUpstream, type DemoUpstream } from '../gateway/demo/demo-upstream.js';
import { startGateway, type RunningGateway } from '../gateway/runtime/gateway.js';
import { run } from './support/front-door-harness.js';
import { allow, gatewayConfig, terminateRoute } from './support/gateway-config.js';
import { gatewayPerTest } from './support/gateway-per-test.js';
import { h2Connect, h2Request, offeringH2 } from './support/h2-client.js';
import { ERROR, FLAG, FRAME, frame, getRequest, headerBlock, RawH2Connection } from './support/h2-frames.js';
import { metricValue, waitFor } from './support/lifecycle-harness.js';
import { listenerPort, ProxyCerts } from './support/proxy-parties.js';
import { startScriptedTlsUpstream, type ScriptedTlsUpstream } from './support/scripted-tls-upstream.js';
import { pumpHugeResponse } from './support/huge-response.js';
import { id } from './support/test-pki.js';

const MB = 1024 * 1024;
const PAYLOAD = Buffer.alloc(6 * MB, 'gatehouse http/2 ');
const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

let certs: ProxyCerts;
let gateway: RunningGateway;
let port: number;
let echo: DemoUpstream;
let scripted: ScriptedTlsUpstream;
/** An upstream that echoes request bodies and streams large responses with backpressure. */
let bodies: https.Server;
/** Bytes the `bodies` upstream has handed to its socket for /bodies/huge. */
let hugeWritten = 0;
const uploads: { length: number; sha: string }[] = [];
/** Four 2 MB bodies, each different all through (32-byte blocks: sha256 of "stream:block"). */
const PATTERNS = Array.from({ length: 4 }, (_, n) => Buffer.concat(Array.from({ length: 65536 }, (_, i) => createHash('sha256').update(`${n}:${i}`).digest())));

beforeAll(async () => {
  certs = await ProxyCerts.issue({ serverDnsNames: ['localhost', 'other.test'] });
  const { pki, origin } = certs;
  echo = await startDemoUpstream({ certPem: origin.chainPem, keyPem: origin.keyPem, caPem: pki.ca.rootPem });
  scripted = await startScriptedTlsUpstream(origin, pki.ca.rootPem, ({ socket, path }) => {
    // A response HTTP/2 must not carry as it is: hop-by-hop headers, and HTTP2-Settings.
    if (path === '/hold/hop') socket.write('HTTP/1.1 200 OK\r\nconnection: x-hop\r\nx-hop: 1\r\nkeep-alive: timeout=5\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAAP__\r\nx-end-to-end: kept\r\ncontent-length: 2\r\n\r\nok');
    else if (path === '/hold/cookie') socket.write('HTTP/1.1 204 No Content\r\n\r\n');
    // Every other /hold request is never answered.
  });
  bodies = https.createServer({ cert: origin.chainPem, key: origin.keyPem, ca: pki.ca.rootPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    if (req.url === '/bodies/echo') {
      const hash = createHash('sha256');
      let length = 0;
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      req.on('data', (c: Buffer) => {
        hash.update(c);
        length += c.length;
        if (!res.write(c)) {
          req.pause();
          res.once('drain', () => req.resume());
        }
      });
      req.on('end', () => {
        uploads.push({ length, sha: hash.digest('hex') });
        res.end();
      });
    } else if (req.url?.startsWith('/bodies/pattern/')) {
      const body = PATTERNS[Number(req.url.slice('/bodies/pattern/'.length))]!;
      let offset = 0;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
      const pump = () => {
        while (offset < body.length) {
          const chunk = body.subarray(offset, (offset += 16 * 1024));
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    } else if (req.url === '/bodies/huge') {
      pumpHugeResponse(res, (bytes) => (hugeWritten += bytes));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => bodies.listen(0, '127.0.0.1', resolve));
  const bodiesPort = (bodies.address() as AddressInfo).port;

  const frontend = allow(id('frontend'));
  const base = certs.listener([
    terminateRoute('private', 'echo', allow(id('someone-else')), { match: { pathPrefix: '/private' } }),
    terminateRoute('hold', 'scripted', frontend, { match: { pathPrefix: '/hold' } }),
    terminateRoute('bodies', 'bodies', frontend, { match: { pathPrefix: '/bodies' } }),
    terminateRoute('limited', 'echo', frontend, { match: { pathPrefix: '/limited' }, maxRequestBodyBytes: 1000 }),
    terminateRoute('all', 'echo', frontend),
  ]);
  const listener = offeringH2({ ...base, timeouts: { ...base.timeouts, requestBodyMs: 700 } });
  gateway = await startGateway(
    gatewayConfig([listener], [certs.upstream('echo', echo.port), certs.upstream('scripted', scripted.port), certs.upstream('bodies', bodiesPort)]),
  );
  port = listenerPort(gateway);
});

afterAll(async () => {
  await gateway?.close();
  await echo?.close();
  await scripted?.close();
  bodies?.closeAllConnections();
  await new Promise((resolve) => bodies?.close(resolve));
  certs?.pki.cleanup();
});

const connect = (servername?: string) => h2Connect({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend, servername });
/** The gateway's TLS connections from clients now open. */
const openConnections = () => gateway.listeners.get('public')!.terminate!.connections.size;

describe('HTTP/2 clients through a terminate listener', () => {
  it('serves curl --http2 with a client certificate over HTTP/2, the verified identity forwarded', async () => {
    const r = await run('curl', ['-sS', '--http2', '--cacert', certs.pki.caFile, '--cert', certs.frontend.certFile, '--key', certs.frontend.keyFile, '-w', '\n%{http_version}', `https://localhost:${port}/curl`], { timeoutMs: 10_000 });
    expect(r.stderr).toBe('');
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines.at(-1)).toBe('2');
    const seen = JSON.parse(lines.slice(0, -1).join('\n'));
    expect(seen.path).toBe('/curl');
    expect(seen.headers.host).toBe(`localhost:${port}`);
    expect(seen.headers['x-forwarded-client-cert']).toContain(`URI=${id('frontend')}`);
  });

  it('answers expect: 100-continue with a 100 once the body is read (curl --http2 would wait 5 s for it)', async () => {
    const file = `${certs.pki.dir}/upload.bin`;
    fs.writeFileSync(file, PAYLOAD.subarray(0, MB));
    const started = Date.now();
    const r = await run(
      'curl',
      ['-sS', '--http2', '--cacert', certs.pki.caFile, '--cert', certs.frontend.certFile, '--key', certs.frontend.keyFile, '-H', 'Expect: 100-continue', '--expect100-timeout', '5', '--data-binary', `@${file}`, '-o', '/dev/null', '-w', '%{http_version} %{http_code} %{size_upload}', `https://localhost:${port}/bodies/echo`],
      { timeoutMs: 15_000 },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`2 200 ${MB}`);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(uploads.at(-1)).toEqual({ length: MB, sha: sha(PAYLOAD.subarray(0, MB)) });
  });

  it('carries 300 concurrent streams on one connection, at most 100 open at once (SETTINGS_MAX_CONCURRENT_STREAMS)', async () => {
    const session = await connect();
    try {
      expect(session.remoteSettings.maxConcurrentStreams).toBe(100);
      const responses = await Promise.all(Array.from({ length: 300 }, (_, i) => h2Request(session, { ':path': `/many/${i}` })));
      expect(responses.map((r) => r.status)).toEqual(Array(300).fill(200));
      expect(responses.map((r) => r.json().path)).toEqual(Array.from({ length: 300 }, (_, i) => `/many/${i}`));
      expect(openConnections()).toBe(1);
    } finally {
      session.close();
    }
  });

  it('refuses per stream (421 for an :authority other than the SNI, 403 for a caller the route does not allow) while the streams beside them are served', async () => {
    const before = {
      mismatch: await metricValue('gatehouse_http_refusals_total', { listener: 'public', reason: 'sni_host_mismatch' }),
      denied: await metricValue('gatehouse_http_refusals_total', { listener: 'public', route: 'private', reason: 'not_allowed' }),
    };
    const session = await connect();
    try {
      const [ok, misdirected, denied] = await Promise.all([
        h2Request(session, { ':path': '/served' }),
        h2Request(session, { ':path': '/served', ':authority': 'other.test' }),
        h2Request(session, { ':path': '/private/x' }),
      ]);
      expect(ok.status).toBe(200);
      expect(misdirected.status).toBe(421);
      expect(misdirected.json()).toMatchObject({ reason: 'sni_host_mismatch' });
      expect(denied.status).toBe(403);
      expect(denied.json()).toMatchObject({ reason: 'not_allowed', identity: id('frontend') });
      // The connection goes on serving.
      expect((await h2Request(session, { ':path': '/after' })).status).toBe(200);
      expect(await metricValue('gatehouse_http_refusals_total', { listener: 'public', reason: 'sni_host_mismatch' })).toBe(before.mismatch + 1);
      expect(await metricValue('gatehouse_http_refusals_total', { listener: 'public', route: 'private', reason: 'not_allowed' })).toBe(before.denied + 1);
    } finally {
      session.close();
    }
  });

  it('translates to an HTTP/1.1 upstream: :authority as Host, XFCC set, identity headers the client sent removed', async () => {
    const session = await connect();
    try {
      const r = await h2Request(session, {
        ':path': '/translate?q=1',
        'x-forwarded-client-cert': 'By=spiffe://evil/x;URI=spiffe://evil/caller',
        'x-ssl-client-cert': 'forged',
        'client-cert': ':Zm9yZ2Vk:',
        'x-custom': 'kept',
      });
      expect(r.status).toBe(200);
      const seen = r.json();
      expect(seen.method).toBe('GET');
      expect(seen.path).toBe('/translate?q=1');
      expect(seen.headers.host).toBe(`localhost:${port}`);
      expect(seen.headers['x-custom']).toBe('kept');
      expect(seen.headers['x-forwarded-client-cert']).toMatch(new RegExp(`^By=${id('gateway')};Hash=[0-9a-f]{64};Subject="CN=frontend";URI=${id('frontend')}$`));
      expect(seen.headers['x-ssl-client-cert']).toBeUndefined();
      expect(seen.headers['client-cert']).toBeUndefined();
      expect(seen.headers['x-forwarded-proto']).toBe('https');
    } finally {
      session.close();
    }
  });

  it('joins the cookie fields of an HTTP/2 request into one Cookie header for an HTTP/1.1 upstream', async () => {
    const raw = await RawH2Connection.open({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend });
    try {
      const before = scripted.requests.length;
      const cookies = headerBlock([
        ['cookie', 'a=1'],
        ['x-between', 'y'],
        ['cookie', 'b=2'],
      ]);
      await raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, Buffer.concat([getRequest('/hold/cookie'), cookies])));
      const request = await waitFor('the request at the upstream', () => scripted.requests[before]);
      expect(request.head.split('\r\n').filter((line) => /^cookie:/i.test(line))).toEqual(['cookie: a=1; b=2']);
    } finally {
      raw.close();
    }
  });

  it('drops a Host header equal to :authority, and refuses one that differs (400 bad_host: two hosts)', async () => {
    const session = await connect();
    try {
      // (node:http2 sends no :authority when given a host header: both are set here.)
      const same = await h2Request(session, { ':path': '/host', ':authority': `localhost:${port}`, host: `localhost:${port}` });
      expect(same.status).toBe(200);
      expect(echo.received.at(-1)!.headers.host).toBe(`localhost:${port}`);
      const differing = await h2Request(session, { ':path': '/host', ':authority': `localhost:${port}`, host: 'other.test' });
      expect(differing.status).toBe(400);
      expect(differing.json()).toMatchObject({ reason: 'bad_host', rule: 'duplicate' });
    } finally {
      session.close();
    }
  });

  it('streams a 6 MB body both ways intact (HTTP/2 client, HTTP/1.1 upstream)', async () => {
    const session = await connect();
    try {
      const r = await h2Request(session, { ':method': 'POST', ':path': '/bodies/echo', 'content-type': 'application/octet-stream' }, PAYLOAD, 20_000);
      expect(r.status).toBe(200);
      expect(r.body.length).toBe(PAYLOAD.length);
      expect(sha(r.body)).toBe(sha(PAYLOAD));
      expect(uploads.at(-1)).toEqual({ length: PAYLOAD.length, sha: sha(PAYLOAD) });
    } finally {
      session.close();
    }
  });

  it('delivers four slowly read downloads intact, each from its own upstream connection at once', async () => {
    const session = await connect();
    try {
      const downloads = PATTERNS.map(
        (_, n) =>
          new Promise<Buffer>((resolve, reject) => {
            const stream = session.request({ ':path': `/bodies/pattern/${n}` }, { endStream: true });
            const chunks: Buffer[] = [];
            let sincePause = 0;
            stream.on('data', (c: Buffer) => {
              chunks.push(c);
              // Pause now and then: the gateway holds chunks while the client's window is shut.
              if ((sincePause += c.length) >= 128 * 1024) {
                sincePause = 0;
                stream.pause();
                setTimeout(() => stream.resume(), 15);
              }
            });
            stream.on('end', () => resolve(Buffer.concat(chunks)));
            stream.on('error', reject);
          }),
      );
      const bodies = await Promise.all(downloads);
      bodies.forEach((body, n) => {
        expect(body.length).toBe(PATTERNS[n]!.length);
        expect(sha(body)).toBe(sha(PATTERNS[n]!));
      });
    } finally {
      session.close();
    }
  });

  it('holds back a slow reader: the upstream is paused instead of the gateway buffering the response', async () => {
    const session = await connect();
    try {
      hugeWritten = 0;
      const stream = session.request({ ':path': '/bodies/huge' }, { endStream: true });
      stream.on('error', () => {});
      const status = new Promise<unknown>((resolve) => stream.once('response', (h) => resolve(h[':status'])));
      // Read one chunk, then stop: the client's flow-control window closes.
      await new Promise<void>((resolve) => stream.once('data', () => resolve()));
      expect(await status).toBe(200);
      stream.pause();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const written = hugeWritten;
      await new Promise((resolve) => setTimeout(resolve, 500));
      // Kernel buffers on loopback hold a few MB; the rest of the 64 MB must still be at the upstream.
      expect(written).toBeLessThan(24 * MB);
      expect(hugeWritten - written).toBeLessThan(MB); // and it is not moving
      stream.close(http2.constants.NGHTTP2_CANCEL);
    } finally {
      session.close();
    }
  });

  it('cancels the upstream request when the client resets its stream', async () => {
    const session = await connect();
    try {
      const before = scripted.requests.length;
      const stream = session.request({ ':path': '/hold/cancel-me' });
      stream.on('error', () => {});
      const request = await waitFor('the request at the upstream', () => scripted.requests[before]);
      expect(request.path).toBe('/hold/cancel-me');
      stream.close(http2.constants.NGHTTP2_CANCEL);
      // The upstream connection is closed under the request at once (well before the upstream's
      // own 5 s headers timeout would end it): nothing waits for its answer.
      await waitFor('the upstream request cancelled', () => request.socket.destroyed || request.socket.readableEnded, 2000);
      // The client's connection is untouched.
      expect((await h2Request(session, { ':path': '/after-cancel' })).status).toBe(200);
    } finally {
      session.close();
    }
  });

  it('never sends hop-by-hop or connection-specific response headers to an HTTP/2 client', async () => {
    const session = await connect();
    try {
      const r = await h2Request(session, { ':path': '/hold/hop' });
      expect(r.status).toBe(200);
      expect(r.text()).toBe('ok');
      expect(r.headers['x-end-to-end']).toBe('kept');
      for (const name of ['connection', 'keep-alive', 'upgrade', 'http2-settings', 'x-hop', 'transfer-encoding']) expect(r.headers[name]).toBeUndefined();
    } finally {
      session.close();
    }
  });

  it('answers HEAD with the head alone', async () => {
    const session = await connect();
    try {
      const r = await h2Request(session, { ':method': 'HEAD', ':path': '/head' });
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.body.length).toBe(0);
      expect(r.rstCode).toBe(0);
    } finally {
      session.close();
    }
  });
});

describe('HTTP/2 requests the gateway answers itself', () => {
  it('refuses :scheme http on TLS (400), CONNECT (405), and counts both', async () => {
    const before = await metricValue('gatehouse_http_refusals_total', { listener: 'public', route: '-', reason: 'bad_request' });
    const beforeConnect = await metricValue('gatehouse_http_refusals_total', { listener: 'public', route: '-', reason: 'method_not_allowed' });
    const session = await connect();
    try {
      const scheme = await h2Request(session, { ':path': '/x', ':scheme': 'http' });
      expect(scheme.status).toBe(400);
      expect(scheme.json()).toMatchObject({ reason: 'bad_request', rule: 'scheme' });
      const tunnel = await h2Request(session, { ':method': 'CONNECT', ':path': undefined, ':authority': 'localhost:443' });
      expect(tunnel.status).toBe(405);
      expect(tunnel.json()).toMatchObject({ reason: 'method_not_allowed', rule: 'connect' });
      expect(await metricValue('gatehouse_http_refusals_total', { listener: 'public', route: '-', reason: 'bad_request' })).toBe(before + 1);
      expect(await metricValue('gatehouse_http_refusals_total', { listener: 'public', route: '-', reason: 'method_not_allowed' })).toBe(beforeConnect + 1);
    } finally {
      session.close();
    }
  });

  it('leaves malformed streams to nghttp2 (no :path: RST_STREAM PROTOCOL_ERROR) and the connection goes on', async () => {
    const raw = await RawH2Connection.open({ port, ca: certs.pki.ca.rootPem, cert: certs.frontend });
    try {
      await raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, headerBlock([[':method', 'GET'], [':scheme', 'https'], [':authority', 'localhost']])));
      await raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 3, getRequest('/fine')));
      await waitFor('answers on both streams', () => raw.resets().size >= 1 && raw.frames.some((f) => f.type === FRAME.HEADERS && f.streamId === 3));
      expect(raw.resets().get(1)).toBe(ERROR.PROTOCOL_ERROR);
      expect(raw.resets().has(3)).toBe(false);
      expect(raw.goaway).toBeUndefined();
    } finally {
      raw.close();
    }
  });

  it('answers a body over the route limit 413 (announced, or counted as it streams) and the connection goes on', async () => {
    const session = await connect();
    try {
      const announced = await h2Request(session, { ':method': 'POST', ':path': '/limited', 'content-length': '5000' }, Buffer.alloc(5000, 'a'));
      expect(announced.status).toBe(413);
      expect(announced.json()).toMatchObject({ reason: 'request_body_too_large' });
      // Without a length: the body is counted as it streams.
      const stream = session.request({ ':method': 'POST', ':path': '/limited' });
      stream.on('error', () => {});
      const status = new Promise<number>((resolve) => stream.once('response', (h) => resolve(Number(h[':status']))));
      for (let i = 0; i < 10; i++) stream.write(Buffer.alloc(500, 'b'));
      expect(await status).toBe(413);
      stream.close();
      expect((await h2Request(session, { ':path': '/after-413' })).status).toBe(200);
    } finally {
      session.close();
    }
  });

  it('answers 408 when the client goes silent mid-body while the upstream waits (timeouts.request_body)', async () => {
    const session = await connect();
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/slow-body', 'content-length': '100' });
      stream.on('error', () => {});
      const response = new Promise<number>((resolve) => stream.once('response', (h) => resolve(Number(h[':status']))));
      stream.write('only part of it');
      const started = Date.now();
      expect(await response).toBe(408);
      expect(Date.now() - started).toBeGreaterThanOrEqual(500);
      stream.close();
      expect((await h2Request(session, { ':path': '/after-408' })).status).toBe(200);
    } finally {
      session.close();
    }
  });
});

describe('closing HTTP/2 connections', () => {
  it('drain(): GOAWAY, the stream in flight is answered, no new stream is taken, then the connection closes', async () => {
    const session = await connect();
    const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)));
    const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
    const before = scripted.requests.length;
    const inFlight = h2Request(session, { ':path': '/hold/drain' });
    const request = await waitFor('the request at the upstream', () => scripted.requests[before]);
    const served = [...gateway.listeners.get('public')!.terminate!.served];
    const mine = served.find((s) => (s.socket as TLSSocket).remotePort === (session.socket as TLSSocket).localPort)!;
    expect(mine).toBeDefined();
    mine.drain();
    expect(await goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
    request.socket.write('HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\ndrained');
    const answered = await inFlight;
    expect(answered.status).toBe(200);
    expect(answered.text()).toBe('drained');
    await closed;
  });
});

describe('idle HTTP/2 connections, and listeners behind the front door', () => {
  const startGatewayForTest = gatewayPerTest();

  it('serves HTTP/2 on a PERMISSIVE listener (TLS through the front door), and plaintext there stays HTTP/1.1', async () => {
    const base = certs.listener([terminateRoute('all', 'echo', { ...allow(id('frontend')), allowPlaintext: true })]);
    const permissivePort = await startGatewayForTest(gatewayConfig([offeringH2({ ...base, mode: 'PERMISSIVE' })], [certs.upstream('echo', echo.port)]));
    const curl = (url: string, ...extra: string[]) =>
      run('curl', ['-sS', ...extra, '--cacert', certs.pki.caFile, '--cert', certs.frontend.certFile, '--key', certs.frontend.keyFile, '-o', '/dev/null', '-w', '%{http_version} %{http_code}', url], { timeoutMs: 10_000 });
    expect((await curl(`https://localhost:${permissivePort}/tls`, '--http2')).stdout).toBe('2 200');
    // curl asks a plaintext server to upgrade to h2c; the gateway answers in HTTP/1.1.
    expect((await curl(`http://localhost:${permissivePort}/plain`, '--http2')).stdout).toBe('1.1 200');
  });

  it('are closed with GOAWAY after timeouts.idle without streams', async () => {
    const base = certs.listener([terminateRoute('all', 'echo', allow(id('frontend')))]);
    const idlePort = await startGatewayForTest(
      gatewayConfig([offeringH2({ ...base, timeouts: { ...base.timeouts, idleMs: 600, requestHeadersMs: 600 } })], [certs.upstream('echo', echo.port)]),
    );
    const session = await h2Connect({ port: idlePort, ca: certs.pki.ca.rootPem, cert: certs.frontend });
    const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)));
    const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
    expect((await h2Request(session, { ':path': '/once' })).status).toBe(200);
    const answered = Date.now();
    expect(await goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
    expect(Date.now() - answered).toBeGreaterThanOrEqual(500);
    await closed;
  });
});
