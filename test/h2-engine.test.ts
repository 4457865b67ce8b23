// The native HTTP/2 engine (gateway/http2/native/h2-engine.c) serving a client's TLS connection
// through NativeH2ServerSession, judged by real peers over mTLS on loopback: curl --http2, and
// node:http2 with many concurrent streams on one connection, request bodies across many DATA
// frames, responses larger than a frame and than the client's initial window, a header block
// over the limit or split over reads, and GOAWAY closing the connection once its streams are done.
import { createHash } from 'node:crypto';
import type { ClientHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { h2Engine } from '../gateway/http2/native/h2-engine.js';
import { NativeH2ServerSession } from '../bench/h2-engine-server.js';
import { run } from './support/front-door-harness.js';
import { h2Connect, h2Request } from './support/h2-client.js';
import { FLAG, FRAME, frame, getRequest, headerBlock, RawH2Connection } from './support/h2-frames.js';
import { waitFor } from './support/lifecycle-harness.js';
import { id, TestPki, type WrittenCert } from './support/test-pki.js';

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
/** Larger than a DATA frame (16 KiB) and the client's initial stream window (64 KiB). */
const LARGE = Buffer.alloc(200 * 1024, 'native h2 ');
const MAX_HEADER_LIST_BYTES = 8 * 1024;

let pki: TestPki;
let client: WrittenCert;
let server: tls.Server;
let port: number;
const sessions: NativeH2ServerSession[] = [];

/** Answers from the request alone: method and path in the body, or a POST's body length and sha256. */
function answer(session: NativeH2ServerSession, streamId: number, headers: readonly string[], body: Buffer | undefined): void {
  const field = (name: string) => headers[headers.indexOf(name) + 1];
  const path = field(':path')!;
  if (path === '/large') return session.respond(streamId, [':status', '200', 'content-type', 'application/octet-stream'], LARGE);
  if (path === '/fields') return session.respond(streamId, [':status', '200'], Buffer.from(headers.filter((_, i) => i % 2 === 0).join(',')));
  const text = field(':method') === 'POST' ? `${body?.length ?? 0} ${sha(body ?? Buffer.alloc(0))}` : `${field(':method')} ${path}`;
  session.respond(streamId, [':status', '200', 'content-type', 'text/plain'], Buffer.from(text));
}

beforeAll(async () => {
  expect(h2Engine, 'the addon is built by npm run build (needs libnghttp2-dev)').toBeDefined();
  pki = await TestPki.create();
  const serverCert = await pki.issue('server', { spiffeId: id('server'), dnsNames: ['localhost'], usage: 'server' });
  client = await pki.issue('client', { spiffeId: id('client'), usage: 'client' });
  server = tls.createServer({ cert: serverCert.chainPem, key: serverCert.keyPem, ca: pki.ca.rootPem, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'] }, (socket) => {
    sessions.push(new NativeH2ServerSession(socket, h2Engine!, answer, { maxConcurrentStreams: 100, maxHeaderListBytes: MAX_HEADER_LIST_BYTES }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  pki?.cleanup();
});

describe('native HTTP/2 server session', () => {
  let session: ClientHttp2Session;
  beforeAll(async () => {
    session = await h2Connect({ port, ca: pki.ca.rootPem, cert: client });
  });
  afterAll(() => session.close());

  it('serves curl --http2 with a client certificate', async () => {
    const r = await run('curl', ['-sS', '--http2', '--cacert', pki.caFile, '--cert', client.certFile, '--key', client.keyFile, '-D', '-', '-w', '\n%{http_version}', `https://localhost:${port}/curl`]);
    expect(r.stderr).toBe('');
    const [head, body, version] = r.stdout.split(/\r\n\r\n|\n(?=[^\n]*$)/);
    expect(head).toMatch(/^HTTP\/2 200 ?\r\ncontent-type: text\/plain$/);
    expect(body).toBe('GET /curl');
    expect(version).toBe('2');
  });

  it('answers 50 concurrent streams on one connection, each with its own response', async () => {
    const paths = Array.from({ length: 50 }, (_, i) => `/stream/${i}`);
    const responses = await Promise.all(paths.map((path) => h2Request(session, { ':path': path })));
    responses.forEach((r, i) => {
      expect(r.rstCode).toBe(0);
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toBe('text/plain');
      expect(r.text()).toBe(`GET ${paths[i]}`);
    });
  });

  it('takes request bodies across many DATA frames and sends a response beyond the first window', async () => {
    const body = Buffer.alloc(300 * 1024, 'upload ');
    const [posted, large] = await Promise.all([h2Request(session, { ':method': 'POST', ':path': '/upload' }, body), h2Request(session, { ':path': '/large' })]);
    expect([posted.rstCode, large.rstCode]).toEqual([0, 0]); // ended by END_STREAM, not cut
    expect(posted.text()).toBe(`${body.length} ${sha(body)}`);
    expect(large.status).toBe(200);
    expect(sha(large.body)).toBe(sha(LARGE));
  });

  it('takes a read whose events outgrow the shared events array (100 requests of 104 fields)', async () => {
    const capacity = h2Engine!.events.length;
    const fields = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`f${i}`, ''])); // all fit HPACK's table: one byte each
    const responses = await Promise.all(Array.from({ length: 100 }, () => h2Request(session, { ':path': '/fields', ...fields })));
    const expected = [':path', ':method', ':authority', ':scheme', ...Object.keys(fields)].join(','); // node:http2's order
    for (const r of responses) expect([r.status, r.rstCode, r.text()]).toEqual([200, 0, expected]);
    expect(h2Engine!.events.length).toBeGreaterThan(capacity); // the path that grows it ran
  });

  it('writes a response larger than the shared output buffer when the windows let it go at once', async () => {
    const wide = await h2Connect({ port, ca: pki.ca.rootPem, cert: client, settings: { initialWindowSize: 4 * 1024 * 1024 } });
    try {
      wide.setLocalWindowSize(4 * 1024 * 1024);
      const r = await h2Request(wide, { ':path': '/large' });
      expect([r.status, r.rstCode, r.body.length, sha(r.body)]).toEqual([200, 0, LARGE.length, sha(LARGE)]);
    } finally {
      wide.close();
    }
  });

  it('answers a header block over the limit with 431 before the client acknowledged it, resets it (ENHANCE_YOUR_CALM) after, and keeps serving the connection', async () => {
    const raw = await RawH2Connection.open({ port, ca: pki.ca.rootPem, cert: client });
    raw.ackSettings = false;
    try {
      const big = Buffer.concat([getRequest('/big-head'), headerBlock([['x-filler', 'f'.repeat(MAX_HEADER_LIST_BYTES)]])]);
      await raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, big));
      const head = await waitFor('the 431', () => raw.frames.find((f) => f.type === FRAME.HEADERS && f.streamId === 1));
      expect(head.flags & FLAG.END_STREAM).toBe(FLAG.END_STREAM);
      await raw.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
      await raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 3, big));
      expect(await waitFor('the reset', () => raw.resets().get(3))).toBe(11); // ENHANCE_YOUR_CALM
    } finally {
      raw.close();
    }
    const tooLarge = await h2Request(session, { ':path': '/big-head', 'x-filler': 'f'.repeat(MAX_HEADER_LIST_BYTES) }).catch((err: Error) => err.message);
    expect(tooLarge).toBe('stream closed without a response (RST_STREAM 11)');
    const after = await h2Request(session, { ':path': '/after' });
    expect([after.text(), after.rstCode]).toEqual(['GET /after', 0]);
  });

  it('reads a header block split over CONTINUATION frames that arrive in separate reads', async () => {
    const raw = await RawH2Connection.open({ port, ca: pki.ca.rootPem, cert: client });
    try {
      const block = getRequest('/continued'); // :method and :scheme are its first 28 bytes
      // The client's SETTINGS ACK must not fall between the two (nothing may: RFC 9113 6.10).
      await waitFor('the server SETTINGS, acknowledged', () => raw.frames.some((f) => f.type === FRAME.SETTINGS && f.flags === 0));
      await raw.write(frame(FRAME.HEADERS, FLAG.END_STREAM, 1, block.subarray(0, 28)));
      await new Promise((resolve) => setTimeout(resolve, 50)); // its own TLS record, its own read
      await raw.write(frame(FRAME.CONTINUATION, FLAG.END_HEADERS, 1, block.subarray(28)));
      const data = await waitFor('the response body', () => raw.frames.find((f) => f.type === FRAME.DATA && f.streamId === 1));
      expect([data.payload.toString(), data.flags & FLAG.END_STREAM]).toEqual(['GET /continued', FLAG.END_STREAM]);
    } finally {
      raw.close();
    }
  });

  it('closes with GOAWAY: the stream still open is answered, then the server ends the connection', async () => {
    const before = sessions.length;
    const raw = await RawH2Connection.open({ port, ca: pki.ca.rootPem, cert: client });
    try {
      const held = headerBlock([[':method', 'POST'], [':scheme', 'https'], [':path', '/held'], [':authority', 'localhost']]);
      await raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, held)); // its body is still to come
      const serverSession = await waitFor('the server session', () => sessions[before]);
      await new Promise((resolve) => setTimeout(resolve, 50)); // the HEADERS are in
      serverSession.close();
      await waitFor('GOAWAY', () => raw.goaway);
      expect(raw.goaway).toEqual({ lastStreamId: 1, code: 0 });
      expect(raw.socket.readableEnded).toBe(false); // stream 1 is still open
      await raw.write(frame(FRAME.DATA, FLAG.END_STREAM, 1, Buffer.from('last')));
      await raw.closed(3000); // the server ended its side: RawH2Connection's socket does not end first
      const data = raw.frames.find((f) => f.type === FRAME.DATA && f.streamId === 1);
      expect(data?.payload.toString()).toBe(`4 ${sha(Buffer.from('last'))}`);
    } finally {
      raw.close();
    }
  });
});
